"""Pretraining seeds and budget scales: model names, KD-to-No-KD matching, scaled budgets, the run spec's seed
and record, and the teacher's cost (config, cited default, measured)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kdbudget.config import ConfigError, validate_config
from kdbudget.plan import check_teachers, plan_models, student_spec
from kdbudget.teacher_cost import measured_cost, planned_teacher_cost, resolve_teacher_cost

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
TINY = {"layers": 2, "hidden": 32, "heads": 2, "intermediate": 64}


def config(**group) -> dict:
    base = {"student": TINY, "teacher": "t", "strategies": ["nokd", "minilm"],
            "budget": {"mode": "reference", "measure": "flops", "epochs": 2}}
    return validate_config({"seed": 42, "teachers": {"t": {"source": "dir", "path": "/nowhere"}},
                            "groups": {"g": {**base, **group}}}, SCHEMA)


def spec_of(cfg: dict, name: str) -> dict:
    return student_spec(cfg, plan_models(cfg)[name], data_dir="d", out_dir="o", checkpoint_dir="c",
                        teacher_dir="/nowhere", reference_summary=None)


def test_without_seeds_or_scales_the_names_and_seed_are_unchanged():
    models = plan_models(config())
    assert list(models) == ["nokd2", "minilm2"]
    assert [(m.base, m.seed, m.budget_scale) for m in models.values()] == [("nokd2", 42, 1.0), ("minilm2", 42, 1.0)]
    assert models["minilm2"].reference_name(models) == "nokd2"
    assert spec_of(config(), "minilm2")["seed"] == 42


def test_seeds_and_scales_plan_every_name_each_kd_run_held_to_its_own_reference():
    cfg = config(seeds=[0, 1], budget_scales=[0.5, 1, 2])
    models = plan_models(cfg)
    expected = {  # KD run -> its No-KD run: same scale, same seed
        "minilm2-x0.5-seed0": "nokd2-x0.5-seed0", "minilm2-x0.5-seed1": "nokd2-x0.5-seed1",
        "minilm2-seed0": "nokd2-seed0", "minilm2-seed1": "nokd2-seed1",
        "minilm2-x2-seed0": "nokd2-x2-seed0", "minilm2-x2-seed1": "nokd2-x2-seed1",
    }
    assert sorted(models) == sorted([*expected, *expected.values()])
    assert {n: models[n].reference_name(models) for n in expected} == expected
    assert all(models[n].reference_name(models) is None for n in expected.values())
    m = models["minilm2-x0.5-seed1"]
    assert (m.base, m.seed, m.budget_scale, m.group) == ("minilm2", 1, 0.5, "g")
    # The reference run of scale s trains s x 2 epochs; its KD runs get what it spent (same measure).
    assert [models[f"nokd2{s}-seed0"].budget["epochs"] for s in ("-x0.5", "", "-x2")] == [1.0, 2, 4.0]
    assert models["minilm2-x2-seed0"].budget["measure"] == "flops"


def test_the_run_spec_trains_with_the_models_seed_and_records_its_plan():
    cfg = config(seeds=[0, 1], budget_scales=[0.25])
    spec = spec_of(cfg, "minilm2-x0.25-seed1")
    assert spec["seed"] == 1
    assert {k: spec["record"][k] for k in ("base", "seed", "budget_scale", "group")} == \
        {"base": "minilm2", "seed": 1, "budget_scale": 0.25, "group": "g"}
    assert spec["budget"]["epochs"] == 0.5
    assert "teacher_cost" not in spec_of(cfg, "nokd2-x0.25-seed1")["record"]


def test_an_explicit_budget_scales_its_limit():
    models = plan_models(config(strategies=["nokd"], budget={"mode": "tokens", "limit": 1000}, budget_scales=[0.5]))
    assert list(models) == ["nokd2-x0.5"]
    assert models["nokd2-x0.5"].budget["limit"] == 500


def test_bad_seeds_and_scales_name_their_key():
    for group, key in (({"seeds": []}, "groups.g.seeds"), ({"seeds": [1, 1]}, "groups.g.seeds"),
                       ({"budget_scales": [0]}, "groups.g.budget_scales.0"),
                       ({"budget_scales": [1e-7, 1.0000001e-7]}, "groups.g.budget_scales")):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            plan_models(config(**group))


def test_teacher_cost_from_config_and_the_cited_bert_defaults():
    cfg = config()
    cfg["teachers"]["t"]["cost"] = {"gpu_hours": 96.0}
    assert spec_of(cfg, "minilm2")["record"]["teacher_cost"] == {
        "flops": None, "gpu_hours": 96.0, "source": "config", "reference": "config key 'teachers.t.cost'"}
    base = planned_teacher_cost("b", {"source": "hub", "name": "bert-base-uncased"})
    large = planned_teacher_cost("l", {"source": "hub", "name": "bert-large-uncased"})
    # 6 N D: N = 110M (340M) parameters, D = 256 x 512 x 1M steps = 1.28e11 tokens (Devlin et al. 2019).
    assert base["flops"] == pytest.approx(8.448e19) and large["flops"] == pytest.approx(2.6112e20)
    assert base["source"] == large["source"] == "default" and "Devlin" in base["reference"]
    unknown = planned_teacher_cost("t", {"source": "dir", "path": "/x"})
    assert (unknown["flops"], unknown["gpu_hours"], unknown["source"]) == (None, None, "default")


def test_a_cost_on_a_pretrained_teacher_or_without_numbers_is_refused():
    cfg = config()
    cfg["teachers"]["t"] = {"source": "pretrain", "shape": TINY, "budget": {"mode": "tokens", "limit": 10},
                            "cost": {"flops": 1.0}}
    with pytest.raises(ConfigError, match=r"teachers\.t\.cost"):
        check_teachers(cfg)
    cfg["teachers"]["t"] = {"source": "dir", "path": "/x", "cost": {"reference": "a paper"}}
    with pytest.raises(ConfigError, match=r"teachers\.t\.cost"):
        check_teachers(cfg)


def test_a_pretrained_teachers_cost_is_measured_from_its_summary(tmp_path):
    (tmp_path / "summary.json").write_text('{"spent": {"flops": 3.0e15, "seconds": 5400.0}, '
                                           '"device": "NVIDIA H200 x 4", "device_type": "cuda"}')
    planned = planned_teacher_cost("demo", {"source": "pretrain"})
    assert planned["source"] == "measured" and planned["flops"] is None
    cost = resolve_teacher_cost(planned, tmp_path)
    # 5400 s on 4 GPUs = 6 GPU-hours.
    assert cost == {"flops": 3.0e15, "gpu_hours": 6.0, "source": "measured",
                    "reference": str(tmp_path / "summary.json")}
    on_cpu = measured_cost({"spent": {"flops": 2.0, "seconds": 7.0}, "device": "AMD EPYC", "device_type": "cpu"}, "r")
    assert (on_cpu["flops"], on_cpu["gpu_hours"]) == (2.0, None)
    with pytest.raises(FileNotFoundError):
        resolve_teacher_cost(planned, tmp_path / "missing")
