"""The strategy registry: the schema as the validator applies it, the classes, the plan and the report agree
with it; it is torch-free; and a new strategy is one file and one registry line (slow, end to end)."""

from __future__ import annotations

import csv
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import SNAKEMAKE, base_config
from jsonschema import Draft202012Validator

from kdbudget.config import ConfigError, complete_schema, load_schema, validate_config
from kdbudget.strategies.registry import STRATEGIES, StrategyInfo

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
TINY = {"layers": 2, "hidden": 32, "heads": 4, "intermediate": 64}

# The paper's strategies and their settings (section 3 and the released code), and the other systems of its
# Table 1 (DistilBERT: the released command's weights and temperature), written out here.
PAPER = {
    "nokd": ("No-KD", 1e-3, False, {}),
    "vanillakd": ("Vanilla-KD", 5e-4, True, {"temperature": 1.0, "t2_scaling": False}),
    "tinybert": ("TinyBERT", 5e-4, True, {"add_mlm": False, "mlm_weight": 1.0}),
    "minilm": ("MiniLM", 5e-4, True, {"relation_heads": None}),
    "minilmv2": ("MiniLMv2", 5e-4, True, {"relation_heads": None}),
    "distilbert": ("DistilBERT", 5e-4, True, {"temperature": 2.0, "alpha_ce": 5.0, "alpha_mlm": 2.0, "alpha_cos": 1.0}),
    # Table 1's other systems, not in its Table 2 (MobileBERT: Sun et al. 2020, its alpha = 0.5).
    "mobilebert": ("MobileBERT", 5e-4, True, {"schedule": "joint", "mlm_weight": 0.5, "temperature": 1.0}),
}


def group_config(strategies: list[str], **pretrain) -> dict:
    return {"teachers": {"t": {"source": "dir", "path": "/nowhere"}},
            "groups": {"g": {"student": TINY, "teacher": "t", "strategies": strategies,
                             "budget": {"mode": "reference"}}},
            "pretrain": pretrain}


def test_the_registry_holds_the_papers_strategies():
    assert {name: (s.label, s.lr, s.teacher, s.option_defaults()) for name, s in STRATEGIES.items()} == PAPER


def test_the_validated_schema_takes_names_lrs_and_options_from_the_registry():
    config = validate_config(group_config(list(STRATEGIES)), SCHEMA)
    assert config["pretrain"]["lr"] == {name: s.lr for name, s in STRATEGIES.items()}
    assert config["pretrain"]["strategy_options"] == {name: s.option_defaults() for name, s in STRATEGIES.items()}
    assert config["groups"]["g"]["strategies"] == list(STRATEGIES)
    # An override is kept and the rest still defaulted; every option is checked against its registered type.
    config = validate_config(group_config(["nokd"], lr={"minilm": 1e-4},
                                          strategy_options={"vanillakd": {"temperature": 2.0}}), SCHEMA)
    assert config["pretrain"]["lr"] == {**{name: s.lr for name, s in STRATEGIES.items()}, "minilm": 1e-4}
    assert config["pretrain"]["strategy_options"]["vanillakd"] == {"temperature": 2.0, "t2_scaling": False}
    for bad, key in ((group_config(["nosuchkd"]), r"groups\.g\.strategies\.0"),
                     (group_config(["nokd"], lr={"nosuchkd": 1e-4}), r"pretrain\.lr\.nosuchkd"),
                     (group_config(["nokd"], lr={"nokd": 0}), r"pretrain\.lr\.nokd"),
                     (group_config(["nokd"], strategy_options={"minilm": {"temperature": 2}}),
                      r"pretrain\.strategy_options\.minilm\.temperature"),
                     (group_config(["nokd"], strategy_options={"vanillakd": {"temperature": "hot"}}),
                      r"pretrain\.strategy_options\.vanillakd\.temperature"),
                     (group_config(["nokd"], strategy_options={"minilm": {"relation_heads": 0}}),
                      r"pretrain\.strategy_options\.minilm\.relation_heads")):
        with pytest.raises(ConfigError, match=key):
            validate_config(bad, SCHEMA)


def test_the_schema_file_alone_admits_no_strategy():
    """The file's placeholders admit nothing, so no validator can take a strategy the registry does not know."""
    raw = load_schema(SCHEMA)
    assert not Draft202012Validator(raw).is_valid(group_config(["nokd"]))
    assert Draft202012Validator(complete_schema(raw)).is_valid(group_config(["nokd"]))
    assert raw == load_schema(SCHEMA)  # completing works on a copy


def test_each_class_takes_exactly_the_registered_options_with_their_defaults():
    from kdbudget.model import bert_config
    from kdbudget.strategies import REGISTRY, Strategy, build_strategy

    # A teacher of the student's shape, deeper: every strategy takes it (distilbert needs the same shape).
    student, teacher = bert_config(2, 32, 4, 37, 99, max_positions=64), bert_config(3, 32, 4, 37, 99, max_positions=64)
    assert list(REGISTRY) == list(STRATEGIES)
    for name, info in STRATEGIES.items():
        cls = REGISTRY[name]
        assert issubclass(cls, Strategy) and cls.name == name and cls.__module__ == f"kdbudget.strategies.{name}"
        keywords = {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()
                    if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "fidelity"}
        assert keywords == info.option_defaults(), name
        for option, schema in info.options.items():
            assert Draft202012Validator(dict(schema)).is_valid(schema["default"]), (name, option)
        built = build_strategy(name, student, teacher)
        assert (built.teacher_needs is not None) == info.teacher, name


def test_the_plan_and_the_report_read_the_registry():
    from kdbudget.plan import plan_models
    from kdbudget.report.plots import COLORS, _color
    from kdbudget.report.table import label

    models = plan_models(validate_config(group_config(list(STRATEGIES)), SCHEMA))
    assert {m.strategy: (m.teacher, m.lr) for m in models.values()} == {
        name: ("t" if teacher else None, lr) for name, (_, lr, teacher, _) in PAPER.items()}
    assert [label(name, 6) for name in PAPER] == ["No-KD₆", "Vanilla-KD₆", "TinyBERT₆", "MiniLM₆", "MiniLMv2₆",
                                                  "DistilBERT₆", "MobileBERT₆"]
    assert COLORS == {name: s.color for name, s in STRATEGIES.items()} and len(set(COLORS.values())) == len(COLORS)
    assert _color("unregistered").startswith("#")


def test_the_registry_config_and_report_import_no_torch():
    code = ("import sys, kdbudget.strategies, kdbudget.strategies.registry, kdbudget.config, kdbudget.plan, "
            "kdbudget.report.table; assert 'torch' not in sys.modules and 'transformers' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "Bad"}, "lowercase"), ({"name": "2kd"}, "lowercase"), ({"color": "blue"}, "colour"),
    ({"lr": 0}, "lr"), ({"options": {"t": {"type": "number"}}}, "default"),
    ({"options": {"fidelity": {"enum": ["paper"], "default": "paper"}}}, "fidelity"),
])
def test_bad_registry_entries_are_refused(kwargs, message):
    entry = {"name": "toy", "cls": "Toy", "label": "Toy", "color": "#123456", "lr": 1e-3, **kwargs}
    with pytest.raises(ValueError, match=message):
        StrategyInfo(**entry)


# --- a new strategy end to end ------------------------------------------------------------------------------------

TOY_MODULE = '''"""A toy distillation strategy: MLM plus a weighted soft cross-entropy to the teacher's predictions."""

from __future__ import annotations

from torch import Tensor
from transformers import BertConfig

from ..model.outputs import MLMOutput, Request
from .base import Batch, Strategy, require_teacher


class ToyKD(Strategy):
    name = "toykd"

    def __init__(self, student_config: BertConfig, teacher_config: BertConfig | None, *, fidelity: str = "paper",
                 weight: float = 0.5):
        super().__init__(student_config, teacher_config, fidelity=fidelity)
        require_teacher(self.name, teacher_config)
        self.weight = float(weight)
        self.student_needs = Request(logits=True, mlm_loss=True)
        self.teacher_needs = Request(logits=True, mlm_loss=False)

    def compute(self, student_out: MLMOutput, teacher_out: MLMOutput | None, batch: Batch) -> dict[str, Tensor]:
        soft = -(teacher_out.logits.float().softmax(-1) * student_out.logits.float().log_softmax(-1)).sum(-1).mean()
        mlm = student_out.mlm_loss
        return {"loss": mlm + self.weight * soft, "mlm": mlm, "soft": soft}
'''
TOY_LINE = ('    StrategyInfo("toykd", "ToyKD", "Toy-KD", "#17becf", lr=2.0e-3, options={\n'
            '        "weight": {"type": "number", "minimum": 0, "default": 0.5}}),\n')
IGNORED = shutil.ignore_patterns(".git", ".venv", "results", ".snakemake", "__pycache__", ".pytest_cache", "resources",
                                 "logs")


@pytest.mark.slow
def test_a_new_strategy_is_one_file_and_one_registry_line(tmp_path):
    """In a copy of the repository: add toykd (a new module and one line in the registry, nothing else), then
    pretrain it beside No-KD on the demo corpus, fine-tune both on tiny demo GLUE and build Table 2."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT, repo, ignore=IGNORED)
    before = {p.relative_to(repo): p.read_bytes() for p in repo.rglob("*") if p.is_file()}
    (repo / "src/kdbudget/strategies/toykd.py").write_text(TOY_MODULE, encoding="utf-8")
    registry = repo / "src/kdbudget/strategies/registry.py"
    text = registry.read_text(encoding="utf-8")
    anchor = "STRATEGIES: Mapping[str, StrategyInfo] = _register(\n"
    assert text.count(anchor) == 1
    # The new line goes last, right before the closing parenthesis of _register(...).
    end = text.index("\n)\n", text.index(anchor)) + 1
    registry.write_text(text[:end] + TOY_LINE + text[end:], encoding="utf-8")
    changed = {p.relative_to(repo) for p in repo.rglob("*")
               if p.is_file() and before.get(p.relative_to(repo)) != p.read_bytes()}
    assert changed == {Path("src/kdbudget/strategies/toykd.py"), Path("src/kdbudget/strategies/registry.py")}

    config = base_config(
        teachers={"t4": {"source": "pretrain", "shape": {**TINY, "layers": 4},
                         "budget": {"mode": "tokens", "limit": 8 * 128 * 6}}},
        groups={"small": {"title": "Toy block", "student": TINY, "teacher": "t4", "strategies": ["nokd", "toykd"],
                          "budget": {"mode": "reference", "measure": "flops", "epochs": 1}}},
        pretrain={"batch_size": 8, "micro_batch_size": 4, "log_every_steps": 1, "eval_sequences": 16},
        glue={"source": "demo", "tasks": ["qnli", "sst2"],  # two of Table 2's columns: Avg and Δ need no more
              "demo": {"sizes": {task: 10 for task in ("cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "rte")}},
              "grid": {"batch_size": [8], "lr": [1.0e-3]}, "epochs": 1, "max_seq_len": 32},
        resources={"pretrain": {"threads": 1, "gpu": 0, "runtime": 5, "mem_mb": 1000},
                   "glue": {"threads": 1, "gpu": 0, "runtime": 5, "mem_mb": 1000}},
    )
    # The copy's Snakefile, whose rules and scripts put the copy's src/ first: the toy exists only there.
    work = tmp_path / "work"
    work.mkdir()
    (work / "test-config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    cmd = [str(SNAKEMAKE), "results/tables/table2.csv", "--snakefile", str(repo / "Snakefile"), "--directory",
           str(work), "--cores", "2", "--configfile", str(work / "test-config.yaml")]
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}  # nothing of this checkout
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=work, env=env, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-6000:]

    summary = json.loads((work / "results/pretrain/toykd2/summary.json").read_text())
    assert summary["strategy"] == "toykd" and summary["budget"]["reference"] == "nokd2"
    assert summary["optim"]["lr"] == 2.0e-3 and summary["strategy_options"] == {"fidelity": "paper", "weight": 0.5}
    with open(work / "results/tables/table2.csv", newline="", encoding="utf-8") as handle:
        rows = {row["model"]: row for row in csv.DictReader(handle)}
    assert set(rows) == {"nokd2", "toykd2"}
    assert rows["toykd2"]["strategy"] == "toykd" and rows["toykd2"]["group_title"] == "Toy block"
    assert rows["toykd2"]["avg"] not in ("", "n/a") and rows["toykd2"]["delta"] not in ("", "n/a")
    assert rows["toykd2"]["label"] == "Toy-KD" and rows["nokd2"]["label"] == "No-KD"
    assert "Toy-KD₂" in (work / "results/tables/table2.md").read_text(encoding="utf-8")
