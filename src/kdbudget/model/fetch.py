"""Fetching a hub teacher into a local directory (a local rule; needs the internet).

Only the config, safetensors weights and tokenizer files are taken: compute
nodes then load the teacher from disk, and no pickle is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path

from kdbudget.io import atomic_dir

ALLOW = ["config.json", "*.safetensors", "model.safetensors.index.json", "tokenizer.json", "tokenizer_config.json",
         "vocab.txt", "special_tokens_map.json"]


def fetch_hub_model(name: str, out_dir: str | Path) -> None:
    from huggingface_hub import snapshot_download

    from .hf_io import load_pretrained

    with atomic_dir(out_dir) as tmp:
        snapshot_download(repo_id=name, local_dir=tmp, allow_patterns=ALLOW)
        load_pretrained(tmp)  # refuses a checkpoint without safetensors weights
