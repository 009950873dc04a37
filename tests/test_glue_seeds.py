"""GLUE seed aggregation: per cell the mean, sample std and median over seeds, the cell chosen by the mean,
degenerate (constant-prediction) seeds flagged. Every expected number is worked out by hand below."""

from __future__ import annotations

import pytest

from kdbudget.glue.select import render_table, select_best, summarize


def run(task: str, batch_size: int, lr: float, seed: int, main: float, constant: bool = False) -> dict:
    metric = {"rte": "accuracy", "cola": "mcc"}[task]
    return {"task": task, "batch_size": batch_size, "lr": lr, "seed": seed, "epochs": 3,
            "dev": {metric: main, "main": main}, "constant_prediction": constant,
            "majority_baseline": {metric: 0.5, "main": 0.5}}


# RTE, two cells x three seeds:
#   bs16_lr1e-05: 0.60, 0.70, 0.65 -> mean 0.65, median 0.65, std sqrt(((-.05)^2 + .05^2 + 0) / 2) = 0.05
#   bs32_lr1e-05: 0.80, 0.50, 0.62 -> mean 0.64, median 0.62; its best seed (0.80) would win a max over seeds,
#   the mean does not.
RTE = [run("rte", 16, 1e-5, 0, 0.60), run("rte", 16, 1e-5, 1, 0.70), run("rte", 16, 1e-5, 2, 0.65),
       run("rte", 32, 1e-5, 0, 0.80), run("rte", 32, 1e-5, 1, 0.50), run("rte", 32, 1e-5, 2, 0.62)]


def test_the_cell_with_the_best_mean_wins_with_its_std_median_and_seeds():
    best = select_best(list(reversed(RTE)), "rte")  # the order results arrive in does not matter
    assert (best["cell"]["batch_size"], best["cell"]["lr"]) == (16, 1e-5)
    assert best["main"] == best["score"] == pytest.approx(0.65)
    assert best["seeds"] == [0.60, 0.70, 0.65] and best["seed_numbers"] == [0, 1, 2]  # seed order
    assert best["std"] == pytest.approx(0.05) and best["median"] == pytest.approx(0.65)
    assert best["degenerate"] is False and best["degenerate_seeds"] == []
    other = next(c for c in best["cells"] if c["batch_size"] == 32)
    # std of 0.80, 0.50, 0.62: deviations .16, -.14, -.02 -> (.0256 + .0196 + .0004) / 2 = .0228
    assert other["main"] == pytest.approx(0.64) and other["median"] == pytest.approx(0.62)
    assert other["std"] == pytest.approx(0.0228 ** 0.5)


def test_equal_means_go_to_the_smaller_lr_then_batch_size():
    runs = [run("rte", 32, 3e-5, s, v) for s, v in ((0, 0.5), (1, 0.7))] + \
           [run("rte", 16, 5e-5, s, v) for s, v in ((0, 0.6), (1, 0.6))]
    best = select_best(runs, "rte")
    assert (best["cell"]["batch_size"], best["cell"]["lr"], best["main"]) == (32, 3e-5, pytest.approx(0.6))


def test_a_degenerate_seed_is_flagged_not_hidden():
    # CoLA, one cell: seed 1 collapsed to one label (MCC 0). Mean (0.30 + 0 + 0.24) / 3 = 0.18,
    # median 0.24, std: deviations .12, -.18, .06 -> (.0144 + .0324 + .0036) / 2 = .0252.
    runs = [run("cola", 32, 1e-4, 0, 0.30), run("cola", 32, 1e-4, 1, 0.0, constant=True),
            run("cola", 32, 1e-4, 2, 0.24)]
    best = select_best(runs, "cola")
    assert best["main"] == pytest.approx(0.18) and best["median"] == pytest.approx(0.24)
    assert best["std"] == pytest.approx(0.0252 ** 0.5)
    assert best["degenerate"] is True and best["degenerate_seeds"] == [1]
    # A result from before the flag existed: MCC exactly 0 is read as a constant prediction.
    old = {k: v for k, v in run("cola", 32, 1e-4, 1, 0.0).items() if k != "constant_prediction"}
    assert select_best([runs[0], old], "cola")["degenerate_seeds"] == [1]


def test_one_seed_keeps_the_single_run_selection():
    best = select_best([run("rte", 16, 1e-5, 42, 0.61), run("rte", 32, 1e-5, 42, 0.64)], "rte")
    assert best["main"] == 0.64 and best["cell"]["seed"] == 42 and best["cell"]["batch_size"] == 32
    assert best["seeds"] == [0.64] and best["std"] is None and best["median"] == 0.64


def test_a_missing_seed_is_named_and_a_duplicate_refused():
    with pytest.raises(LookupError, match="bs32_lr1e-05_seed2"):
        select_best(RTE[:5], "rte")
    with pytest.raises(ValueError, match="two results for cell bs16_lr1e-05"):
        select_best([*RTE, run("rte", 16, 1e-5, 0, 0.1)], "rte")


def test_the_summary_averages_per_seed_and_renders_the_spread():
    cola = [run("cola", 16, 1e-5, s, v) for s, v in ((0, 0.20), (1, 0.40), (2, 0.30))]
    summary = summarize("nokd6", {"rte": RTE, "cola": cola})
    # Avg per seed over RTE (chosen cell bs16) and CoLA: (0.60+0.20)/2, (0.70+0.40)/2, (0.65+0.30)/2.
    assert summary["glue_seeds"] == [0, 1, 2]
    assert summary["average_by_seed"] == pytest.approx([0.40, 0.55, 0.475])
    assert summary["average"] == pytest.approx((0.65 + 0.30) / 2)
    # std of 0.40, 0.55, 0.475: deviations -.075, .075, 0 -> (2 x .005625) / 2 = .005625
    assert summary["average_std"] == pytest.approx(0.005625 ** 0.5)
    assert "| RTE | accuracy | 65.0 ± 5.0 |" in render_table(summary)
