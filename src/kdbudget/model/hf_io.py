"""Load and save `KDBertForMaskedLM` in Hugging Face's `BertForMaskedLM` format.

Loading reads `config.json` and safetensors weights only (one file or a
sharded index): a checkpoint that offers only pickles (`pytorch_model.bin`,
`*.pt`, `*.ckpt`) is refused, because unpickling runs arbitrary code. Old
checkpoint spellings (`LayerNorm.gamma/beta`, no `bert.` prefix) are renamed;
the pooler and NSP weights of pretraining checkpoints are dropped.

Saving writes `config.json` + `model.safetensors` into a temporary directory
beside the target and renames it into place, so a reader never sees half a
checkpoint. The tied decoder weight and bias are left out, as transformers
does, and `AutoModelForMaskedLM.from_pretrained(dir)` loads the result with
no missing or unexpected keys.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from transformers import BertConfig

from .bert import KDBertForMaskedLM

log = logging.getLogger(__name__)

SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")

# Keys that alias another parameter (tied), so they are not written.
TIED_KEYS = {
    "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
}
# Weights of pretraining checkpoints that a masked LM does not use.
DROPPED_PREFIXES = ("bert.pooler.", "cls.seq_relationship.")
DROPPED_KEYS = {"bert.embeddings.position_ids", "bert.embeddings.token_type_ids"}


class UnsafeCheckpointError(RuntimeError):
    """The checkpoint has pickled weights only; we never unpickle."""


def _resolve_directory(path_or_name: str | os.PathLike, allow_download: bool, revision: str | None) -> Path:
    """A local directory, or a hub name resolved through the HF cache.

    A hub name is only fetched from the network when `allow_download` is set;
    otherwise only what is already in the cache is used.
    """
    path = Path(path_or_name)
    if path.is_dir():
        return path
    if path.exists():
        raise NotADirectoryError(f"{path} is a file; give the checkpoint directory")
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                str(path_or_name),
                revision=revision,
                allow_patterns=["config.json", "*.safetensors", SAFETENSORS_INDEX],
                local_files_only=not allow_download,
            )
        )
    except Exception as error:  # the hub client raises several unrelated types
        hint = "" if allow_download else " (pass allow_download=True to fetch it from the hub)"
        raise FileNotFoundError(
            f"{path_or_name!s} is neither a local directory nor a cached hub checkpoint{hint}: {error}"
        ) from error


def _safetensors_files(directory: Path) -> list[Path]:
    if (directory / SAFETENSORS_INDEX).is_file():
        index = json.loads((directory / SAFETENSORS_INDEX).read_text())
        return [directory / name for name in sorted(set(index["weight_map"].values()))]
    if (directory / SAFETENSORS_FILE).is_file():
        return [directory / SAFETENSORS_FILE]
    single = sorted(directory.glob("*.safetensors"))
    if len(single) == 1:
        return single
    pickles = sorted(p.name for p in directory.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise UnsafeCheckpointError(
            f"{directory} holds only pickled weights ({', '.join(pickles)}); kdbudget loads safetensors only, "
            "because unpickling can run arbitrary code. Convert it once in a trusted environment "
            "(load with transformers and save_pretrained(..., safe_serialization=True))."
        )
    raise FileNotFoundError(f"no {SAFETENSORS_FILE} (or a sharded index) in {directory}")


def _read_state_dict(files: list[Path]) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for file in files:
        with safe_open(file, framework="pt") as handle:
            for key in handle.keys():
                state[key] = handle.get_tensor(key)
    return state


def _canonical_key(key: str) -> str:
    key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
    if not key.startswith(("bert.", "cls.")):
        key = "bert." + key
    return key


def read_config(directory: str | os.PathLike) -> BertConfig:
    """The `BertConfig` of a checkpoint directory; refuses non-BERT models."""
    config_path = Path(directory) / "config.json"
    model_type = json.loads(config_path.read_text()).get("model_type")
    if model_type != "bert":
        raise ValueError(f"{config_path}: model_type is {model_type!r}, expected 'bert'")
    return BertConfig.from_pretrained(str(directory))


def load_pretrained(
    path_or_name: str | os.PathLike,
    *,
    allow_download: bool = False,
    revision: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> KDBertForMaskedLM:
    """Our model from an HF `BertForMaskedLM` checkpoint (directory or hub name).

    Fails if a weight the model needs is missing, if a key is unknown, or if
    the checkpoint's decoder is not tied to its word embeddings.
    """
    directory = _resolve_directory(path_or_name, allow_download, revision)
    config = read_config(directory)
    raw = _read_state_dict(_safetensors_files(directory))
    state = {_canonical_key(key): value for key, value in raw.items()}
    dropped = sorted(k for k in state if k.startswith(DROPPED_PREFIXES) or k in DROPPED_KEYS)
    for key in dropped:
        del state[key]
    if dropped:
        log.info("%s: ignoring %d weights a masked LM does not use (%s, ...)", directory, len(dropped), dropped[0])
    for alias, source in TIED_KEYS.items():
        if alias in state:
            if source in state and not torch.equal(state[alias], state[source]):
                raise ValueError(
                    f"{directory}: {alias} differs from {source}; untied output embeddings are not supported"
                )
            del state[alias]

    model = KDBertForMaskedLM(config)
    result = model.load_state_dict(state, strict=False)
    missing = sorted(set(result.missing_keys) - set(TIED_KEYS))
    if missing or result.unexpected_keys:
        raise ValueError(f"{directory}: missing weights {missing}, unexpected weights {sorted(result.unexpected_keys)}")
    return model.to(dtype)


def _unwrap(model: nn.Module) -> nn.Module:
    """The plain module under torch.compile / DDP wrappers (their key prefixes must not leak)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, nn.parallel.DistributedDataParallel):
            model = model.module
        else:
            return model


def save_pretrained(model: nn.Module, out_dir: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Write `config.json` + `model.safetensors` atomically into `out_dir`.

    The files go to a temporary directory in the same parent, which is then
    renamed onto `out_dir`; an existing `out_dir` is replaced (or refused with
    `overwrite=False`).
    """
    model = _unwrap(model)
    if not isinstance(model, KDBertForMaskedLM):
        raise TypeError(f"expected a KDBertForMaskedLM, got {type(model).__name__}")
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        config = BertConfig.from_dict(model.config.to_dict())
        config.architectures = ["BertForMaskedLM"]
        config.tie_word_embeddings = True
        config.save_pretrained(str(staging))
        state = {
            key: value.detach().to("cpu").contiguous()
            for key, value in model.state_dict().items()
            if key not in TIED_KEYS
        }
        save_file(state, str(staging / SAFETENSORS_FILE), metadata={"format": "pt"})
        if out.exists():
            retired = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(out, retired)
            os.replace(staging, out)
            shutil.rmtree(retired)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
