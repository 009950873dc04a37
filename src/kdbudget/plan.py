"""From the validated config to the set of models the pipeline trains.

Pure configuration logic (no torch), shared by the workflow (which names
jobs and wires inputs with it) and reporting (which groups results as
Table 2 does). A group trains one model per strategy, named
``{strategy}{layers}{suffix}`` (``minilm6``, ``nokd12``, ``tinybert6_limited``),
once per budget scale and pretraining seed the group lists: the name then
gains ``-x{scale}`` (scale != 1) and ``-seed{k}`` (``minilm6-x0.5-seed1``), and
every KD run is held to the No-KD run of its own scale and seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kdbudget.config import ConfigError
from kdbudget.strategies.registry import STRATEGIES
from kdbudget.teacher_cost import planned_teacher_cost

REFERENCE_STRATEGY = "nokd"


def resolve_layer_norm(shape: dict[str, Any], strategy: str | None, fidelity: str) -> dict[str, Any]:
    """The shape with ``layer_norm: auto`` made concrete (an explicit value is kept).

    ``auto`` is what the paper's runs did: its released code trained No-KD
    pre-LN and the KD students post-LN (BERT), so ``pre`` for the nokd student
    under ``fidelity: paper_code``, else ``post`` (the paper's prose and the
    default fidelity: every student is BERT). ``strategy`` None is a teacher
    the pipeline pretrains: ``post``, like the BERT teachers the paper used.
    """
    layer_norm = shape.get("layer_norm", "auto")
    if layer_norm == "auto" and shape.get("mobilebert") is not None:  # MobileBERT places its own norms
        layer_norm = "post"
    if layer_norm == "auto":
        layer_norm = "pre" if strategy == REFERENCE_STRATEGY and fidelity == "paper_code" else "post"
    return {**shape, "layer_norm": layer_norm}


@dataclass(frozen=True)
class PlannedModel:
    name: str
    group: str
    strategy: str
    shape: dict[str, Any]
    teacher: str | None
    budget: dict[str, Any]
    warmup: float
    lr: float
    runtime: int
    base: str = ""  # the name without scale and seed suffixes ({strategy}{layers}{suffix})
    seed: int = 0  # the pretraining seed (the global `seed` when the group lists no seeds)
    budget_scale: float = 1.0  # the multiple of the group's budget this run gets

    @property
    def is_reference(self) -> bool:
        return self.budget["mode"] == "reference" and self.strategy == REFERENCE_STRATEGY

    def reference_name(self, models: dict[str, PlannedModel]) -> str | None:
        """The No-KD run whose spent budget this run receives (None for explicit budgets)."""
        if self.budget["mode"] != "reference" or self.is_reference:
            return None
        return next(m.name for m in models.values() if m.group == self.group and m.is_reference
                    and m.seed == self.seed and m.budget_scale == self.budget_scale)


def model_name(strategy: str, layers: int, suffix: str) -> str:
    return f"{strategy}{layers}{suffix}"


def run_name(base: str, scale: float, seed: int | None) -> str:
    """``base`` with ``-x{scale}`` (unless scale is 1; ``format(scale, 'g')``) and ``-seed{seed}`` (when given)."""
    name = base if scale == 1 else f"{base}-x{format(scale, 'g')}"
    return name if seed is None else f"{name}-seed{int(seed)}"


def scaled_budget(budget: dict[str, Any], scale: float) -> dict[str, Any]:
    """The group's budget times ``scale``: the No-KD reference trains ``scale`` x ``epochs`` passes (its KD runs
    then get what it spent, as at scale 1); an explicit budget's ``limit`` is scaled."""
    if scale == 1:
        return dict(budget)
    if budget["mode"] == "reference":
        return {**budget, "epochs": budget["epochs"] * scale}
    return {**budget, "limit": budget["limit"] * scale}


def plan_models(config: dict[str, Any]) -> dict[str, PlannedModel]:
    """Every student the config defines, by name, in group order."""
    models: dict[str, PlannedModel] = {}
    pretrain, teachers = config["pretrain"], config["teachers"]
    for group_name, group in config["groups"].items():
        budget = group["budget"]
        where = f"groups.{group_name}"
        if budget["mode"] == "reference" and REFERENCE_STRATEGY not in group["strategies"]:
            raise ConfigError(f"config key '{where}.strategies': a 'reference' budget needs the "
                              f"{REFERENCE_STRATEGY} run")
        if budget["mode"] == "reference" and budget.get("limit") is not None:
            raise ConfigError(f"config key '{where}.budget.limit' is not used by budget mode 'reference' (the No-KD "
                              "run trains budget.epochs passes and the others get what it spent): remove it, or "
                              "choose mode seconds, flops or tokens to set a limit")
        if budget["mode"] != "reference" and not budget["limit"]:
            raise ConfigError(f"config key '{where}.budget.limit' is required for budget mode '{budget['mode']}'")
        distils = [s for s in group["strategies"] if STRATEGIES[s].teacher]
        if distils and not group["teacher"]:
            raise ConfigError(f"config key '{where}.teacher' is required for strategies {distils}")
        if group["teacher"] and group["teacher"] not in teachers:
            raise ConfigError(f"config key '{where}.teacher': no teacher named {group['teacher']!r} under 'teachers'")
        check_mobilebert_shape(group["student"], f"{where}.student")
        scales = group.get("budget_scales") or [1]
        if len({format(scale, "g") for scale in scales}) != len(scales):
            raise ConfigError(f"config key '{where}.budget_scales': {scales} has two scales that print alike")
        seeds = group.get("seeds")
        # Scale, then seed, then strategy: each (scale, seed) is a full set of models, No-KD first as listed.
        for scale in scales:
            for seed in seeds if seeds else [None]:
                for strategy in group["strategies"]:
                    base = model_name(strategy, group["student"]["layers"], group["suffix"])
                    name = run_name(base, scale, seed)
                    if name in models:
                        raise ConfigError(f"config key '{where}': model name {name!r} is also defined by group "
                                          f"{models[name].group!r} (give one group a 'suffix')")
                    models[name] = PlannedModel(
                        name=name, group=group_name, strategy=strategy,
                        shape=resolve_layer_norm(group["student"], strategy, pretrain["fidelity"]),
                        teacher=group["teacher"] if STRATEGIES[strategy].teacher else None,
                        budget=scaled_budget(budget, scale),
                        warmup=group["warmup"] if group["warmup"] is not None else pretrain["warmup"],
                        lr=pretrain["lr"][strategy],
                        runtime=group["runtime"] or config["resources"]["pretrain"]["runtime"],
                        base=base, seed=config["seed"] if seed is None else int(seed), budget_scale=float(scale),
                    )
    return models


def check_mobilebert_shape(shape: dict[str, Any], where: str) -> None:
    """A MobileBERT student shape's constraints beyond the schema (``where``: the shape's config key)."""
    mobile = shape.get("mobilebert")
    if mobile is None:
        return
    if mobile["bottleneck"] % shape["heads"]:
        raise ConfigError(f"config key '{where}.mobilebert.bottleneck' ({mobile['bottleneck']}) must be a multiple "
                          f"of {where}.heads ({shape['heads']}): MobileBERT's attention runs in the bottleneck")
    if mobile["embedding_size"] > shape["hidden"]:
        raise ConfigError(f"config key '{where}.mobilebert.embedding_size' ({mobile['embedding_size']}) must be at "
                          f"most {where}.hidden ({shape['hidden']}), the inter-block width")
    if shape.get("layer_norm", "auto") == "pre":
        raise ConfigError(f"config key '{where}.layer_norm': a MobileBERT student places its own norms; leave it "
                          f"auto and choose {where}.mobilebert.normalization")


def check_teachers(config: dict[str, Any]) -> None:
    for name, teacher in config["teachers"].items():
        where = f"teachers.{name}"
        if (teacher.get("shape") or {}).get("mobilebert") is not None:
            raise ConfigError(f"config key '{where}.shape.mobilebert': teachers are BERTs (a MobileBERT shape is a "
                              "student option)")
        needed = {"hub": "name", "dir": "path", "pretrain": "shape"}[teacher["source"]]
        if not teacher.get(needed):
            raise ConfigError(f"config key '{where}.{needed}' is required for teacher source '{teacher['source']}'")
        cost = teacher.get("cost")
        if cost and teacher["source"] == "pretrain":
            raise ConfigError(f"config key '{where}.cost' is for hub and dir teachers: a teacher the pipeline "
                              "pretrains has its cost measured (remove the key)")
        if cost and cost.get("flops") is None and cost.get("gpu_hours") is None:
            raise ConfigError(f"config key '{where}.cost' needs flops or gpu_hours")
        if teacher["source"] == "pretrain":
            budget = teacher.get("budget")
            if not budget or budget["mode"] == "reference" or not budget.get("limit"):
                raise ConfigError(f"config key '{where}.budget' needs mode seconds, flops or tokens with a limit")


def strategy_options(config: dict[str, Any], strategy: str) -> dict[str, Any]:
    pretrain = config["pretrain"]
    return {"fidelity": pretrain["fidelity"], **pretrain["strategy_options"].get(strategy, {})}


def optim_spec(config: dict[str, Any], lr: float, warmup: float) -> dict[str, Any]:
    p = config["pretrain"]
    return {"lr": lr, "warmup": warmup, "batch_size": p["batch_size"], "micro_batch_size": p["micro_batch_size"],
            "betas": list(p["betas"]), "eps": p["eps"], "weight_decay": p["weight_decay"]}


def common_spec(config: dict[str, Any]) -> dict[str, Any]:
    p = config["pretrain"]
    return {"seed": config["seed"], "precision": p["precision"], "threads": p["threads"],
            "checkpoint_every_seconds": 60.0 * p["checkpoint_every_minutes"],
            "checkpoint_every_steps": p["checkpoint_every_steps"], "log_every_steps": p["log_every_steps"],
            "stop_before_time_limit_seconds": 60.0 * p["stop_before_time_limit_minutes"],
            "eval_sequences": p["eval_sequences"], "device": p["device"], "compile": p["compile"],
            "compile_backend": p["compile_backend"], "teacher_dtype": p["teacher_dtype"],
            "prefetch": p["prefetch"],
            "divergence_spike_factor": p["divergence_spike_factor"], "divergence_window": p["divergence_window"],
            "tensorboard": p["tensorboard"]}


def student_spec(config: dict[str, Any], model: PlannedModel, *, data_dir: str, out_dir: str, checkpoint_dir: str,
                 teacher_dir: str | None, reference_summary: str | None) -> dict[str, Any]:
    """The run spec (see ``kdbudget.train.spec.RunSpec``) of one student, trained with its own seed."""
    budget = dict(model.budget)
    record: dict[str, Any] = {"base": model.base or model.name, "seed": model.seed,
                              "budget_scale": model.budget_scale, "group": model.group}
    if model.teacher:
        record["teacher_cost"] = planned_teacher_cost(model.teacher, config["teachers"][model.teacher])
    return {
        "name": model.name, "strategy": model.strategy, "student": dict(model.shape),
        "optim": optim_spec(config, model.lr, model.warmup),
        "budget": {**budget, "is_reference": model.is_reference, "reference_summary": reference_summary,
                   "allow_device_mismatch": config["pretrain"]["allow_device_mismatch"]},
        "data_dir": data_dir, "out_dir": out_dir, "checkpoint_dir": checkpoint_dir, "teacher_dir": teacher_dir,
        "strategy_options": strategy_options(config, model.strategy), **common_spec(config),
        "seed": model.seed, "record": record,
    }


def teacher_spec(config: dict[str, Any], name: str, *, data_dir: str, out_dir: str,
                 checkpoint_dir: str) -> dict[str, Any]:
    """The run spec of a teacher the pipeline pretrains itself (No-KD, its own budget)."""
    teacher = config["teachers"][name]
    return {
        "name": name, "strategy": REFERENCE_STRATEGY,
        "student": resolve_layer_norm(teacher["shape"], None, config["pretrain"]["fidelity"]),
        "optim": optim_spec(config, teacher["lr"], config["pretrain"]["warmup"]),
        "budget": dict(teacher["budget"]), "data_dir": data_dir, "out_dir": out_dir,
        "checkpoint_dir": checkpoint_dir, "strategy_options": strategy_options(config, REFERENCE_STRATEGY),
        **common_spec(config),
    }
