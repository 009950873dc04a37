# Configuration validation, path naming and input functions shared by all stages.
import math
import os
import re
from pathlib import Path

from snakemake.exceptions import WorkflowError

from kdbudget.config import ConfigError, validate_config
from kdbudget.data.tokenizer import TokenizerError, check_tokenizer_dir
from kdbudget.plan import check_teachers, plan_models, student_spec, teacher_spec

try:
    _validated = validate_config(config, workflow.source_path("../workflow/schemas/config.schema.yaml"))
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

if config["tokenizer"]["source"] == "dir":
    # A user's tokenizer is checked before any job starts, not after extraction.
    try:
        check_tokenizer_dir(config["tokenizer"]["path"])
    except TokenizerError as err:
        raise WorkflowError(f"config key 'tokenizer.path': {err}") from None

try:
    check_teachers(config)
    MODELS = plan_models(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
TEACHERS = config["teachers"]

CORPUS = config["corpus"]
GLUE = config["glue"]
LANGUAGE = CORPUS["language"]
DATA = "results/data"
N_SHARDS = CORPUS["shards"]
TRAIN_SHARDS = [f"train-{i:03d}" for i in range(N_SHARDS)]
VALIDATION_SHARDS = ["validation-000"]


wildcard_constraints:
    shard=r"(train|validation)-\d{3}",
    source="wikipedia|bookcorpus",
    name=r"[^/]+",
    language=r"[a-z][a-z-]*",
    date=r"latest|\d{8}",
    model="|".join(MODELS) or "no-models",
    task="|".join(config["glue"]["tasks"]),
    cell=r"bs\d+_lr[0-9.e+-]+(_seed\d+)?",
    teacher="|".join(TEACHERS) or "no-teachers",


def slug(name):
    """A hub name (owner/model) as a single path component."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name)


def resources_of(stage):
    return config["resources"][stage]


# --- sources ---------------------------------------------------------------


def demo_dump():
    return f"resources/demo/{LANGUAGE}wiki-demo-pages-articles.xml.bz2"


def wikipedia_dump():
    wiki = CORPUS["wikipedia"]
    if wiki["source"] == "demo":
        return demo_dump()
    if wiki["source"] == "download":
        return f"resources/wikipedia/{LANGUAGE}wiki-{wiki['dump_date']}-pages-articles.xml.bz2"
    return wiki["path"]


def book_folder():
    books = CORPUS["bookcorpus"]
    if books["source"] == "demo":
        return "resources/demo/books"
    if books["source"] == "hub":
        return f"resources/bookcorpus/{slug(books['hub_name'])}"
    return books["path"]


def corpus_sources():
    return [name for name in ("wikipedia", "bookcorpus") if CORPUS[name]["source"] != "none"]


def source_input(wildcards):
    return wikipedia_dump() if wildcards.source == "wikipedia" else book_folder()


def extracted_documents():
    return expand(f"{DATA}/extracted/{{source}}.jsonl", source=corpus_sources())


# --- tokenizer and packed data ---------------------------------------------


def tokenizer_input(wildcards):
    tok = config["tokenizer"]
    if tok["source"] == "train":
        return expand(f"{DATA}/docs/{{shard}}.jsonl", shard=TRAIN_SHARDS)
    if tok["source"] == "hub":
        return f"resources/tokenizers/{slug(tok['hub_name'])}"
    return tok["path"]


def packed_shards(shards):
    return expand(f"{DATA}/{{shard}}.npy", shard=shards)


# --- pretraining -------------------------------------------------------------

PRETRAIN_OUTPUTS = ["model.safetensors", "config.json", "summary.json", "metrics.jsonl"]


def teacher_dir(name):
    teacher = TEACHERS[name]
    if teacher["source"] == "hub":
        return f"resources/teachers/{slug(teacher['name'])}"
    if teacher["source"] == "dir":
        return teacher["path"]
    return f"results/teachers/{name}"


def teacher_input(name):
    """A file that exists once the teacher is ready (the DAG edge to its job)."""
    if TEACHERS[name]["source"] == "pretrain":
        return f"results/teachers/{name}/model.safetensors"
    return teacher_dir(name)


def pretrain_inputs(wildcards):
    model = MODELS[wildcards.model]
    inputs = {"data": f"{DATA}/meta.json"}
    if model.teacher:
        inputs["teacher"] = teacher_input(model.teacher)
    reference = model.reference_name(MODELS)
    if reference:
        inputs["reference"] = f"results/pretrain/{reference}/summary.json"
    return inputs


def pretrain_spec(wildcards, input):
    model = MODELS[wildcards.model]
    return student_spec(
        config,
        model,
        data_dir=DATA,
        out_dir=f"results/pretrain/{model.name}",
        checkpoint_dir=f"results/checkpoints/{model.name}",
        teacher_dir=teacher_dir(model.teacher) if model.teacher else None,
        reference_summary=input.get("reference"),
    )


def pretrain_teacher_spec(wildcards):
    return teacher_spec(
        config,
        wildcards.teacher,
        data_dir=DATA,
        out_dir=f"results/teachers/{wildcards.teacher}",
        checkpoint_dir=f"results/checkpoints/teacher-{wildcards.teacher}",
    )


def budget_minutes(budget):
    """A seconds budget's wall time plus a margin (start-up, evaluation, the last checkpoint), else 0."""
    if budget and budget.get("mode") == "seconds" and budget.get("limit"):
        return math.ceil(budget["limit"] / 60 * 1.1) + 15
    return 0


def attempt_scaled(minutes, attempt):
    """+50% per retry: a job killed at its time limit resumes from its checkpoint with more time."""
    return int(minutes * (1 + 0.5 * (attempt - 1)))


def pretrain_resources(attribute):
    settings = config["resources"]["pretrain"]
    if attribute == "runtime":

        def runtime(wildcards, attempt):
            if "model" in wildcards.keys():
                model = MODELS[wildcards.model]
                minutes = max(model.runtime, budget_minutes(model.budget))
            else:
                minutes = max(settings["runtime"], budget_minutes(TEACHERS[wildcards.teacher].get("budget")))
            return attempt_scaled(minutes, attempt)

        return runtime
    return settings[attribute]


# Sent 300 s before the time limit to every process of the job step, so the trainer writes a
# checkpoint that a retry resumes from. Not B: (the batch shell only): the plugin's batch script is
# a plain sh that dies of USR1, and the trainer would get only SIGTERM and KillWait seconds.
PRETRAIN_SLURM_EXTRA = "'--signal=USR1@300'"


def pretrained_summaries():
    return expand("results/pretrain/{model}/summary.json", model=list(MODELS))


# --- GLUE ------------------------------------------------------------------


def glue_dir():
    if GLUE["source"] == "demo":
        return "resources/glue/demo"
    if GLUE["source"] == "hub":
        return "resources/glue/hub"
    return GLUE["path"]


def lr_label(lr):
    return f"{lr:g}"


def cell_name(batch_size, lr, seed):
    seeded = len(GLUE["seeds"]) > 1
    return f"bs{batch_size}_lr{lr_label(lr)}" + (f"_seed{seed}" if seeded else "")


GLUE_CELLS = {
    cell_name(b, lr, seed): {"batch_size": b, "lr": lr, "seed": seed}
    for b in GLUE["grid"]["batch_size"]
    for lr in GLUE["grid"]["lr"]
    for seed in GLUE["seeds"]
}


FINETUNE_SETTINGS = ("epochs", "max_seq_len", "warmup", "weight_decay", "eps", "eval_batch_size", "precision")


def glue_cell_results(wildcards):
    return expand(
        "results/finetune/{model}/{task}/{cell}.json",
        model=wildcards.model,
        task=GLUE["tasks"],
        cell=list(GLUE_CELLS),
    )


def glue_resources(attribute):
    if attribute == "runtime":
        return lambda wildcards, attempt: attempt_scaled(config["resources"]["glue"]["runtime"], attempt)
    return config["resources"]["glue"][attribute]


def glue_summaries():
    return expand("results/glue/{model}", model=list(MODELS))


def all_targets():
    """Everything: the data, every model, its GLUE summary, Table 2 and the plots (rule table, rules/report.smk)."""
    return [f"{DATA}/meta.json", *pretrained_summaries(), *glue_summaries(), *rules.table.input]


# --- cluster site settings ---------------------------------------------------
# Account, partition, QOS, constraint, GPU model and GPU request style of the
# user's cluster: environment variables KDBUDGET_SLURM_<KEY> (ACCOUNT, PARTITION,
# QOS, CONSTRAINT, GPU_MODEL, GPU_REQUEST) over an untracked YAML file (slurm/site.yaml, or the
# file named by KDBUDGET_SLURM_SITE; see slurm/site.example.yaml). Every rule
# that can run as a cluster job adds them to its resources (**slurm_site()).

SLURM_SITE_KEYS = {
    "account": "slurm_account",
    "partition": "slurm_partition",
    "qos": "qos",
    "constraint": "constraint",
    "gpu_model": "gpu_model",
    "gpu_request": None,  # how GPU jobs ask: "gpus" (sbatch --gpus, the default) or "gres" (--gres=gpu:...)
}
GPU_REQUESTS = ("gpus", "gres")


def _read_slurm_site():
    import yaml

    path = Path(os.environ.get("KDBUDGET_SLURM_SITE") or Path(workflow.basedir) / "slurm" / "site.yaml")
    site = {}
    if path.is_file():
        site = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(site, dict) or set(site) - set(SLURM_SITE_KEYS):
            raise WorkflowError(f"{path}: expected a mapping with keys among {', '.join(SLURM_SITE_KEYS)}")
    for key in SLURM_SITE_KEYS:
        value = os.environ.get(f"KDBUDGET_SLURM_{key.upper()}")
        if value:
            site[key] = value
    site = {key: str(value) for key, value in site.items() if value not in (None, "")}
    if site.get("gpu_request", "gpus") not in GPU_REQUESTS:
        raise WorkflowError(f"SLURM site setting gpu_request (KDBUDGET_SLURM_GPU_REQUEST or {path}) must be one "
                            f"of {', '.join(GPU_REQUESTS)}, got {site['gpu_request']!r}")
    return site, path


SLURM_SITE, SLURM_SITE_FILE = _read_slurm_site()


def check_slurm_site():
    """A SLURM submission needs an account and a partition: say where to set them."""
    plugin = workflow.executor_plugin
    if plugin is None or plugin.name != "slurm":
        return
    missing = [key for key in ("account", "partition") if key not in SLURM_SITE]
    if missing:
        raise WorkflowError(
            "SLURM site settings missing: "
            + ", ".join(missing)
            + ". Set "
            + " and ".join(f"KDBUDGET_SLURM_{key.upper()}" for key in missing)
            + f" in the environment, or {', '.join(f'{key}:' for key in missing)} in {SLURM_SITE_FILE}"
            " (see slurm/site.example.yaml and README, 'Running on a SLURM cluster')."
        )


# The executor is known only once the run starts (not while the Snakefile is
# read, and never in a dry run, which plans without any site settings).
onstart:
    check_slurm_site()


def slurm_site(gpus=0):
    """One rule's cluster resources: the site's settings and, where the rule trains, its GPUs, as
    `gpu` (+ `gpu_model`: sbatch --gpus=[MODEL:]N) or, with gpu_request "gres", as
    `gres` (--gres=gpu:[MODEL:]N) for clusters that take GPUs only that way."""
    resources = {
        SLURM_SITE_KEYS[key]: value for key, value in SLURM_SITE.items() if key not in ("gpu_model", "gpu_request")
    }
    if gpus > 0 and SLURM_SITE.get("gpu_request", "gpus") == "gres":
        model = [SLURM_SITE["gpu_model"]] if "gpu_model" in SLURM_SITE else []
        resources["gres"] = ":".join(["gpu", *model, str(gpus)])
    elif gpus > 0:
        resources["gpu"] = gpus
        if "gpu_model" in SLURM_SITE:
            resources["gpu_model"] = SLURM_SITE["gpu_model"]
    return resources
