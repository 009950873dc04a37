# Configuration validation, path naming and input functions shared by all stages.
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


def pretrain_resources(attribute):
    settings = config["resources"]["pretrain"]
    if attribute == "runtime":
        return lambda wildcards: MODELS[wildcards.model].runtime if "model" in wildcards.keys() else settings["runtime"]
    return settings[attribute]


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


def glue_cell_results(wildcards):
    return expand(
        "results/finetune/{model}/{task}/{cell}.json",
        model=wildcards.model,
        task=GLUE["tasks"],
        cell=list(GLUE_CELLS),
    )


def glue_resources(attribute):
    return config["resources"]["glue"][attribute]


def glue_summaries():
    return expand("results/glue/{model}", model=list(MODELS))


def all_targets():
    """Everything: the data, every model, its GLUE summary, Table 2 and the plots (rule table, rules/report.smk)."""
    return [f"{DATA}/meta.json", *pretrained_summaries(), *glue_summaries(), *rules.table.input]
