"""Load and save `KDBertForMaskedLM` in Hugging Face's formats.

A post-LN model (standard BERT) is a `BertForMaskedLM` directory; a pre-LN
model (`config.layer_norm == "pre"`) is a `RobertaPreLayerNormForMaskedLM`
directory (model_type `roberta-prelayernorm`), the transformers class with
the same blocks. Two differences are bridged when converting:
- parameter names: `bert.` is `roberta_prelayernorm.`, the final LayerNorm
  `bert.encoder.LayerNorm` is `roberta_prelayernorm.LayerNorm`, and the MLM
  head `cls.predictions.{transform.dense, transform.LayerNorm, bias}` is
  `lm_head.{dense, layer_norm, bias}`;
- positions: RoBERTa numbers real tokens from padding_idx + 1 (transformers'
  `create_position_ids_from_input_ids`), we number them from 0; so our
  position rows are written shifted by pad_token_id + 1, after that many
  zero rows, and `max_position_embeddings` grows by as much. Logits agree on
  right-padded inputs (real tokens first, as our data is packed); with left
  padding RoBERTa's numbering differs from ours.

Loading reads `config.json` and safetensors weights only (one file or a
sharded index): a checkpoint that offers only pickles (`pytorch_model.bin`,
`*.pt`, `*.ckpt`) is refused, because unpickling runs arbitrary code. Old
checkpoint spellings (`LayerNorm.gamma/beta`, no `bert.` prefix) are renamed;
the pooler and NSP weights of pretraining checkpoints are dropped.

Saving writes `config.json` + `model.safetensors` into a temporary directory
beside the target and renames it into place, so a reader never sees half a
checkpoint. A MobileBERT student (`mobilebert.py`) is saved by transformers'
own `save_pretrained` into that temporary directory. The tied decoder weight and bias are left out, as transformers
does, and `AutoModelForMaskedLM.from_pretrained(dir)` loads the result with
no missing or unexpected keys (so does `AutoModelForSequenceClassification`,
which is how GLUE fine-tuning loads a student: `kdbudget.glue.classifier`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from transformers import BertConfig, RobertaPreLayerNormConfig

from .bert import KDBertForMaskedLM, is_pre_norm
from .mobilebert import MODEL_TYPE as MOBILEBERT_TYPE
from .mobilebert import KDMobileBertForMaskedLM

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

BERT_TYPE = "bert"
PRE_LN_TYPE = "roberta-prelayernorm"
PRE_LN_ARCHITECTURE = "RobertaPreLayerNormForMaskedLM"
POSITIONS_KEY = "bert.embeddings.position_embeddings.weight"
# Our pre-LN names -> RobertaPreLayerNormForMaskedLM's, by prefix, most specific first.
PRE_LN_PREFIXES = (
    ("bert.encoder.LayerNorm.", "roberta_prelayernorm.LayerNorm."),
    ("bert.", "roberta_prelayernorm."),
    ("cls.predictions.transform.dense.", "lm_head.dense."),
    ("cls.predictions.transform.LayerNorm.", "lm_head.layer_norm."),
    ("cls.predictions.decoder.", "lm_head.decoder."),
    ("cls.predictions.bias", "lm_head.bias"),
)
# Config keys that are ours or the class's own, not to be carried across formats.
CONFIG_SKIP = ("model_type", "transformers_version", "architectures", "layer_norm")


class UnsafeCheckpointError(RuntimeError):
    """The checkpoint has pickled weights only; we never unpickle."""


class DamagedCheckpointError(ValueError):
    """A checkpoint file cannot be read (truncated, not JSON, not safetensors)."""


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
        if not file.is_file():  # named by a sharded index
            raise FileNotFoundError(f"{file} (listed in {file.parent / SAFETENSORS_INDEX}) does not exist")
        try:
            with safe_open(file, framework="pt") as handle:
                for key in handle.keys():
                    state[key] = handle.get_tensor(key)
        except Exception as error:  # safetensors raises its own SafetensorError, or OSError
            raise DamagedCheckpointError(
                f"{file} ({file.stat().st_size} bytes) cannot be read as safetensors: {error}. The file is "
                "probably truncated or damaged (an interrupted download or copy): fetch or copy it again"
            ) from error
    return state


def _canonical_key(key: str) -> str:
    key = key.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
    if not key.startswith(("bert.", "cls.")):
        key = "bert." + key
    return key


def to_pre_ln_key(key: str) -> str:
    """Our parameter name as RobertaPreLayerNorm's: the first of `PRE_LN_PREFIXES` (ours, theirs) that matches."""
    for ours, theirs in PRE_LN_PREFIXES:
        if key.startswith(ours):
            return theirs + key[len(ours):]
    raise KeyError(f"no RobertaPreLayerNorm name for {key}")


def _from_pre_ln_key(key: str) -> str:
    # A bare base-model checkpoint (RobertaPreLayerNormModel) has no prefix.
    if not key.startswith(("roberta_prelayernorm.", "lm_head.")):
        key = "roberta_prelayernorm." + key
    for ours, theirs in PRE_LN_PREFIXES:
        if key.startswith(theirs):
            return ours + key[len(theirs):]
    return key


def position_offset(config: BertConfig) -> int:
    """Rows RoBERTa's position table has before the one of our position 0."""
    return config.pad_token_id + 1


def pre_ln_config(config: BertConfig) -> RobertaPreLayerNormConfig:
    """Our pre-LN config as transformers' RobertaPreLayerNormConfig (positions shifted)."""
    data = {key: value for key, value in config.to_dict().items() if key not in CONFIG_SKIP}
    data["max_position_embeddings"] = config.max_position_embeddings + position_offset(config)
    data["architectures"] = [PRE_LN_ARCHITECTURE]
    data["tie_word_embeddings"] = True
    return RobertaPreLayerNormConfig.from_dict(data)


def to_pre_ln_state(state: dict[str, torch.Tensor], config: BertConfig) -> dict[str, torch.Tensor]:
    """Our pre-LN state dict under RobertaPreLayerNorm's names (`to_pre_ln_key`), the
    position table shifted: zero rows for RoBERTa's padding_idx and below (never a real token's position)."""
    state = dict(state)
    positions = state[POSITIONS_KEY]
    filler = positions.new_zeros(position_offset(config), positions.shape[1])
    state[POSITIONS_KEY] = torch.cat([filler, positions])
    return {to_pre_ln_key(key): value for key, value in state.items()}


def read_config(directory: str | os.PathLike) -> BertConfig:
    """Our `BertConfig` of a checkpoint directory: a BERT one, or a RoBERTa-PreLayerNorm
    one translated to a pre-LN `BertConfig`; refuses other models."""
    config_path = Path(directory) / "config.json"
    if not config_path.is_file():
        present = sorted(p.name for p in Path(directory).iterdir())[:8] if Path(directory).is_dir() else []
        raise FileNotFoundError(
            f"{config_path} does not exist: a model folder needs config.json and model.safetensors, as "
            f"transformers' save_pretrained writes them (the folder holds: {', '.join(present) or 'nothing'})")
    try:
        model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
    except (ValueError, AttributeError) as error:  # not JSON, or JSON that is not an object
        raise DamagedCheckpointError(f"{config_path} is not a JSON object: {error}") from error
    if model_type == BERT_TYPE:
        config = BertConfig.from_pretrained(str(directory))
        if is_pre_norm(config):  # transformers would run this as post-LN BERT
            raise ValueError(f"{config_path}: a BERT checkpoint cannot be pre-LN (layer_norm 'pre')")
        return config
    if model_type == PRE_LN_TYPE:
        theirs = RobertaPreLayerNormConfig.from_pretrained(str(directory))
        if theirs.hidden_act != "gelu":  # RoBERTa's MLM head applies gelu whatever hidden_act says
            raise ValueError(f"{config_path}: hidden_act {theirs.hidden_act!r}; only 'gelu' maps onto our MLM head")
        data = {key: value for key, value in theirs.to_dict().items() if key not in CONFIG_SKIP}
        config = BertConfig.from_dict({**data, "layer_norm": "pre", "architectures": ["BertForMaskedLM"]})
        config.max_position_embeddings = theirs.max_position_embeddings - position_offset(config)
        if config.max_position_embeddings < 1:
            raise ValueError(f"{config_path}: max_position_embeddings {theirs.max_position_embeddings} "
                             f"leaves no position after padding_idx {config.pad_token_id}")
        return config
    if model_type == MOBILEBERT_TYPE:  # our MobileBERT student: transformers loads it, our BERT code does not
        raise ValueError(f"{config_path}: a MobileBERT model (a student shape option) is pretrained, fine-tuned on "
                         "GLUE and loaded with transformers' Auto classes, but not used as a teacher, which must be "
                         "a BERT checkpoint")
    raise ValueError(f"{config_path}: model_type is {model_type!r}, expected {BERT_TYPE!r} or {PRE_LN_TYPE!r}")


def load_pretrained(
    path_or_name: str | os.PathLike,
    *,
    allow_download: bool = False,
    revision: str | None = None,
    dtype: torch.dtype = torch.float32,
) -> KDBertForMaskedLM:
    """Our model from an HF `BertForMaskedLM` checkpoint, or a pre-LN one from a
    `RobertaPreLayerNormForMaskedLM` checkpoint (directory or hub name).

    Fails if a weight the model needs is missing, if a key is unknown, or if
    the checkpoint's decoder is not tied to its word embeddings.
    """
    directory = _resolve_directory(path_or_name, allow_download, revision)
    config = read_config(directory)
    raw = _read_state_dict(_safetensors_files(directory))
    if is_pre_norm(config):
        state = {_from_pre_ln_key(key): value for key, value in raw.items()}
        if POSITIONS_KEY in state:  # drop the rows before RoBERTa's first real position
            state[POSITIONS_KEY] = state[POSITIONS_KEY][position_offset(config):]
    else:
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
    """Write `config.json` + `model.safetensors` atomically into `out_dir`:
    a `BertForMaskedLM` (post-LN), a `RobertaPreLayerNormForMaskedLM` (pre-LN)
    or, for the MobileBERT student, transformers' own `MobileBertForMaskedLM` files.

    The files go to a temporary directory in the same parent, which is then
    renamed onto `out_dir`; an existing `out_dir` is replaced (or refused with
    `overwrite=False`).
    """
    model = _unwrap(model)
    if isinstance(model, KDMobileBertForMaskedLM):
        return _save_staged(out_dir, overwrite, lambda staging: model.hf.save_pretrained(str(staging)))
    if not isinstance(model, KDBertForMaskedLM):
        raise TypeError(f"expected a KDBertForMaskedLM or KDMobileBertForMaskedLM, got {type(model).__name__}")
    pre_norm = is_pre_norm(model.config)
    if pre_norm and model.config.hidden_act != "gelu":  # RoBERTa's MLM head applies gelu whatever hidden_act says
        raise ValueError(f"a pre-LN model saves as RobertaPreLayerNorm, whose MLM head needs hidden_act 'gelu' "
                         f"(got {model.config.hidden_act!r})")

    def write(staging: Path) -> None:
        state = {
            key: value.detach().to("cpu").contiguous()
            for key, value in model.state_dict().items()
            if key not in TIED_KEYS
        }
        if pre_norm:
            config = pre_ln_config(model.config)
            state = to_pre_ln_state(state, model.config)
        else:
            config = BertConfig.from_dict(model.config.to_dict())
            config.architectures = ["BertForMaskedLM"]
            config.tie_word_embeddings = True
        config.save_pretrained(str(staging))
        save_file(state, str(staging / SAFETENSORS_FILE), metadata={"format": "pt"})

    return _save_staged(out_dir, overwrite, write)


def _save_staged(out_dir: str | os.PathLike, overwrite: bool, write: Callable[[Path], object]) -> Path:
    """Run ``write(staging)`` into a temporary directory beside ``out_dir``, then rename it onto ``out_dir``."""
    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise FileExistsError(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        write(staging)
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
