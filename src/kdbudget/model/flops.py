"""Analytic FLOP counts of a pretraining step, from the model configs.

The budget and the throughput report compare strategies by these numbers, so
they count what the models actually compute, matrix products only (a
multiply-add is 2 FLOPs; biases, LayerNorm, softmax, GELU, dropout and the
embedding lookups are left out: together under 1% at BERT sizes).

Per token of a sequence of length L, for hidden size h, intermediate size i,
vocabulary V:

    encoder layer, forward   8 h^2        Q, K, V and output projections
                           + 4 h i        the two feed-forward matrices
                           + 4 L h        Q K^T and (probs) V over L keys
    MLM head, forward        2 h^2 + 2 h V, at masked positions only, i.e.
                             times m / L for m masked tokens per sequence

A training step costs 3x the forward pass for the student (the backward pass
computes a gradient for each matrix operand: 2x), 1x for the teacher (no
backward), plus the strategy's own matrix products (projections and relation
matrices; `Strategy.extra_flops_per_token`). What each forward pass computes
comes from the strategy's declared `Request`s, so a new strategy needs no
change here: the MLM head runs only if logits are requested, and a pass that
needs only a layer's attention internals stops there (`Request.depth`), that
last layer costing 2 h^2 per Q/K/V projection computed, + 2 L h for the
scores. (Everything the student computes then reaches its loss, so the 3x
holds exactly; `tests/test_flops.py` checks this against PyTorch's counter.)

Compared with the reference numbers in notes/reference-code.md (6 x
non-embedding parameters + attention + sparse MLM head): this formula gives
284.4 MFLOP/token for training a 6L/768 student with m = 20, L = 128
(reference: ~284), 955.1 for the paper's 12L/1024/16-head student (the
teacher's width, as `config/paper.yaml` configures it; reference: ~954),
182.1 for a BERT-base teacher forward with its sparse head (reference: ~182)
and 626.7 for BERT-large (~626). Ours drops the bias terms of "6 x params"
(~0.03%).

The MobileBERT student (`mobilebert.py`; inter-block width h, bottleneck b,
FFN inner size i, F stacked FFNs, embedding width e) counts, per token:

    embeddings, forward      2 (3e) h     the trigram convolution (a Linear 3e -> h)
    block, forward           2 h b + 2 h b   input bottleneck, shared Q/K bottleneck
                           + 2 b^2 + 2 b^2   Q and K (from the shared bottleneck)
                           + 2 h b           V (from the block input, width h)
                           + 2 b^2           attention output
                           + F (4 b i)       the F stacked FFNs (b -> i -> b)
                           + 2 b h           output bottleneck
                           + 4 L b           Q K^T and (probs) V over L keys
                           = 8 h b + 6 b^2 + 4 F b i + 4 L b
    MLM head, forward        2 h^2 + 2 h V at masked positions (its transform is h -> h, and its
                             output matrix [E^T; W] is h x V), as BERT's formula with h

It always runs every block (it does not stop early), so a request's depth is
not consulted; its head runs only if logits are requested.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from transformers import BertConfig

from .mobilebert import is_mobilebert
from .outputs import Request

if TYPE_CHECKING:
    from ..strategies.base import Strategy

TRAIN_MULTIPLIER = 3  # forward + backward (2x forward)


def layer_forward_flops_per_token(config: BertConfig, seq_len: int) -> int:
    """Forward FLOPs of one encoder layer per token: 8h^2 + 4hi + 4Lh (MobileBERT: see the module docstring)."""
    h, i = config.hidden_size, config.intermediate_size
    if is_mobilebert(config):
        b, stack = config.intra_bottleneck_size, config.num_feedforward_networks
        return 8 * h * b + 6 * b * b + 4 * stack * b * i + 4 * seq_len * b
    return 8 * h * h + 4 * h * i + 4 * seq_len * h


def embedding_forward_flops_per_token(config: BertConfig) -> int:
    """Matrix products of the embeddings: none for BERT (lookups), MobileBERT's trigram Linear 3e -> h."""
    if is_mobilebert(config):
        return 2 * 3 * config.embedding_size * config.hidden_size
    return 0


def mlm_head_forward_flops_per_masked_token(config: BertConfig) -> int:
    """Forward FLOPs of the MLM head at one masked position: 2h^2 + 2hV."""
    h = config.hidden_size
    return 2 * h * h + 2 * h * config.vocab_size


def forward_flops_per_token(
    config: BertConfig, seq_len: int, masked_per_seq: float, with_head: bool = True
) -> float:
    """Forward FLOPs per token of the encoder plus (optionally) the sparse MLM head."""
    encoder = embedding_forward_flops_per_token(config) + config.num_hidden_layers * layer_forward_flops_per_token(
        config, seq_len)
    head = mlm_head_forward_flops_per_masked_token(config) * masked_per_seq / seq_len if with_head else 0.0
    return encoder + head


def request_forward_flops_per_token(
    config: BertConfig, seq_len: int, masked_per_seq: float, request: Request
) -> float:
    """Forward FLOPs per token of a pass under `request` (early stop, head only if logits)."""
    h = config.hidden_size
    if is_mobilebert(config):  # every block runs, whatever the request (see the module docstring)
        return forward_flops_per_token(config, seq_len, masked_per_seq, with_head=request.logits)
    full_layers, partial = request.depth(config.num_hidden_layers)
    flops = full_layers * layer_forward_flops_per_token(config, seq_len)
    if partial:
        explicit = request.needs_explicit_attention
        projections = sum((explicit or request.queries, explicit or request.keys, request.values))
        flops += projections * 2 * h * h + (2 * seq_len * h if explicit else 0)
    if request.logits:
        flops += mlm_head_forward_flops_per_masked_token(config) * masked_per_seq / seq_len
    return flops


def train_flops_per_token(config: BertConfig, seq_len: int, masked_per_seq: float, with_head: bool = True) -> float:
    """Training (forward + backward) FLOPs per token of a model on its own."""
    return TRAIN_MULTIPLIER * forward_flops_per_token(config, seq_len, masked_per_seq, with_head)


def teacher_step_flops(teacher_config: BertConfig | None, strategy: Strategy, batch_size: int, seq_len: int,
                       masked_per_seq: float) -> float:
    """The teacher's forward passes' part of `train_step_flops` (0 without a teacher)."""
    if strategy.teacher_needs is None or teacher_config is None:
        return 0.0
    return batch_size * seq_len * request_forward_flops_per_token(
        teacher_config, seq_len, masked_per_seq, strategy.teacher_needs)


def teacher_forward_extent(teacher_config: BertConfig, request: Request) -> str:
    """"full" when the teacher's pass computes every layer and its MLM head (what the paper's code always
    ran), "partial" when the strategy lets it stop early (MiniLM: the last layer's attention; TinyBERT:
    no MLM head)."""
    full_layers, partial = request.depth(teacher_config.num_hidden_layers)
    complete = full_layers == teacher_config.num_hidden_layers and not partial and request.logits
    return "full" if complete else "partial"


def train_step_flops(
    student_config: BertConfig,
    teacher_config: BertConfig | None,
    strategy: str | Strategy,
    batch_size: int,
    seq_len: int,
    masked_per_seq: float,
    **strategy_options: object,
) -> float:
    """FLOPs of one training step of `batch_size` sequences under a strategy.

    = B L [ 3 F_S(student_needs) + F_T(teacher_needs), if a teacher is used,
            + the strategy's extra matrix products ]
    with F(request) = `request_forward_flops_per_token`.
    `strategy` is a registered name (built with `strategy_options`) or a built
    strategy. `masked_per_seq` may be fractional (an average).
    """
    if isinstance(strategy, str):
        from ..strategies import build_strategy

        strategy = build_strategy(strategy, student_config, teacher_config, **strategy_options)
    elif strategy_options:
        raise TypeError("strategy options are only accepted with a strategy name")
    student = request_forward_flops_per_token(student_config, seq_len, masked_per_seq, strategy.student_needs)
    per_token = TRAIN_MULTIPLIER * student
    if strategy.teacher_needs is not None:
        if teacher_config is None:
            raise ValueError(f"strategy {strategy.name!r} needs a teacher config")
        per_token += request_forward_flops_per_token(teacher_config, seq_len, masked_per_seq, strategy.teacher_needs)
    per_token += strategy.extra_flops_per_token(seq_len)
    return batch_size * seq_len * per_token
