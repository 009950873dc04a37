"""The classification model: a pretrained student loaded as transformers' sequence classifier, and saved so.

`AutoModelForSequenceClassification.from_pretrained(model_dir)` (SDPA
attention, fp32 weights) loads what pretraining saved:

- a post-LN student (a `BertForMaskedLM` directory) as
  `BertForSequenceClassification`: pooler (dense + tanh on [CLS]), dropout,
  linear classifier;
- a MobileBERT student (a `MobileBertForMaskedLM` directory, the
  bottleneck shape option) as `MobileBertForSequenceClassification`, with
  `classifier_activation` on: its pooler is then BERT's (dense + tanh on the
  first token), so every arm fine-tunes the same kind of head;
- a pre-LN student (a `RobertaPreLayerNormForMaskedLM` directory, see
  `kdbudget.model.hf_io`) as `RobertaPreLayerNormForSequenceClassification`.
  Its stock head applies dropout twice (on [CLS], and after dense + tanh),
  BERT's once, so it is swapped for `PoolerHead`: BERT's head under RoBERTa's
  parameter names. Both arms of a comparison then fine-tune the same head
  function (the paper compares pre-LN No-KD with post-LN KD students under its
  code's fidelity); in eval mode the two heads are the same function, so the
  saved model loads with the stock class and scores the same.

Every model gets a fresh head: the pooler (or its dense layer) and the
classifier are drawn from N(0, initializer_range) with zero biases right
after seeding, also for a hub checkpoint that brings a pooler from its NSP
pretraining, so that every arm starts from the same kind of head and a seed
fixes it. Loading checks that only the head is new and only the MLM head is
left over, so a checkpoint with missing encoder weights fails.

The loss stays ours (`glue_loss`, in `kdbudget.glue.loop`): MSE for STS-B,
cross-entropy otherwise, in fp32 under autocast.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from transformers import AutoModelForSequenceClassification, MobileBertConfig, PretrainedConfig, PreTrainedModel

from kdbudget.glue.tasks import GlueTask
from kdbudget.io import atomic_dir, write_json
from kdbudget.model.bert import is_pre_norm
from kdbudget.model.hf_io import read_config
from kdbudget.model.mobilebert import MODEL_TYPE as MOBILEBERT_TYPE
from kdbudget.model.mobilebert import is_mobilebert

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
# Weights a sequence classifier does not take over from a pretraining checkpoint (MLM and NSP heads).
LEFT_OVER_PREFIXES = ("cls.", "lm_head.")


class PoolerHead(nn.Module):
    """BERT's classification head (dense + tanh on the first token, dropout, classifier) under
    `RobertaPreLayerNormClassificationHead`'s parameter names (``dense``, ``out_proj``)."""

    def __init__(self, config: PretrainedConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        dropout = config.classifier_dropout
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, features: Tensor, **kwargs: Any) -> Tensor:
        return self.out_proj(self.dropout(torch.tanh(self.dense(features[:, 0]))))


def encoder_config(model_dir: str | Path) -> PretrainedConfig:
    """The pretrained encoder's config as fine-tuning reads it (vocabulary, positions): our view of a BERT or
    pre-LN BERT (`read_config`, which refuses other models), or a MobileBERT student's own config."""
    if _model_type(Path(model_dir) / "config.json") == MOBILEBERT_TYPE:
        return MobileBertConfig.from_pretrained(str(model_dir))
    return read_config(model_dir)


def _model_type(config_path: Path) -> str | None:
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # read_config then names what is wrong with the file
    return data.get("model_type") if isinstance(data, dict) else None


def head_layers(model: PreTrainedModel) -> tuple[nn.Linear, nn.Linear]:
    """The head's two linear layers, in the order they are drawn: (pooler dense, classifier)."""
    if isinstance(model.classifier, PoolerHead):
        return model.classifier.dense, model.classifier.out_proj
    encoder = model.mobilebert if hasattr(model, "mobilebert") else model.bert
    return encoder.pooler.dense, model.classifier


def load_classifier(model_dir: str | Path, task: GlueTask, seed: int) -> PreTrainedModel:
    """``model_dir`` as an fp32 sequence classifier for ``task`` with a fresh head drawn after
    ``torch.manual_seed(seed)`` (the global generator then drives dropout)."""
    config = encoder_config(model_dir)  # refuses a model that is neither BERT, pre-LN BERT nor MobileBERT
    mobile = is_mobilebert(config)
    pre_norm = not mobile and is_pre_norm(config)
    # MobileBERT's pooler is dense + tanh (BERT's) only with classifier_activation on.
    options = {"classifier_activation": True} if mobile else {}
    model, info = AutoModelForSequenceClassification.from_pretrained(
        str(model_dir), num_labels=task.num_labels, attn_implementation="sdpa", dtype=torch.float32,
        output_loading_info=True, **options)
    labels = task.labels or ("score",)  # what a user of the saved model sees
    model.config.id2label = dict(enumerate(labels))
    model.config.label2id = {label: i for i, label in enumerate(labels)}
    model.config.problem_type = "regression" if task.is_regression else "single_label_classification"
    model.config.finetuning_task = task.name
    if pre_norm:
        model.classifier = PoolerHead(model.config)
    head = tuple(name for name, _ in model.named_parameters()
                 if name.startswith(("classifier.", "bert.pooler.", "mobilebert.pooler.")))
    missing = [key for key in info["missing_keys"] if key not in head]
    unexpected = [key for key in info["unexpected_keys"] if not key.startswith(LEFT_OVER_PREFIXES)]
    if missing or unexpected or info["mismatched_keys"]:
        raise ValueError(f"{model_dir}: not a pretrained encoder for {type(model).__name__}: missing weights "
                         f"{missing}, unexpected weights {unexpected}, mismatched {info['mismatched_keys']}")
    torch.manual_seed(seed)
    for layer in head_layers(model):
        nn.init.normal_(layer.weight, mean=0.0, std=model.config.initializer_range)
        nn.init.zeros_(layer.bias)
    return model


def save_classifier(model: PreTrainedModel, model_dir: str | Path, out_dir: str | Path,
                    result: dict[str, Any] | None = None) -> Path:
    """The fine-tuned model, its tokenizer (from ``model_dir``) and ``result`` as one directory, atomically;
    `AutoModelForSequenceClassification.from_pretrained(out_dir)` loads it."""
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(str(tmp))
        for name in TOKENIZER_FILES:
            if (Path(model_dir) / name).is_file():
                shutil.copy2(Path(model_dir) / name, tmp / name)
        if result is not None:
            write_json(tmp / "result.json", result)
    return Path(out_dir)
