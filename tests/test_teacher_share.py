"""The teacher's share of a step's FLOPs and whether its forward pass runs in full, by hand."""

from __future__ import annotations

import pytest

from kdbudget.model import bert_config
from kdbudget.model.flops import teacher_forward_extent, teacher_step_flops, train_step_flops
from kdbudget.strategies import build_strategy

VOCAB, LENGTH, BATCH, MASKED = 100, 16, 4, 2
STUDENT = bert_config(1, 32, 4, 64, VOCAB, max_positions=64)
TEACHER = bert_config(2, 32, 4, 64, VOCAB, max_positions=64)


def test_vanilla_kds_teacher_runs_in_full_and_its_share_is_one_full_forward():
    strategy = build_strategy("vanillakd", STUDENT, TEACHER)
    # Per token, one layer: 8 h^2 + 4 h i + 4 L h = 8192 + 8192 + 2048 = 18432; two layers 36864.
    # MLM head per masked token 2 h^2 + 2 h V = 2048 + 6400 = 8448, times 2 masked / 16 = 1056 per token.
    # 4 x 16 = 64 tokens x 37920 = 2,426,880.
    share = teacher_step_flops(TEACHER, strategy, BATCH, LENGTH, MASKED)
    assert share == pytest.approx(2_426_880)
    assert teacher_forward_extent(TEACHER, strategy.teacher_needs) == "full"
    # The step's total less the teacher's share is what the student alone costs (nokd, same student).
    assert train_step_flops(STUDENT, TEACHER, strategy, BATCH, LENGTH, MASKED) - share == pytest.approx(
        train_step_flops(STUDENT, None, "nokd", BATCH, LENGTH, MASKED) + BATCH * LENGTH
        * strategy.extra_flops_per_token(LENGTH))


@pytest.mark.parametrize("name", ["minilm", "tinybert"])
def test_minilm_and_tinybert_stop_the_teacher_early(name):
    strategy = build_strategy(name, STUDENT, TEACHER)
    assert teacher_forward_extent(TEACHER, strategy.teacher_needs) == "partial"
    assert 0 < teacher_step_flops(TEACHER, strategy, BATCH, LENGTH, MASKED) < 2_426_880


def test_no_teacher_no_share():
    assert teacher_step_flops(None, build_strategy("nokd", STUDENT, None), BATCH, LENGTH, MASKED) == 0.0
