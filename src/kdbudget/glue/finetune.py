"""Fine-tune one pretrained model directory on one GLUE task with one grid cell.

Read top to bottom: the classification model (HF's `BertForSequenceClassification`
on our encoder), tokenization into flat arrays, length-grouped batches, the
schedule, evaluation, then `finetune` itself.

- Head: pooler (dense + tanh on [CLS]), dropout, linear classifier; one output
  and MSE for STS-B, cross-entropy otherwise. Our pretrained students have no
  pooler (no NSP objective), and `load_pretrained` drops the pooler of hub
  checkpoints, so every model gets a freshly initialised pooler and
  classifier (N(0, initializer_range), zero bias, drawn right after seeding):
  every arm starts fine-tuning from the same kind of head.
- Optimizer: AdamW (no weight decay on biases and LayerNorm), gradient
  clipping at 1.0 (the HF Trainer default both of the paper's code bases ran
  with), learning rate warmed up linearly over the first ``warmup`` fraction
  of the steps, then decayed linearly to 0 ("polynomial", power 1). One
  setting for every model, passed in.
- Speed: sequences padded per batch; batches grouped by length (a shuffled
  epoch is cut into chunks of 50 batches, each sorted by length, and the
  batches shuffled again); bf16 autocast on a GPU; evaluation sorted by length,
  with a larger batch under `torch.inference_mode`.
- Determinism: pooler/classifier init, dropout and batch order follow
  ``seed``; on a CPU, equal inputs give equal results.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import Tensor, nn
from transformers import BertConfig

from kdbudget.data.tokenizer import load_tokenizer
from kdbudget.glue.cells import cell_name
from kdbudget.glue.loader import DEFAULT_MAX_MALFORMED, Example, load_task
from kdbudget.glue.metrics import dev_metrics, nan_to_none
from kdbudget.glue.select import majority_baseline
from kdbudget.glue.tasks import GlueTask, get_task
from kdbudget.io import atomic_dir, write_json
from kdbudget.log import progress
from kdbudget.model import KDBertForMaskedLM, Request, hf_io, load_pretrained
from kdbudget.model.bert import is_pre_norm
from kdbudget.train.optim import no_decay, set_lr
from kdbudget.train.runtime import autocast_context, autocast_dtype, device_name, pick_device, set_threads, versions

log = logging.getLogger(__name__)

ENCODER_ONLY = Request(logits=False, mlm_loss=False, last_hidden_state=True)
CHUNK_BATCHES = 50  # batches per length-sorted chunk
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


# --- the model -------------------------------------------------------------------------------------------------


class BertPooler(nn.Module):
    """Dense + tanh on the first ([CLS]) position, as in HF BERT."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden: Tensor) -> Tensor:
        return self.activation(self.dense(hidden[:, 0]))


class GlueBert(nn.Module):
    """The pretrained embeddings and encoder with a new pooler (HF's ``bert.`` prefix)."""

    def __init__(self, pretrained: KDBertForMaskedLM):
        super().__init__()
        self.embeddings = pretrained.bert.embeddings
        self.encoder = pretrained.bert.encoder
        self.pooler = BertPooler(pretrained.config)


class BertForGlue(nn.Module):
    """`BertForSequenceClassification` on a pretrained `KDBertForMaskedLM` (same parameter names)."""

    def __init__(self, pretrained: KDBertForMaskedLM, num_labels: int):
        super().__init__()
        self.config = pretrained.config
        self.num_labels = num_labels
        self.bert = GlueBert(pretrained)
        dropout = self.config.classifier_dropout
        self.dropout = nn.Dropout(self.config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = nn.Linear(self.config.hidden_size, num_labels)
        for layer in (self.bert.pooler.dense, self.classifier):
            nn.init.normal_(layer.weight, mean=0.0, std=self.config.initializer_range)
            nn.init.zeros_(layer.bias)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None) -> Tensor:
        """Logits [B, num_labels]; ``attention_mask`` None means no padding."""
        key_mask = None if attention_mask is None else attention_mask[:, None, None, :].bool()
        hidden = self.bert.embeddings(input_ids, token_type_ids)
        states, _ = self.bert.encoder(hidden, key_mask, ENCODER_ONLY)
        return self.classifier(self.dropout(self.bert.pooler(states[-1])))


def glue_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """MSE for one output (regression), cross-entropy otherwise; in fp32."""
    if logits.shape[-1] == 1:
        return F.mse_loss(logits.float().squeeze(-1), labels.float())
    return F.cross_entropy(logits.float(), labels)


# --- data ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Encoded:
    """Tokenized examples as flat arrays: the tokens of example i are ``ids[offsets[i]:offsets[i + 1]]``."""

    ids: np.ndarray
    types: np.ndarray
    offsets: np.ndarray
    labels: np.ndarray
    pad_id: int

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def batch(self, index: np.ndarray, device: torch.device) -> dict[str, Tensor | None]:
        """A batch padded to its longest sequence; ``attention_mask`` is None when nothing is padded."""
        lengths = self.lengths[index]
        width = int(lengths.max())
        ids = np.full((len(index), width), self.pad_id, dtype=np.int64)
        types = np.zeros((len(index), width), dtype=np.int64)
        for row, (i, n) in enumerate(zip(index, lengths)):
            start = self.offsets[i]
            ids[row, :n] = self.ids[start:start + n]
            types[row, :n] = self.types[start:start + n]
        mask = None
        if (lengths < width).any():
            mask = torch.from_numpy(np.arange(width)[None, :] < lengths[:, None]).to(device, non_blocking=True)
        return {"input_ids": torch.from_numpy(ids).to(device, non_blocking=True),
                "token_type_ids": torch.from_numpy(types).to(device, non_blocking=True),
                "attention_mask": mask,
                "labels": torch.from_numpy(self.labels[index]).to(device, non_blocking=True)}


def encode(tokenizer, examples: list[Example], task: GlueTask, max_seq_len: int, chunk: int = 8192) -> Encoded:
    """``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]`` with token types, truncated (longest first) to ``max_seq_len``."""
    ids, types, lengths = [], [], []
    for start in range(0, len(examples), chunk):
        part = examples[start:start + chunk]
        pairs = [e.text_b for e in part] if task.is_pair else None
        out = tokenizer([e.text_a for e in part], pairs, truncation=True, max_length=max_seq_len,
                        return_attention_mask=False, return_token_type_ids=True)
        for token_ids, token_types in zip(out["input_ids"], out["token_type_ids"]):
            ids.append(np.asarray(token_ids, dtype=np.int32))
            types.append(np.asarray(token_types, dtype=np.int8))
            lengths.append(len(token_ids))
    label_dtype = np.float32 if task.is_regression else np.int64
    return Encoded(ids=np.concatenate(ids), types=np.concatenate(types),
                   offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   labels=np.asarray([e.label for e in examples], dtype=label_dtype), pad_id=tokenizer.pad_token_id)


def batch_plan(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
               chunk_batches: int = CHUNK_BATCHES) -> list[np.ndarray]:
    """One epoch of batches: shuffle, sort chunks of ``chunk_batches`` batches by length, shuffle the batches."""
    order = rng.permutation(len(lengths))
    batches = []
    chunk = batch_size * chunk_batches
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def epoch_plans(lengths: np.ndarray, batch_size: int, epochs: float,
                rng: np.random.Generator) -> list[list[np.ndarray]]:
    """The batches of each epoch; a fractional last epoch takes the first part of a fresh epoch's batches."""
    whole = int(epochs)
    plans = [batch_plan(lengths, batch_size, rng) for _ in range(whole)]
    if epochs > whole:
        plan = batch_plan(lengths, batch_size, rng)
        plans.append(plan[:max(1, math.ceil((epochs - whole) * len(plan)))])
    return plans


def lr_multiplier(step: int, total_steps: int, warmup_steps: int) -> float:
    """Linear warmup, then linear decay to 0 at ``total_steps`` (HF's linear schedule)."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


@torch.inference_mode()
def predict(model: BertForGlue, data: Encoded, batch_size: int, device: torch.device, autocast) -> np.ndarray:
    """Class indices (or scores for one output) in the order of ``data``; batches sorted by length."""
    model.eval()
    order = np.argsort(-data.lengths, kind="stable")
    outputs = []
    for start in range(0, len(order), batch_size):
        batch = data.batch(order[start:start + batch_size], device)
        with autocast():
            logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]).float()
        outputs.append(logits.squeeze(-1) if model.num_labels == 1 else logits.argmax(-1))
    predictions = torch.cat(outputs).cpu().numpy()
    result = np.empty_like(predictions)
    result[order] = predictions
    return result


def build_optimizer(model: nn.Module, device: torch.device, *, lr: float, betas: tuple[float, float], eps: float,
                    weight_decay: float) -> torch.optim.AdamW:
    """AdamW without weight decay on biases and LayerNorm; the fused kernel on a GPU, foreach on a CPU."""
    decay, plain = [], []
    for name, param in model.named_parameters():
        (plain if no_decay(name, param) else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]
    speed = {"fused": True} if device.type == "cuda" else {"foreach": True}
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, **speed)


# --- saving ----------------------------------------------------------------------------------------------------


# Our classification head under RobertaPreLayerNormForSequenceClassification's names (checked before
# hf_io's encoder prefixes): its head is dropout -> dense -> tanh -> dropout -> out_proj on the first token,
# ours pooler (dense + tanh on [CLS]) -> dropout -> classifier; the same function in eval mode (RoBERTa's
# first dropout is extra, in training only).
PRE_LN_CLASSIFIER_PREFIXES = (
    ("bert.pooler.dense.", "classifier.dense."),
    ("classifier.", "classifier.out_proj."),
) + hf_io.PRE_LN_PREFIXES
PRE_LN_CLASSIFIER_ARCHITECTURE = "RobertaPreLayerNormForSequenceClassification"


def save_classifier(model: BertForGlue, task: GlueTask, model_dir: str | Path, out_dir: str | Path,
                    result: dict[str, Any] | None = None) -> Path:
    """The fine-tuned model as an HF `BertForSequenceClassification` directory (with tokenizer), atomically;
    a pre-LN model as a `RobertaPreLayerNormForSequenceClassification` one (names and positions as
    `hf_io.save_pretrained` maps them; logits agree on right-padded inputs)."""
    pre_norm = is_pre_norm(model.config)
    if pre_norm:
        config = hf_io.pre_ln_config(model.config, PRE_LN_CLASSIFIER_ARCHITECTURE)
    else:
        config = BertConfig.from_dict(model.config.to_dict())
        config.architectures = ["BertForSequenceClassification"]
    labels = task.labels or ("score",)
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    config.problem_type = "regression" if task.is_regression else "single_label_classification"
    config.finetuning_task = task.name
    with atomic_dir(out_dir) as tmp:
        config.save_pretrained(str(tmp))
        state = {key: value.detach().to("cpu").contiguous() for key, value in model.state_dict().items()}
        if pre_norm:
            state = hf_io.to_pre_ln_state(state, model.config, PRE_LN_CLASSIFIER_PREFIXES)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        for name in TOKENIZER_FILES:
            if (Path(model_dir) / name).is_file():
                shutil.copy2(Path(model_dir) / name, tmp / name)
        if result is not None:
            write_json(tmp / "result.json", result)
    return Path(out_dir)


# --- the run ---------------------------------------------------------------------------------------------------


def train_epochs(model: BertForGlue, train: Encoded, plans: list[list[np.ndarray]], optimizer: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler, autocast, device: torch.device, *, lr: float, warmup_steps: int,
                 max_grad_norm: float | None, desc: str) -> list[float]:
    """Take one optimizer step per planned batch; returns each epoch's mean training loss per example."""
    model.train()
    total_steps = sum(len(plan) for plan in plans)
    step, epoch_losses = 0, []
    bar = progress(total=sum(len(index) for plan in plans for index in plan), desc=desc, unit="ex")
    for epoch, plan in enumerate(plans):
        epoch_started = time.perf_counter()
        loss_sum = torch.zeros((), device=device)
        for index in plan:
            set_lr(optimizer, lr * lr_multiplier(step, total_steps, warmup_steps))
            batch = train.batch(index, device)
            with autocast():
                logits = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
            loss = glue_loss(logits, batch["labels"])
            scaler.scale(loss).backward()
            if max_grad_norm:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach() * len(index)
            step += 1
            bar.update(len(index))
            if step % 50 == 0:  # reading the loss waits for the GPU: not every step
                bar.set_postfix(loss=f"{loss.item():.4f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}",
                                refresh=False)  # the bar's own interval decides when to draw
        seen = sum(len(index) for index in plan)
        epoch_losses.append(float(loss_sum) / seen)
        log.info("%s epoch %d/%d: train loss %.4f, %.0f examples/s", desc, epoch + 1, len(plans), epoch_losses[-1],
                 seen / (time.perf_counter() - epoch_started))
    bar.close()
    return epoch_losses


def _check_arguments(batch_size: int, lr: float, epochs: float, warmup: float, max_seq_len: int,
                     config: BertConfig | None = None) -> None:
    if batch_size < 1 or not epochs > 0 or not lr > 0:
        raise ValueError(f"need batch_size >= 1, epochs > 0, lr > 0 (got {batch_size}, {epochs}, {lr})")
    if not 0.0 <= warmup < 1.0:
        raise ValueError(f"warmup is a fraction of the steps in [0, 1), got {warmup}")
    if config is not None and max_seq_len > config.max_position_embeddings:
        raise ValueError(f"max_seq_len {max_seq_len} exceeds the model's {config.max_position_embeddings} positions")


def finetune(
    model_dir: str | Path,
    glue_dir: str | Path,
    task: str | GlueTask,
    *,
    batch_size: int,
    lr: float,
    epochs: float = 5,
    seed: int = 42,
    max_seq_len: int = 128,
    warmup: float = 0.06,
    weight_decay: float = 0.01,
    eps: float = 1e-6,
    betas: tuple[float, float] = (0.9, 0.999),
    max_grad_norm: float | None = 1.0,
    eval_batch_size: int = 128,
    precision: str = "auto",
    threads: int | None = None,
    device: str = "auto",
    gpus: int = 0,
    keep_weights_dir: str | Path | None = None,
    max_malformed_fraction: float = DEFAULT_MAX_MALFORMED,
) -> dict[str, Any]:
    """Fine-tune ``model_dir`` on ``task`` from ``glue_dir`` and score it on the dev set(s).

    ``warmup`` is a fraction of all optimizer steps; ``epochs`` may be
    fractional (the last epoch is cut short). The fine-tuned weights
    are saved (HF `BertForSequenceClassification` layout; `RobertaPreLayerNormForSequenceClassification`
    for a pre-LN model) only to
    ``keep_weights_dir``. ``gpus`` is how many GPUs the job asked for: with
    any, ``device: auto`` refuses to fall back to the CPU. Returns a JSON-ready dict:

    task, model (the directory), model_name, batch_size, lr, seed, epochs,
    max_seq_len, optimizer (betas, eps, weight_decay, max_grad_norm,
    schedule, warmup, warmup_steps);
    dev: every metric (`metrics.metric_key` names; null when undefined) and
    main; dev_examples per split; majority_baseline (same keys, plus the
    prediction); train_loss (mean over the last epoch's examples) and
    epoch_losses; train_examples, train_steps, examples_per_second (training
    only), train_seconds, eval_seconds, seconds (the whole call); malformed
    (skipped lines per file); device, precision, parameters, versions; and
    weights when kept.
    """
    started = time.perf_counter()
    task = get_task(task)
    model_dir = Path(model_dir)
    _check_arguments(batch_size, lr, epochs, warmup, max_seq_len)
    set_threads(threads)
    device_ = pick_device(device, gpus)  # a job that asked for GPUs must see one
    hardware = device_name(device_)

    data = load_task(glue_dir, task, max_malformed_fraction=max_malformed_fraction)
    tokenizer = load_tokenizer(model_dir)
    pretrained = load_pretrained(model_dir)
    _check_arguments(batch_size, lr, epochs, warmup, max_seq_len, pretrained.config)
    if len(tokenizer) > pretrained.config.vocab_size:
        raise ValueError(f"{model_dir}: the tokenizer has {len(tokenizer)} tokens, the model "
                         f"{pretrained.config.vocab_size} embeddings")
    train = encode(tokenizer, data.train, task, max_seq_len)
    dev = {split: encode(tokenizer, examples, task, max_seq_len) for split, examples in data.dev.items()}

    torch.manual_seed(seed)
    model = BertForGlue(pretrained, task.num_labels).to(device_)
    del pretrained
    optimizer = build_optimizer(model, device_, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    amp_dtype = autocast_dtype(device_, precision)
    autocast = autocast_context(device_, amp_dtype)
    scaler = torch.amp.GradScaler(device_.type, enabled=amp_dtype == torch.float16)
    rng = np.random.default_rng(seed)
    plans = epoch_plans(train.lengths, batch_size, epochs, rng)
    total_steps = sum(len(plan) for plan in plans)
    warmup_steps = math.ceil(warmup * total_steps)
    log.info("%s on %s (%s): %d train examples, %d steps (%d warmup), batch %d, lr %g, %s on %s", model_dir.name,
             task.title, glue_dir, len(train), total_steps, warmup_steps, batch_size, lr,
             amp_dtype or "fp32", hardware)

    desc = f"{task.name} {cell_name(batch_size, lr, seed)}"  # the cell as kdbudget.glue.cells spells it
    train_started = time.perf_counter()
    epoch_losses = train_epochs(model, train, plans, optimizer, scaler, autocast, device_, lr=lr,
                                warmup_steps=warmup_steps, max_grad_norm=max_grad_norm, desc=desc)
    train_seconds = time.perf_counter() - train_started
    if not math.isfinite(epoch_losses[-1]):
        log.warning("%s: the training loss is not finite (%s)", desc, epoch_losses[-1])

    eval_started = time.perf_counter()
    predictions = {split: predict(model, encoded, eval_batch_size, device_, autocast) for split, encoded in dev.items()}
    metrics = dev_metrics(task, {split: (predictions[split], dev[split].labels) for split in dev})
    eval_seconds = time.perf_counter() - eval_started
    baseline = majority_baseline(task, train.labels.tolist(), {split: d.labels.tolist() for split, d in dev.items()})

    result = {
        "task": task.name, "model": str(model_dir), "model_name": model_dir.name, "batch_size": batch_size,
        "lr": lr, "seed": seed, "epochs": epochs, "max_seq_len": max_seq_len,
        "optimizer": {"name": "AdamW", "betas": list(betas), "eps": eps, "weight_decay": weight_decay,
                      "max_grad_norm": max_grad_norm, "schedule": "linear", "warmup": warmup,
                      "warmup_steps": warmup_steps},
        "dev": nan_to_none(metrics),
        # One label (or value) for every dev example: a collapsed run, flagged by the summary, not averaged away.
        "constant_prediction": any(len(np.unique(p)) <= 1 for p in predictions.values()),
        "dev_examples": {split: len(d) for split, d in dev.items()},
        "majority_baseline": baseline,
        "train_loss": epoch_losses[-1] if math.isfinite(epoch_losses[-1]) else None,
        "epoch_losses": [x if math.isfinite(x) else None for x in epoch_losses],
        "train_examples": len(train), "train_steps": total_steps,
        "examples_per_second": sum(len(index) for plan in plans for index in plan) / train_seconds,
        "train_seconds": train_seconds, "eval_seconds": eval_seconds, "seconds": time.perf_counter() - started,
        "malformed": data.malformed, "device": hardware, "precision": str(amp_dtype or torch.float32),
        "parameters": sum(p.numel() for p in model.parameters()), "versions": versions(),
    }
    if keep_weights_dir is not None:
        save_classifier(model, task, model_dir, keep_weights_dir, result)
        result["weights"] = str(keep_weights_dir)
    log.info("%s: dev %s (majority %s), %.0f examples/s, %.0f s", desc,
             result["dev"], baseline["main"], result["examples_per_second"], result["seconds"])
    return result
