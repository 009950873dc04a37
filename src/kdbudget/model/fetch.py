"""Fetching a hub teacher into a local directory (a local rule; needs the internet).

Only the config, safetensors weights and tokenizer files are taken: compute
nodes then load the teacher from disk, and no pickle is ever downloaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kdbudget.io import atomic_dir

ALLOW = ["config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
         "vocab.txt", "special_tokens_map.json"]


def fetch_hub_model(name: str, out_dir: str | Path) -> None:
    """Copy hub model ``name`` into ``out_dir`` through the Hugging Face cache.

    Through the cache (``HF_HOME``), not straight into ``out_dir``: a cache filled
    beforehand on a machine with internet serves the same call offline
    (``HF_HUB_OFFLINE=1``), and a second fetch downloads nothing.
    """
    from huggingface_hub import snapshot_download

    from .hf_io import load_pretrained

    snapshot = Path(snapshot_download(repo_id=name, allow_patterns=ALLOW))
    with atomic_dir(out_dir) as tmp:
        for item in snapshot.iterdir():
            if item.is_file():
                shutil.copyfile(item, tmp / item.name)  # the cache's files are symlinks into its blobs
        load_pretrained(tmp)  # refuses a checkpoint without safetensors weights
