"""The BERT masked LM of kdbudget: fast to pretrain, interchangeable with HF's `BertForMaskedLM`."""

from .bert import KDBertForMaskedLM, bert_config, masked_positions
from .hf_io import UnsafeCheckpointError, load_pretrained, read_config, save_pretrained
from .outputs import IGNORE_INDEX, MASK_VALUE, LayerInternals, MLMOutput, Request

__all__ = [
    "IGNORE_INDEX",
    "MASK_VALUE",
    "KDBertForMaskedLM",
    "LayerInternals",
    "MLMOutput",
    "Request",
    "UnsafeCheckpointError",
    "bert_config",
    "load_pretrained",
    "masked_positions",
    "read_config",
    "save_pretrained",
]
