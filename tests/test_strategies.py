"""Each strategy's loss against a direct computation written out here.

References slice the real tokens out of each sequence and loop over
sequences and heads, instead of masking as the strategies do; they use
neither the strategies' helpers nor the model.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from transformers import BertConfig

from kdbudget.model import KDBertForMaskedLM, LayerInternals, MLMOutput, bert_config
from kdbudget.strategies import FIDELITIES, REGISTRY, build_strategy, teacher_forward

VOCAB, LENGTH = 99, 16
LENGTHS = (16, 11, 6)  # real tokens per sequence; padding at the end
NO_PADDING = (16, 16, 16)

STUDENT = bert_config(2, 32, 4, 37, VOCAB, max_positions=64)
TEACHER_SAME_WIDTH = bert_config(3, 32, 4, 48, VOCAB, max_positions=64)
TEACHER_WIDER = bert_config(3, 48, 4, 64, VOCAB, max_positions=64)  # same heads, other width
TEACHER_OTHER_HEADS = bert_config(3, 48, 6, 64, VOCAB, max_positions=64)  # other heads and width
TEACHER_TWICE_DEEP = bert_config(4, 32, 4, 37, VOCAB, max_positions=64)  # the student's shape, twice its depth


# ---------------------------------------------------------------------------
# Random model outputs


def attention_mask(lengths) -> torch.Tensor:
    return (torch.arange(LENGTH)[None, :] < torch.tensor(lengths)[:, None]).long()


def make_batch(lengths=LENGTHS, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mask = attention_mask(lengths)
    input_ids = torch.randint(1, VOCAB, (len(lengths), LENGTH), generator=g) * mask
    labels = torch.full_like(input_ids, -100)
    for row, n in enumerate(lengths):
        positions = torch.randperm(n, generator=g)[:3]
        labels[row, positions] = torch.randint(0, VOCAB, (3,), generator=g)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def random_output(config: BertConfig, batch, seed: int) -> MLMOutput:
    """What a model could return: scores carry the -10000 mask at padded keys as the model's do."""
    g = torch.Generator().manual_seed(seed)
    size, heads = config.hidden_size, config.num_attention_heads
    n_batch, n_masked = batch["input_ids"].shape[0], int((batch["labels"] != -100).sum())

    def randn(*shape):
        return torch.randn(*shape, generator=g)

    padded_keys = (1 - batch["attention_mask"])[:, None, None, :] * -10000.0
    layers = {
        index: LayerInternals(
            scores=3 * randn(n_batch, heads, LENGTH, LENGTH) + padded_keys,
            queries=randn(n_batch, heads, LENGTH, size // heads),
            keys=randn(n_batch, heads, LENGTH, size // heads),
            values=randn(n_batch, heads, LENGTH, size // heads),
        )
        for index in (0, config.num_hidden_layers - 1)
    }
    logits = 2 * randn(n_masked, VOCAB)
    return MLMOutput(
        last_hidden_state=randn(n_batch, LENGTH, size),
        num_layers=config.num_hidden_layers,
        logits=logits,
        mlm_loss=F.cross_entropy(logits, batch["labels"][batch["labels"] != -100]),
        embeddings=randn(n_batch, LENGTH, size),
        layers=layers,
    )


def log_softmax_rows(x: torch.Tensor) -> torch.Tensor:
    return x - torch.logsumexp(x, dim=-1, keepdim=True)


def kl_sum(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """sum over rows of KL(softmax(teacher) || softmax(student))."""
    log_p, log_q = log_softmax_rows(teacher_logits), log_softmax_rows(student_logits)
    return (log_p.exp() * (log_p - log_q)).sum()


def per_head_merged(x: torch.Tensor, b: int) -> torch.Tensor:
    """[B, H, L, d] -> sequence b as [L, H*d]"""
    return x[b].transpose(0, 1).reshape(LENGTH, -1)


def relation_kl_reference(student_left, student_right, teacher_left, teacher_right, heads, lengths, masked):
    """1/(heads * tokens) sum over sequences, relation heads and rows of KL, X_r Y_r^T / sqrt(d_r)."""
    total, rows = torch.tensor(0.0), 0
    for b, n in enumerate(lengths):
        n = n if masked else LENGTH
        xs, ys = per_head_merged(student_left, b)[:n], per_head_merged(student_right, b)[:n]
        xt, yt = per_head_merged(teacher_left, b)[:n], per_head_merged(teacher_right, b)[:n]
        ds, dt = xs.shape[1] // heads, xt.shape[1] // heads
        for r in range(heads):
            s = xs[:, r * ds:(r + 1) * ds] @ ys[:, r * ds:(r + 1) * ds].T / math.sqrt(ds)
            t = xt[:, r * dt:(r + 1) * dt] @ yt[:, r * dt:(r + 1) * dt].T / math.sqrt(dt)
            total = total + kl_sum(t, s)
        rows += n
    return total / (heads * rows)


def attention_kl_reference(student_scores, teacher_scores, lengths, masked):
    total, rows = torch.tensor(0.0), 0
    heads = student_scores.shape[1]
    for b, n in enumerate(lengths):
        n = n if masked else LENGTH
        for h in range(heads):
            total = total + kl_sum(teacher_scores[b, h, :n, :n], student_scores[b, h, :n, :n])
        rows += n
    return total / (heads * rows)


def close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> bool:
    return math.isclose(a.item(), b.item(), rel_tol=rel, abs_tol=1e-7)


# ---------------------------------------------------------------------------
# Losses against direct computations


def test_registry_and_options() -> None:
    assert {"nokd", "vanillakd", "tinybert", "minilm", "minilmv2", "distilbert", "mobilebert"} <= set(REGISTRY)
    with pytest.raises(KeyError, match="known"):
        build_strategy("nosuchkd", STUDENT, TEACHER_SAME_WIDTH)
    with pytest.raises(TypeError):
        build_strategy("minilm", STUDENT, TEACHER_SAME_WIDTH, temperature=2.0)
    with pytest.raises(ValueError, match="fidelity"):
        build_strategy("nokd", STUDENT, None, fidelity="paper-ish")
    with pytest.raises(ValueError, match="teacher"):
        build_strategy("vanillakd", STUDENT, None)
    with pytest.raises(ValueError, match="same number"):
        build_strategy("tinybert", STUDENT, TEACHER_OTHER_HEADS)
    with pytest.raises(ValueError, match="relation_heads"):
        build_strategy("minilmv2", STUDENT, TEACHER_OTHER_HEADS, relation_heads=3)
    assert build_strategy("nokd", STUDENT).teacher_needs is None


def test_nokd_is_the_mlm_loss() -> None:
    batch = make_batch()
    student = random_output(STUDENT, batch, 1)
    losses = build_strategy("nokd", STUDENT)(student, None, batch)
    assert set(losses) == {"loss", "mlm"}
    assert losses["loss"] is student.mlm_loss


@pytest.mark.parametrize("temperature,t2_scaling", [(1.0, False), (2.0, False), (2.0, True)])
def test_vanillakd_soft_cross_entropy(temperature, t2_scaling) -> None:
    batch = make_batch()
    student, teacher = random_output(STUDENT, batch, 1), random_output(TEACHER_WIDER, batch, 2)
    strategy = build_strategy("vanillakd", STUDENT, TEACHER_WIDER, temperature=temperature, t2_scaling=t2_scaling)
    losses = strategy(student, teacher, batch)

    rows = []
    for zs, zt in zip(student.logits, teacher.logits, strict=True):
        p = torch.exp(zt / temperature) / torch.exp(zt / temperature).sum()
        log_q = zs / temperature - torch.log(torch.exp(zs / temperature).sum())
        rows.append(-(p * log_q).sum())
    expected = torch.stack(rows).mean() * (temperature**2 if t2_scaling else 1.0)
    assert close(losses["kd_pred"], expected)
    assert close(losses["loss"], student.mlm_loss + expected)

    code = build_strategy("vanillakd", STUDENT, TEACHER_WIDER, temperature=temperature, t2_scaling=t2_scaling,
                          fidelity="paper_code")(student, teacher, batch)
    assert close(code["kd_pred"], expected / VOCAB)  # the released code divides by |V|
    assert close(code["mlm"], student.mlm_loss)


@pytest.mark.parametrize("teacher_config", [TEACHER_SAME_WIDTH, TEACHER_WIDER], ids=["same-width", "wider"])
def test_tinybert_losses(teacher_config) -> None:
    batch = make_batch()
    student, teacher = random_output(STUDENT, batch, 1), random_output(teacher_config, batch, 2)
    strategy = build_strategy("tinybert", STUDENT, teacher_config)
    losses = strategy(student, teacher, batch)
    assert set(losses) == {"loss", "emb", "att", "hid"}

    if teacher_config.hidden_size == STUDENT.hidden_size:
        assert not list(strategy.parameters())  # identity: no projection parameters

        def project_emb(x):
            return x

        project_hid = project_emb
    else:
        w_e, b_e = strategy.emb_proj.weight.detach(), strategy.emb_proj.bias.detach()
        w_h, b_h = strategy.hid_proj.weight.detach(), strategy.hid_proj.bias.detach()
        assert w_e.shape == (48, 32) and not torch.equal(w_e, w_h)

        def project_emb(x):
            return x @ w_e.T + b_e

        def project_hid(x):
            return x @ w_h.T + b_h

    s_att, t_att = student.layer(-1).scores, teacher.layer(-1).scores
    att_num = emb_num = hid_num = 0.0
    pairs = tokens = 0
    for b, n in enumerate(LENGTHS):
        for h in range(4):
            att_num += ((s_att[b, h, :n, :n] - t_att[b, h, :n, :n]) ** 2).sum()
            pairs += n * n
        emb_num += ((project_emb(student.embeddings[b, :n]) - teacher.embeddings[b, :n]) ** 2).sum()
        hid_num += ((project_hid(student.last_hidden_state[b, :n]) - teacher.last_hidden_state[b, :n]) ** 2).sum()
        tokens += n
    width = teacher_config.hidden_size
    assert close(losses["att"], att_num / pairs)
    assert close(losses["emb"], emb_num / (tokens * width))
    assert close(losses["hid"], hid_num / (tokens * width))
    assert close(losses["loss"], losses["att"] + losses["emb"] + losses["hid"])

    # The released code: scores <= -100 (padded keys) set to 0, plain means,
    # and an "embedding" term that compares the first layers' attention scores.
    code_strategy = build_strategy("tinybert", STUDENT, teacher_config, fidelity="paper_code")
    if teacher_config.hidden_size != STUDENT.hidden_size:
        code_strategy.hid_proj.load_state_dict(strategy.hid_proj.state_dict())
    code = code_strategy(student, teacher, batch)

    def zero_padded(x):
        return torch.where(x <= -100, torch.zeros_like(x), x)

    assert close(code["att"], ((zero_padded(s_att) - zero_padded(t_att)) ** 2).mean())
    first_s, first_t = student.layer(0).scores, teacher.layer(0).scores
    assert close(code["emb"], ((zero_padded(first_s) - zero_padded(first_t)) ** 2).mean())
    assert close(code["hid"], ((project_hid(student.last_hidden_state) - teacher.last_hidden_state) ** 2).mean())


def test_tinybert_optional_mlm() -> None:
    batch = make_batch()
    student, teacher = random_output(STUDENT, batch, 1), random_output(TEACHER_SAME_WIDTH, batch, 2)
    without = build_strategy("tinybert", STUDENT, TEACHER_SAME_WIDTH)
    assert not without.student_needs.logits and not without.teacher_needs.logits
    with_mlm = build_strategy("tinybert", STUDENT, TEACHER_SAME_WIDTH, add_mlm=True, mlm_weight=0.5)
    assert with_mlm.student_needs.logits and with_mlm.student_needs.mlm_loss
    a, b = without(student, teacher, batch), with_mlm(student, teacher, batch)
    assert close(b["loss"], a["loss"] + 0.5 * student.mlm_loss)
    with pytest.raises(ValueError):
        build_strategy("tinybert", STUDENT, TEACHER_SAME_WIDTH, mlm_weight=0.5)


@pytest.mark.parametrize("fidelity", FIDELITIES)
def test_minilm_same_heads(fidelity) -> None:
    batch = make_batch()
    student, teacher = random_output(STUDENT, batch, 1), random_output(TEACHER_WIDER, batch, 2)
    strategy = build_strategy("minilm", STUDENT, TEACHER_WIDER, fidelity=fidelity)
    assert strategy.student_needs.scores and not strategy.student_needs.queries
    losses = strategy(student, teacher, batch)
    masked = fidelity == "paper"
    s, t = student.layer(-1), teacher.layer(-1)
    expected_att = attention_kl_reference(s.scores, t.scores, LENGTHS, masked)
    expected_vr = relation_kl_reference(s.values, s.values, t.values, t.values, 4, LENGTHS, masked)
    assert close(losses["att"], expected_att)
    assert close(losses["val_rel"], expected_vr)
    assert close(losses["loss"], expected_att + expected_vr)


@pytest.mark.parametrize("fidelity", FIDELITIES)
def test_minilm_different_heads_uses_relation_heads(fidelity) -> None:
    batch = make_batch()
    student, teacher = random_output(STUDENT, batch, 1), random_output(TEACHER_OTHER_HEADS, batch, 2)
    strategy = build_strategy("minilm", STUDENT, TEACHER_OTHER_HEADS, relation_heads=2, fidelity=fidelity)
    needs = strategy.student_needs
    assert needs.queries and needs.keys and needs.values and not needs.scores
    losses = strategy(student, teacher, batch)
    masked = fidelity == "paper"
    s, t = student.layer(-1), teacher.layer(-1)
    assert close(losses["att"], relation_kl_reference(s.queries, s.keys, t.queries, t.keys, 2, LENGTHS, masked))
    assert close(losses["val_rel"], relation_kl_reference(s.values, s.values, t.values, t.values, 2, LENGTHS, masked))


@pytest.mark.parametrize("fidelity", FIDELITIES)
@pytest.mark.parametrize("teacher_config,heads", [(TEACHER_SAME_WIDTH, None), (TEACHER_OTHER_HEADS, 2)])
def test_minilmv2_relations(fidelity, teacher_config, heads) -> None:
    batch = make_batch()
    student, teacher = random_output(STUDENT, batch, 1), random_output(teacher_config, batch, 2)
    strategy = build_strategy("minilmv2", STUDENT, teacher_config, relation_heads=heads, fidelity=fidelity)
    assert not strategy.student_needs.scores and not strategy.student_needs.probs  # fused attention kept
    losses = strategy(student, teacher, batch)
    masked = fidelity == "paper"
    s, t = student.layer(-1), teacher.layer(-1)
    relation_heads = heads or teacher_config.num_attention_heads
    total = 0.0
    for name, field in (("q_rel", "queries"), ("k_rel", "keys"), ("v_rel", "values")):
        xs, xt = getattr(s, field), getattr(t, field)
        expected = relation_kl_reference(xs, xs, xt, xt, relation_heads, LENGTHS, masked)
        assert close(losses[name], expected), name
        total = total + expected
    assert close(losses["loss"], total)


# ---------------------------------------------------------------------------
# Where paper_code differs from the default, and where it must not


def test_paper_code_differs_only_where_the_released_code_does() -> None:
    for lengths, padded in ((NO_PADDING, False), (LENGTHS, True)):
        batch = make_batch(lengths)
        student, teacher = random_output(STUDENT, batch, 1), random_output(TEACHER_SAME_WIDTH, batch, 2)
        for name in REGISTRY:
            if name == "mobilebert":  # needs every layer's hidden states and probabilities: tests/test_mobilebert.py
                continue
            # distilbert refuses a teacher of another shape; the outputs above fit it all the same
            config = TEACHER_TWICE_DEEP if name == "distilbert" else TEACHER_SAME_WIDTH
            paper = build_strategy(name, STUDENT, config)(student, teacher, batch)
            code = build_strategy(name, STUDENT, config, fidelity="paper_code")(student, teacher, batch)
            assert set(paper) == set(code)
            for key in paper:
                if name == "vanillakd" and key in ("kd_pred", "loss"):
                    expected_same = False  # soft CE divided by |V|
                elif name == "tinybert" and key in ("emb", "loss"):
                    expected_same = False  # first-layer attention scores instead of embeddings
                elif name in ("tinybert", "minilm", "minilmv2"):
                    expected_same = not padded  # masking differs only when there is padding
                else:
                    expected_same = True
                same = close(paper[key], code[key])
                assert same == expected_same, (name, key, padded, paper[key].item(), code[key].item())


def test_paper_code_needs() -> None:
    paper = build_strategy("tinybert", STUDENT, TEACHER_SAME_WIDTH)
    code = build_strategy("tinybert", STUDENT, TEACHER_SAME_WIDTH, fidelity="paper_code")
    assert paper.student_needs.embeddings and paper.student_needs.layers == (-1,)
    assert not code.student_needs.embeddings and code.student_needs.layers == (0, -1)
    assert code.emb_proj is None


# ---------------------------------------------------------------------------
# With real models: gradients, the teacher's pass, autocast


def models(teacher_config: BertConfig, seed: int = 0):
    torch.manual_seed(seed)
    return KDBertForMaskedLM(STUDENT).train(), KDBertForMaskedLM(teacher_config)


STRATEGY_CASES = [
    ("nokd", TEACHER_SAME_WIDTH, {}),
    ("vanillakd", TEACHER_WIDER, {}),
    ("tinybert", TEACHER_WIDER, {}),
    ("tinybert", TEACHER_WIDER, {"add_mlm": True}),
    ("minilm", TEACHER_OTHER_HEADS, {"relation_heads": 2}),
    ("minilmv2", TEACHER_OTHER_HEADS, {"relation_heads": 2}),
    ("distilbert", TEACHER_TWICE_DEEP, {}),
]


@pytest.mark.parametrize("fidelity", FIDELITIES)
@pytest.mark.parametrize("name,teacher_config,options", STRATEGY_CASES)
def test_gradients_reach_student_and_projections_only(name, teacher_config, options, fidelity) -> None:
    student, teacher = models(teacher_config)
    strategy = build_strategy(name, STUDENT, teacher_config, fidelity=fidelity, **options)
    batch = make_batch()
    teacher_out = teacher_forward(teacher, batch, strategy.teacher_needs, fidelity)
    student_out = student(**batch, request=strategy.student_needs)
    losses = strategy(student_out, teacher_out, batch)
    losses["loss"].backward()

    assert all(p.grad is None for p in teacher.parameters())
    last_query = student.bert.encoder.layer[-1].attention.self.query.weight
    assert last_query.grad is not None and last_query.grad.abs().sum() > 0
    for param in strategy.parameters():  # the projections
        assert param.grad is not None and param.grad.abs().sum() > 0
    if name == "tinybert" and fidelity == "paper":
        assert len(list(strategy.parameters())) == 4  # W_e and W_h with biases (48 != 32)
    if name == "tinybert" and not options:  # no MLM term: the head gets no gradient
        assert student.cls.predictions.transform.dense.weight.grad is None


@pytest.mark.parametrize("name,teacher_config,options", STRATEGY_CASES[1:])
def test_teacher_logits_only_when_needed(name, teacher_config, options) -> None:
    student, teacher = models(teacher_config)
    strategy = build_strategy(name, STUDENT, teacher_config, **options)
    calls = []
    teacher.cls.register_forward_hook(lambda *args: calls.append(1))
    batch = make_batch()
    out = teacher_forward(teacher, batch, strategy.teacher_needs)
    if name in ("vanillakd", "distilbert"):
        assert out.logits.shape == (int((batch["labels"] != -100).sum()), VOCAB) and calls
        assert out.mlm_loss is None
    else:
        assert out.logits is None and not calls
    tensors = [out.last_hidden_state, out.logits, out.embeddings]
    tensors += [getattr(internals, f) for internals in out.layers.values() for f in ("scores", "queries", "values")]
    tensors = [t for t in tensors if t is not None]
    assert tensors and not any(t.is_inference() for t in tensors)  # usable in the student's autograd graph
    if name.startswith("minilm"):  # only the last layer's attention internals: the pass stops there
        assert out.last_hidden_state is None and set(out.layers) == {2}


def test_teacher_forward_modes() -> None:
    student, teacher = models(TEACHER_SAME_WIDTH)
    needs = build_strategy("minilm", STUDENT, TEACHER_SAME_WIDTH).teacher_needs
    batch = make_batch()
    first = teacher_forward(teacher, batch, needs)
    second = teacher_forward(teacher, batch, needs)
    assert not teacher.training
    assert torch.equal(first.layer(-1).scores, second.layer(-1).scores)
    first = teacher_forward(teacher, batch, needs, "paper_code")
    second = teacher_forward(teacher, batch, needs, "paper_code")
    assert teacher.training  # the released code never calls eval(): dropout stays on
    assert not torch.equal(first.layer(-1).scores, second.layer(-1).scores)
    assert first.layer(-1).scores.grad_fn is None
    assert teacher_forward(teacher, batch, None) is None


@pytest.mark.parametrize("name", ["vanillakd", "tinybert", "minilm", "minilmv2"])
def test_distillation_loss_vanishes_when_student_is_teacher(name) -> None:
    teacher = KDBertForMaskedLM(TEACHER_SAME_WIDTH)
    student = copy.deepcopy(teacher).eval()
    strategy = build_strategy(name, TEACHER_SAME_WIDTH, TEACHER_SAME_WIDTH)
    batch = make_batch()
    teacher_out = teacher_forward(teacher, batch, strategy.teacher_needs)
    student_out = student(**batch, request=strategy.student_needs)
    losses = strategy(student_out, teacher_out, batch)
    if name == "vanillakd":  # a cross-entropy: the teacher's entropy remains, with zero gradient
        logits = student_out.logits.detach().requires_grad_()
        kd = strategy(MLMOutput(student_out.last_hidden_state, 3, logits, student_out.mlm_loss), teacher_out, batch)
        kd["kd_pred"].backward()
        assert logits.grad.abs().max() < 1e-7
        p = teacher_out.logits.softmax(-1)
        assert close(losses["kd_pred"], -(p * p.log()).sum(-1).mean())
    else:
        for key, value in losses.items():
            assert abs(value.item()) < 1e-6, (key, value.item())


@pytest.mark.parametrize("name,teacher_config,options", STRATEGY_CASES)
def test_losses_are_fp32_under_bf16_autocast(name, teacher_config, options) -> None:
    student, teacher = models(teacher_config)
    strategy = build_strategy(name, STUDENT, teacher_config, **options)
    batch = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        teacher_out = teacher_forward(teacher, batch, strategy.teacher_needs)
        student_out = student(**batch, request=strategy.student_needs)
        losses = strategy(student_out, teacher_out, batch)
    for key, value in losses.items():
        assert value.dtype == torch.float32 and value.dim() == 0 and torch.isfinite(value), key
    losses["loss"].backward()
