"""The MobileBERT student (Sun et al., 2020): transformers' `MobileBertForMaskedLM` behind our `Request`/`MLMOutput`.

The network is transformers' own (inverted-bottleneck blocks: a narrow inter-block width ``hidden_size``, bottleneck
input/output linear layers down to ``intra_bottleneck_size`` where attention and the feed-forward networks run,
``num_feedforward_networks`` stacked FFNs, NoNorm), so a trained student is a `MobileBertForMaskedLM` directory that
`AutoModelForMaskedLM` loads as it is. This module only adapts its outputs, as `KDBertForMaskedLM` returns them:

- the MLM head runs at the masked positions only (the sparse head of the paper's code, as our BERT's);
- hidden states are transformers' (embedding output first, then each block's output at the inter-block width);
- attention probabilities are taken before attention dropout: transformers' eager attention returns them after it,
  so layers whose probabilities are requested run `_probs_attention` (registered under its own name), every other
  pass runs SDPA;
- what transformers cannot give without its own eager path (pre-softmax scores, per-head Q/K/V) is refused with a
  message, before training starts (`check_request`);
- the pass never stops early: every layer runs, which is what `kdbudget.model.flops` counts for this student.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import AttentionInterface, MobileBertConfig, MobileBertForMaskedLM
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from .outputs import IGNORE_INDEX, LayerInternals, MLMOutput, Request

MODEL_TYPE = "mobilebert"
PROBS_ATTENTION = "kdbudget_probs"  # our attention function's name in transformers' registries
FAST_ATTENTION = "sdpa"
NORMALIZATIONS = ("no_norm", "layer_norm")


def _probs_attention(module: nn.Module, query: Tensor, key: Tensor, value: Tensor, attention_mask: Tensor | None,
                     scaling: float | None = None, dropout: float = 0.0, **kwargs: Any) -> tuple[Tensor, Tensor]:
    """transformers' eager attention, returning the probabilities before dropout (eager returns them after)."""
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:  # eager_mask's additive mask: 0 at real keys, the dtype's minimum at padding
        scores = scores + attention_mask
    probs = scores.softmax(dim=-1)
    context = torch.matmul(F.dropout(probs, dropout, module.training), value)
    return context.transpose(1, 2).contiguous(), probs


AttentionInterface.register(PROBS_ATTENTION, _probs_attention)
AttentionMaskInterface.register(PROBS_ATTENTION, eager_mask)


def mobilebert_config(
    num_layers: int,
    hidden_size: int,
    num_heads: int,
    intermediate_size: int,
    vocab_size: int,
    max_positions: int = 512,
    *,
    bottleneck: int,
    embedding_size: int,
    ffn_stack: int,
    normalization: str = "no_norm",
    **overrides: object,
) -> MobileBertConfig:
    """A MobileBERT config: ``hidden_size`` is the inter-block width, ``bottleneck`` the width inside a block
    (attention and FFNs, split into ``num_heads`` heads), ``ffn_stack`` the FFNs per block, ``embedding_size`` the
    width of the word embeddings (a trigram convolution widens them to ``hidden_size``).

    The rest is MobileBERT's design, fixed: bottlenecks on, queries and keys from one shared bottleneck, values
    from the block input, no pooler activation."""
    if bottleneck % num_heads:
        raise ValueError(f"MobileBERT bottleneck {bottleneck} is not a multiple of {num_heads} heads")
    if embedding_size > hidden_size:
        raise ValueError(f"MobileBERT embedding_size {embedding_size} exceeds the inter-block width {hidden_size}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"MobileBERT normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    return MobileBertConfig(
        vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers, num_attention_heads=num_heads,
        intermediate_size=intermediate_size, max_position_embeddings=max_positions, embedding_size=embedding_size,
        intra_bottleneck_size=bottleneck, use_bottleneck=True, true_hidden_size=bottleneck,
        use_bottleneck_attention=False, key_query_shared_bottleneck=True, num_feedforward_networks=ffn_stack,
        normalization_type=normalization, trigram_input=True, classifier_activation=False,
        tie_word_embeddings=True, architectures=["MobileBertForMaskedLM"], **overrides)


def is_mobilebert(config: Any) -> bool:
    return getattr(config, "model_type", None) == MODEL_TYPE


def check_request(request: Request) -> None:
    """Refuse what this student cannot return (a strategy asking for it cannot train a MobileBERT student)."""
    unsupported = [flag for flag in ("scores", "queries", "keys", "values") if getattr(request, flag)]
    if unsupported:
        raise ValueError(
            f"a MobileBERT student returns hidden states, attention probabilities and MLM logits only; this "
            f"strategy asks for {unsupported} (use the mobilebert, vanillakd or nokd strategy with it)")


class KDMobileBertForMaskedLM(nn.Module):
    """transformers' `MobileBertForMaskedLM` (``self.hf``) whose forward returns what a `Request` asks for."""

    def __init__(self, config: MobileBertConfig):
        super().__init__()
        if not is_mobilebert(config):
            raise TypeError(f"expected a MobileBertConfig, got {type(config).__name__}")
        # Our own copy: the attention implementation is switched on it per pass (see forward).
        self.hf = MobileBertForMaskedLM(copy.deepcopy(config))
        self.hf.config._attn_implementation = FAST_ATTENTION
        self.config = self.hf.config

    @property
    def num_layers(self) -> int:
        return self.config.num_hidden_layers

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        labels: Tensor | None = None,
        token_type_ids: Tensor | None = None,
        request: Request | None = None,
        masked_index: Tensor | None = None,
    ) -> MLMOutput:
        """As `KDBertForMaskedLM.forward` (same arguments, same output), always through every layer."""
        request = Request() if request is None else request
        check_request(request)
        selected = request.layer_indices(self.num_layers)
        states_wanted = request.hidden_states or request.embeddings
        # The config is read at every attention call: switched for this pass only.
        self.hf.config._attn_implementation = PROBS_ATTENTION if request.probs else FAST_ATTENTION
        try:
            out = self.hf.mobilebert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                     output_hidden_states=states_wanted, output_attentions=request.probs)
        finally:
            self.hf.config._attn_implementation = FAST_ATTENTION
        sequence = out.last_hidden_state

        logits = loss = None
        if request.logits:
            if labels is None:
                logits = self.hf.cls(sequence)
            else:
                flat_labels = labels.reshape(-1)
                flat = sequence.reshape(-1, sequence.shape[-1])
                index = (flat_labels != IGNORE_INDEX).nonzero().squeeze(1) if masked_index is None else masked_index
                targets = flat_labels.index_select(0, index)
                logits = self.hf.cls(flat.index_select(0, index))
                if request.mlm_loss:
                    loss = F.cross_entropy(logits.float(), targets)
        layers = {index: LayerInternals(probs=out.attentions[index]) for index in sorted(selected)}
        return MLMOutput(
            last_hidden_state=sequence if request.last_hidden_state else None,
            num_layers=self.num_layers,
            logits=logits,
            mlm_loss=loss,
            embeddings=out.hidden_states[0] if request.embeddings else None,
            hidden_states=tuple(out.hidden_states) if request.hidden_states else None,
            layers=layers,
        )
