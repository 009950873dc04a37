"""A BERT masked-LM written for pretraining speed, with HF's parameter names.

Leaf-first, after transformers' `modeling_bert.py`: embeddings, self-attention,
self-output, intermediate, output, layer, encoder, prediction head, the model.
The `state_dict` maps 1:1 onto `transformers.BertForMaskedLM` (post-LN, tied
input/output embeddings, `cls.predictions.*`), so checkpoints move both ways
(see `hf_io.py`).

`config.layer_norm` picks where the LayerNorms sit:
- "post" (default, standard BERT, the paper's KD students): each sub-block
  ends with LayerNorm(x + sublayer(x));
- "pre" (the paper's released No-KD code): x + sublayer(LayerNorm(x)) for
  attention and feed-forward, and one final LayerNorm after the last layer;
  the embeddings keep their LayerNorm. This is transformers'
  `RobertaPreLayerNorm` block; the LayerNorms have its parameter names under
  our prefixes (`attention.LayerNorm`, `intermediate.LayerNorm`), the final one
  is `bert.encoder.LayerNorm` (HF: `roberta_prelayernorm.LayerNorm`), and
  `hf_io.py` saves such a model as `RobertaPreLayerNormForMaskedLM`.

What differs from HF is what makes pretraining fast:

- every layer uses `torch.nn.functional.scaled_dot_product_attention`, except
  the layers whose scores or probabilities a distillation strategy asked for;
- the MLM head runs only at the masked positions (the "sparse" head of the
  paper's code): with 15% masking this skips ~85% of the vocabulary projection
  and of the cross-entropy;
- the forward pass returns exactly what a `Request` asks for, in a frozen
  dataclass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import BertConfig
from transformers.activations import ACT2FN

from .outputs import IGNORE_INDEX, MASK_VALUE, LayerInternals, MLMOutput, Request


def bert_config(
    num_layers: int,
    hidden_size: int,
    num_heads: int,
    intermediate_size: int,
    vocab_size: int,
    max_positions: int = 512,
    *,
    layer_norm: str = "post",
    **overrides: object,
) -> BertConfig:
    """A standard `BertConfig` from sizes (dropout 0.1, GELU, init std 0.02).

    `layer_norm` ("post" or "pre") is stored on the config as `config.layer_norm`.
    """
    if hidden_size % num_heads:
        raise ValueError(f"hidden size {hidden_size} is not a multiple of {num_heads} heads")
    check_layer_norm(layer_norm)
    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_positions,
        architectures=["BertForMaskedLM"],
        tie_word_embeddings=True,
        layer_norm=layer_norm,
        **overrides,
    )


LAYER_NORMS = ("post", "pre")


def check_layer_norm(layer_norm: str) -> str:
    if layer_norm not in LAYER_NORMS:
        raise ValueError(f"layer_norm must be one of {LAYER_NORMS}, got {layer_norm!r}")
    return layer_norm


def is_pre_norm(config: BertConfig) -> bool:
    """True for a pre-LN model; configs without the attribute (any HF BERT) are post-LN."""
    return check_layer_norm(getattr(config, "layer_norm", "post")) == "pre"


class BertEmbeddings(nn.Module):
    """Word + position + token-type embeddings, LayerNorm, dropout."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        seq_len = input_ids.shape[1]
        positions = torch.arange(seq_len, device=input_ids.device)
        embeddings = self.word_embeddings(input_ids) + self.position_embeddings(positions)
        if token_type_ids is None:  # one segment: adding row 0 equals looking up zeros
            embeddings = embeddings + self.token_type_embeddings.weight[0]
        else:
            embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(embeddings))


class BertSelfAttention(nn.Module):
    """Multi-head self-attention; fused SDPA unless scores/probs are requested."""

    def __init__(self, config: BertConfig):
        super().__init__()
        if config.hidden_size % config.num_attention_heads:
            raise ValueError("hidden_size must be a multiple of num_attention_heads")
        self.num_heads = config.num_attention_heads
        self.head_size = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_size**-0.5
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout_prob = config.attention_probs_dropout_prob

    def split_heads(self, x: Tensor) -> Tensor:
        """[B, L, H*d] -> [B, H, L, d]"""
        batch, seq_len, _ = x.shape
        return x.view(batch, seq_len, self.num_heads, self.head_size).transpose(1, 2)

    def scores(self, query: Tensor, key: Tensor, key_mask: Tensor | None) -> Tensor:
        """Pre-softmax scores Q K^T / sqrt(d), plus MASK_VALUE at padded keys."""
        scores = torch.matmul(query, key.transpose(-1, -2)) * self.scaling
        if key_mask is not None:
            scores = scores + (~key_mask) * MASK_VALUE
        return scores

    def forward(
        self, hidden: Tensor, key_mask: Tensor | None, request: Request | None = None
    ) -> tuple[Tensor, LayerInternals | None]:
        query, key, value = (self.split_heads(proj(hidden)) for proj in (self.query, self.key, self.value))
        dropout_p = self.dropout_prob if self.training else 0.0
        scores = probs = None
        if request is not None and request.needs_explicit_attention:
            scores = self.scores(query, key, key_mask)
            probs = scores.softmax(dim=-1)
            context = torch.matmul(F.dropout(probs, dropout_p, self.training), value)
        else:
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=key_mask, dropout_p=dropout_p)
        context = context.transpose(1, 2).flatten(2)
        if request is None:
            return context, None
        return context, self._internals(request, scores, probs, query, key, value)

    def internals_only(self, hidden: Tensor, key_mask: Tensor | None, request: Request) -> LayerInternals:
        """The requested internals without the attention output (nothing downstream needs it)."""
        explicit = request.needs_explicit_attention
        query = self.split_heads(self.query(hidden)) if explicit or request.queries else None
        key = self.split_heads(self.key(hidden)) if explicit or request.keys else None
        value = self.split_heads(self.value(hidden)) if request.values else None
        scores = self.scores(query, key, key_mask) if explicit else None
        probs = scores.softmax(dim=-1) if request.probs else None
        return self._internals(request, scores, probs, query, key, value)

    @staticmethod
    def _internals(request: Request, scores, probs, query, key, value) -> LayerInternals:
        return LayerInternals(
            scores=scores if request.scores else None,
            probs=probs if request.probs else None,
            queries=query if request.queries else None,
            keys=key if request.keys else None,
            values=value if request.values else None,
        )


class BertResidualOutput(nn.Module):
    """Projection to the hidden size, dropout, residual, and (post-LN only) the
    LayerNorm: the end of both sub-blocks (HF's BertSelfOutput and BertOutput,
    same parameter names; a pre-LN model has no LayerNorm here, as
    RobertaPreLayerNormSelfOutput/Output)."""

    def __init__(self, config: BertConfig, in_features: int):
        super().__init__()
        self.dense = nn.Linear(in_features, config.hidden_size)
        self.LayerNorm = None if is_pre_norm(config) else nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden: Tensor, residual: Tensor) -> Tensor:
        hidden = self.dropout(self.dense(hidden)) + residual
        return hidden if self.LayerNorm is None else self.LayerNorm(hidden)


class BertAttention(nn.Module):
    """Self-attention and its output block; a pre-LN model normalises the input first
    (the residual stays un-normalised)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertResidualOutput(config, config.hidden_size)
        if is_pre_norm(config):
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        else:
            self.LayerNorm = None

    def _normed(self, hidden: Tensor) -> Tensor:
        return hidden if self.LayerNorm is None else self.LayerNorm(hidden)

    def forward(
        self, hidden: Tensor, key_mask: Tensor | None, request: Request | None = None
    ) -> tuple[Tensor, LayerInternals | None]:
        context, internals = self.self(self._normed(hidden), key_mask, request)
        return self.output(context, hidden), internals

    def internals_only(self, hidden: Tensor, key_mask: Tensor | None, request: Request) -> LayerInternals:
        """The requested internals of this layer's self-attention (see `BertSelfAttention.internals_only`)."""
        return self.self.internals_only(self._normed(hidden), key_mask, request)


class BertIntermediate(nn.Module):
    """Feed-forward expansion; a pre-LN model normalises its input first (as
    RobertaPreLayerNormIntermediate, whose LayerNorm lives here too)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        if is_pre_norm(config):
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        else:
            self.LayerNorm = None
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = ACT2FN[config.hidden_act]

    def forward(self, hidden: Tensor) -> Tensor:
        if self.LayerNorm is not None:
            hidden = self.LayerNorm(hidden)
        return self.intermediate_act_fn(self.dense(hidden))


class BertLayer(nn.Module):
    """Transformer block: attention, then feed-forward (post- or pre-LN, see the sub-modules)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertResidualOutput(config, config.intermediate_size)

    def forward(
        self, hidden: Tensor, key_mask: Tensor | None, request: Request | None = None
    ) -> tuple[Tensor, LayerInternals | None]:
        attended, internals = self.attention(hidden, key_mask, request)
        return self.output(self.intermediate(attended), attended), internals


def run_layer(
    layer: BertLayer, hidden: Tensor, key_mask: Tensor | None, request: Request | None
) -> tuple[Tensor, LayerInternals | None]:
    """One layer's forward: the unit that `kdbudget.train.speed` compiles. Every layer of a
    width shares one compiled graph (its parameters are the graph's inputs), so compiling
    costs one layer's time, not the whole model's."""
    return layer(hidden, key_mask, request)


class BertEncoder(nn.Module):
    """The layers; a pre-LN encoder ends with the final LayerNorm.

    The final LayerNorm lives here rather than beside the embeddings (HF keeps
    it on the base model) so that everything that runs `bert.encoder` (the MLM
    forward, GLUE fine-tuning) gets the normalised last state.

    `layer_call` runs each full layer: `run_layer`, or its compiled form (a
    plain attribute, not a module, so `state_dict` is the same either way).
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))
        self.layer_call = run_layer
        if is_pre_norm(config):
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        else:
            self.LayerNorm = None

    def forward(
        self, hidden: Tensor, key_mask: Tensor | None, request: Request
    ) -> tuple[list[Tensor], dict[int, LayerInternals]]:
        """Returns the outputs of the layers run (embedding output first) and the selected internals.

        Pre-LN: the states are the residual stream after each layer, except the
        last layer's, which is after the final LayerNorm (what the MLM head and
        a classifier read; transformers' `hidden_states` are the same).
        """
        selected = request.layer_indices(len(self.layer))
        full_layers, partial = request.depth(len(self.layer))
        states, internals = [hidden], {}
        for index, layer in enumerate(self.layer[:full_layers]):
            layer_request = request if index in selected else None
            hidden, layer_internals = self.layer_call(layer, hidden, key_mask, layer_request)
            states.append(hidden)
            if layer_internals is not None:
                internals[index] = layer_internals
        if self.LayerNorm is not None and full_layers == len(self.layer):
            states[-1] = self.LayerNorm(states[-1])
        if partial:
            attention = self.layer[full_layers].attention
            internals[full_layers] = attention.internals_only(hidden, key_mask, request)
        return states, internals


class BertModel(nn.Module):
    """Embeddings and encoder (no pooler: a masked LM has none)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden)))


class BertLMPredictionHead(nn.Module):
    """Transform, then the decoder whose weight is tied to the word embeddings."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.decoder.bias = self.bias

    def forward(self, hidden: Tensor) -> Tensor:
        return self.decoder(self.transform(hidden))


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, hidden: Tensor) -> Tensor:
        return self.predictions(hidden)


def masked_positions(labels: Tensor) -> Tensor:
    """Flat indices (into B x L, ascending) of the predicted positions: the `masked_index` of
    `KDBertForMaskedLM.forward`. Meant for host tensors, where counting costs no device sync."""
    return (labels.reshape(-1) != IGNORE_INDEX).nonzero().squeeze(1)


class KDBertForMaskedLM(nn.Module):
    """BERT masked LM whose forward returns what a `Request` asks for.

    Post-LN or pre-LN after `config.layer_norm` (see the module docstring).
    Parameters are named as in `transformers.BertForMaskedLM`; the decoder
    weight is the word-embedding matrix and the decoder bias is
    `cls.predictions.bias` (both appear in `state_dict`, as in HF).
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
            raise ValueError("KDBertForMaskedLM is an encoder: is_decoder/add_cross_attention must be False")
        if getattr(config, "position_embedding_type", "absolute") != "absolute":
            raise ValueError("only absolute position embeddings are supported")
        if not getattr(config, "tie_word_embeddings", True):
            raise ValueError("KDBertForMaskedLM ties input and output embeddings (tie_word_embeddings=False given)")
        is_pre_norm(config)  # fails on an unknown placement before anything is built
        self.config = config
        self.bert = BertModel(config)
        self.cls = BertOnlyMLMHead(config)
        self.apply(self._init_weights)
        self.cls.predictions.decoder.weight = self.bert.embeddings.word_embeddings.weight

    @classmethod
    def from_sizes(
        cls,
        num_layers: int,
        hidden_size: int,
        num_heads: int,
        intermediate_size: int,
        vocab_size: int,
        max_positions: int = 512,
        *,
        layer_norm: str = "post",
        **overrides: object,
    ) -> KDBertForMaskedLM:
        """A freshly initialised model (BERT init: N(0, 0.02), zero biases)."""
        config = bert_config(num_layers, hidden_size, num_heads, intermediate_size, vocab_size, max_positions,
                             layer_norm=layer_norm, **overrides)
        return cls(config)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

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
        """Run the model; `attention_mask` is [B, L] with 1 for real tokens, 0 for padding.

        The MLM head runs only where `labels != -100` (all positions if no
        labels are given). The loss is computed in fp32 whatever the autocast
        dtype. The pass stops early when the request allows (`Request.depth`).

        `masked_index` (optional): those positions as flat indices into
        B x L, ascending (`masked_positions(labels)`, computed on the host). It
        gives exactly the rows that `labels != -100` selects, but boolean
        indexing on a GPU waits for the device to count them; a gather by an
        index made beforehand does not.
        """
        request = Request() if request is None else request
        key_mask = None if attention_mask is None else attention_mask[:, None, None, :].bool()
        embeddings = self.bert.embeddings(input_ids, token_type_ids)
        states, internals = self.bert.encoder(embeddings, key_mask, request)
        sequence = states[-1] if len(states) == self.num_layers + 1 else None

        logits = loss = None
        if request.logits:
            if labels is None:
                logits = self.cls(sequence)
            else:
                flat_labels = labels.reshape(-1)
                flat = sequence.reshape(-1, sequence.shape[-1])
                if masked_index is None:
                    masked = flat_labels != IGNORE_INDEX
                    flat, targets = flat[masked], flat_labels[masked]
                else:
                    flat, targets = flat.index_select(0, masked_index), flat_labels.index_select(0, masked_index)
                logits = self.cls(flat)
                if request.mlm_loss:
                    loss = F.cross_entropy(logits.float(), targets)
        return MLMOutput(
            last_hidden_state=sequence if request.last_hidden_state else None,
            num_layers=self.num_layers,
            logits=logits,
            mlm_loss=loss,
            embeddings=embeddings if request.embeddings else None,
            hidden_states=tuple(states) if request.hidden_states else None,
            layers=internals,
        )
