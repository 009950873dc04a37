"""What a caller asks of the model (`Request`) and what it gets back (`MLMOutput`).

Distillation strategies declare a `Request` for the student and one for the
teacher; the model computes exactly that and nothing more:
- the slow, explicit attention path (needed to expose pre-softmax scores or
  probabilities) runs only in the layers a request selects; every other layer
  uses PyTorch's fused scaled-dot-product attention;
- when neither logits nor hidden states are wanted (MiniLM), the forward pass
  stops inside the deepest selected layer, once its requested internals exist:
  that layer's attention output and feed-forward block, and any later layer,
  would never reach the loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from torch import Tensor

# Padding is masked by adding this to the pre-softmax scores, as BERT and the
# paper's released code do. It is finite so that scores stay usable in an MSE
# (TinyBERT) and so that masked teacher probabilities are exactly 0.
MASK_VALUE = -10000.0

# Label value of unmasked positions (Hugging Face's convention).
IGNORE_INDEX = -100


@dataclass(frozen=True)
class Request:
    """What one forward pass must return.

    logits: MLM logits; at the masked positions only when labels are given.
    mlm_loss: the MLM cross-entropy (needs `logits` and labels).
    last_hidden_state: the last layer's output. With this, `logits` and
        `hidden_states` all False, the model stops early (see `depth`).
    embeddings: the embedding output (after LayerNorm and dropout).
    hidden_states: every layer's output, embedding output first (HF convention).
    layers: layer indices (negative counts from the end) whose internals to
        return; the flags below say which internals.
    scores: pre-softmax attention scores, scaled by 1/sqrt(d_head), with
        `MASK_VALUE` added at padded keys. Forces the explicit attention path
        in the selected layers.
    probs: attention probabilities (before attention dropout). Forces the
        explicit path too.
    queries, keys, values: per-head projections [B, H, L, d_head]; these
        keep the fused attention kernel.
    """

    logits: bool = True
    mlm_loss: bool = True
    last_hidden_state: bool = True
    embeddings: bool = False
    hidden_states: bool = False
    layers: tuple[int, ...] = ()
    scores: bool = False
    probs: bool = False
    queries: bool = False
    keys: bool = False
    values: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))
        if self.mlm_loss and not self.logits:
            raise ValueError("Request: mlm_loss needs logits=True")
        if bool(self.layers) != self.wants_internals:
            raise ValueError(
                "Request: select layers together with at least one of "
                "scores/probs/queries/keys/values, or neither"
            )

    @property
    def wants_internals(self) -> bool:
        return self.scores or self.probs or self.queries or self.keys or self.values

    @property
    def needs_explicit_attention(self) -> bool:
        """True when the selected layers must materialise the L x L scores."""
        return self.scores or self.probs

    def depth(self, num_layers: int) -> tuple[int, bool]:
        """How far the forward pass goes: (full layers to run, whether the next
        layer runs only as far as its requested attention internals)."""
        if self.logits or self.last_hidden_state or self.hidden_states:
            return num_layers, False
        selected = self.layer_indices(num_layers)
        if not selected:
            return 0, False
        return max(selected), True

    def layer_indices(self, num_layers: int) -> frozenset[int]:
        """The selected layers as non-negative indices; fails on out-of-range ones."""
        resolved = set()
        for index in self.layers:
            if not -num_layers <= index < num_layers:
                raise IndexError(f"layer {index} out of range for a {num_layers}-layer model")
            resolved.add(index % num_layers)
        return frozenset(resolved)


@dataclass(frozen=True)
class LayerInternals:
    """Self-attention internals of one layer, each [B, H, L, L] or [B, H, L, d_head]."""

    scores: Tensor | None = None
    probs: Tensor | None = None
    queries: Tensor | None = None
    keys: Tensor | None = None
    values: Tensor | None = None


@dataclass(frozen=True)
class MLMOutput:
    """The result of `KDBertForMaskedLM.forward`.

    logits: [N_mask, V] at the positions where labels != -100, in row-major
        order of those positions; [B, L, V] when no labels were given; None
        when not requested.
    mlm_loss: fp32 scalar, mean cross-entropy over the masked positions.
    last_hidden_state: [B, L, H] unless the forward pass stopped early.
    embeddings: [B, L, H] when requested.
    hidden_states: embedding output then each layer's output, when requested.
    layers: internals of the selected layers, keyed by non-negative index.
    num_layers: the model's depth, so that `layer(-1)` can be resolved.
    """

    last_hidden_state: Tensor | None
    num_layers: int
    logits: Tensor | None = None
    mlm_loss: Tensor | None = None
    embeddings: Tensor | None = None
    hidden_states: tuple[Tensor, ...] | None = None
    layers: Mapping[int, LayerInternals] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", MappingProxyType(dict(self.layers)))

    def layer(self, index: int) -> LayerInternals:
        """Internals of a selected layer; negative indices count from the end."""
        resolved = index % self.num_layers if -self.num_layers <= index < self.num_layers else index
        if resolved not in self.layers:
            raise KeyError(f"layer {index} was not selected in the request (have {sorted(self.layers)})")
        return self.layers[resolved]
