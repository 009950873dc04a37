# Configuration validation, path naming and input functions shared by all stages.
import os
import re
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

# The repository's package, whatever environment runs Snakemake (one with only snakemake and the
# SLURM plugin will do): rules and scripts then always run the code checked out here.
_SRC = str(Path(workflow.basedir) / "src")
if _SRC not in sys.path:
    sys.path.insert(0, _SRC)

from kdbudget import cluster
from kdbudget.config import ConfigError, validate_config
from kdbudget.cpu_isa import pin_cpu_isa
from kdbudget.data.tokenizer import TokenizerError, check_tokenizer_dir
from kdbudget.glue.cells import CELL_REGEX, grid_cells
from kdbudget.glue.tasks import TRAIN_EXAMPLES
from kdbudget.plan import check_teachers, plan_models, student_spec, teacher_spec
from kdbudget.report.table import report_tasks
from kdbudget.train.orphan import mark_job_owner

# The jobs this process starts name it as their owner: a trainer whose Snakemake is killed then
# checkpoints and stops instead of living on beside the rerun's trainer (kdbudget.train.orphan).
# In a cluster job this is the job's own Snakemake, which parses the workflow again.
mark_job_owner()

try:
    _validated = validate_config(config, workflow.source_path("../workflow/schemas/config.schema.yaml"))
except ConfigError as err:
    raise WorkflowError(str(err)) from None
config.clear()
config.update(_validated)

# Set here, before any job starts: the jobs inherit the pins (a cluster job's Snakemake parses this again).
pin_cpu_isa(config["cpu_isa"])

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
    name=r"[^/]+",
    language=r"[a-z][a-z-]*",
    date=r"latest|\d{8}",
    model="|".join(map(re.escape, MODELS)) or "no-models",
    task="|".join(config["glue"]["tasks"]),
    cell=CELL_REGEX,
    teacher="|".join(TEACHERS) or "no-teachers",


def slug(name):
    """A hub name (owner/model) as a single path component."""
    return re.sub(r"[^A-Za-z0-9._-]+", "--", name)


# --- sources ---------------------------------------------------------------


def demo_dump():
    return f"resources/demo/{LANGUAGE}wiki-demo-pages-articles.xml.bz2"


def _unused_source(key):
    # Raised only when a job that reads this source is wanted (a rule's input function), so a
    # one-source corpus plans and runs; a target asking for the unused source's documents is named.
    raise WorkflowError(f"config key '{key}' is 'none': this corpus has no such source to read")


def wikipedia_dump():
    wiki = CORPUS["wikipedia"]
    if wiki["source"] == "none":
        _unused_source("corpus.wikipedia.source")
    if wiki["source"] == "demo":
        return demo_dump()
    if wiki["source"] == "download":
        return f"resources/wikipedia/{LANGUAGE}wiki-{wiki['dump_date']}-pages-articles.xml.bz2"
    return wiki["path"]


def book_folder():
    books = CORPUS["bookcorpus"]
    if books["source"] == "none":
        _unused_source("corpus.bookcorpus.source")
    if books["source"] == "demo":
        return "resources/demo/books"
    if books["source"] == "hub":
        return f"resources/bookcorpus/{slug(books['hub_name'])}"
    return books["path"]


def corpus_sources():
    return [name for name in ("wikipedia", "bookcorpus") if CORPUS[name]["source"] != "none"]


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

def teacher_dir(name):
    teacher = TEACHERS[name]
    if teacher["source"] == "hub":
        return f"resources/teachers/{slug(teacher['name'])}"
    if teacher["source"] == "dir":
        return teacher["path"]
    return f"results/teachers/{name}"


def teacher_input(name):
    """What exists once the teacher is ready (the DAG edge to its job)."""
    return teacher_dir(name)


def pretrain_inputs(wildcards):
    model = MODELS[wildcards.model]
    inputs = {"data": f"{DATA}/meta.json"}
    if model.teacher:
        inputs["teacher"] = teacher_input(model.teacher)
    reference = model.reference_name(MODELS)
    if reference:
        inputs["reference"] = f"results/pretrain/{reference}"
    return inputs


def reference_summary(input):
    """The No-KD reference run's summary.json inside its model directory (an input), or None."""
    reference = input.get("reference") if input is not None else None
    return f"{reference}/summary.json" if reference else None


def pretrain_spec(wildcards, input):
    model = MODELS[wildcards.model]
    return student_spec(
        config,
        model,
        data_dir=DATA,
        out_dir=f"results/pretrain/{model.name}",
        checkpoint_dir=f"results/checkpoints/{model.name}",
        teacher_dir=teacher_dir(model.teacher) if model.teacher else None,
        reference_summary=reference_summary(input),
    )


def pretrain_teacher_spec(wildcards):
    return teacher_spec(
        config,
        wildcards.teacher,
        data_dir=DATA,
        out_dir=f"results/teachers/{wildcards.teacher}",
        checkpoint_dir=f"results/checkpoints/teacher-{wildcards.teacher}",
    )


def pretrain_minutes(wildcards, input):
    """A pretraining job's minutes before attempt scaling and the site's cap (kdbudget.cluster)."""
    if "model" in wildcards.keys():
        model = MODELS[wildcards.model]
        # A KD run of a 'reference' group takes as long as its No-KD run did, once that has run.
        reference = cluster.reference_minutes(reference_summary(input))
        return cluster.pretrain_minutes(model.runtime, model.budget, reference)
    teacher = TEACHERS[wildcards.teacher]
    return cluster.pretrain_minutes(config["resources"]["pretrain"]["runtime"], teacher.get("budget"), None)


def pretrain_resources(attribute):
    settings = config["resources"]["pretrain"]
    if attribute == "runtime":

        def runtime(wildcards, input, attempt):
            return job_minutes(cluster.attempt_scaled(pretrain_minutes(wildcards, input), attempt))

        return runtime
    return settings[attribute]


def pretrain_retries(rule_name):
    """Retries of a pretraining rule when its longest run needs several jobs under the site's
    max_runtime (the trainer stops before each job's limit and the retry resumes):
    resources.pretrain.retries plus one per further job. A rule's retries replace --retries (the
    profile's) for its jobs, so otherwise None leaves --retries in charge. Inside a cluster job
    (remote mode) always None: there the job's own Snakemake must not retry (it runs with
    --retries 0), or a job stopped before its time limit would resume within the same job."""
    if workflow.remote_exec:
        return None
    if rule_name == "pretrain_teacher":
        longest = [
            cluster.pretrain_minutes(config["resources"]["pretrain"]["runtime"], t.get("budget"), None)
            for t in TEACHERS.values()
            if t["source"] == "pretrain"
        ]
    else:
        longest = [cluster.pretrain_minutes(m.runtime, m.budget, None) for m in MODELS.values()]
    try:
        jobs = cluster.jobs_needed(max(longest, default=0), MAX_RUNTIME,
                                   config["pretrain"]["stop_before_time_limit_minutes"])
    except cluster.SiteError as err:
        raise WorkflowError(str(err)) from None
    if jobs == 1:
        return None
    return config["resources"]["pretrain"]["retries"] + jobs - 1


# Sent 300 s before the time limit to every process of the job step, so the trainer writes a
# checkpoint that a retry resumes from. Not B: (the batch shell only): the plugin's batch script is
# a plain sh that dies of USR1, and the trainer would get only SIGTERM and KillWait seconds.
PRETRAIN_SLURM_EXTRA = "'--signal=USR1@300'"


def pretrained_models():
    """Every student's model directory (with its summary.json and metrics.jsonl)."""
    return expand("results/pretrain/{model}", model=list(MODELS))


# --- GLUE ------------------------------------------------------------------


def glue_dir():
    if GLUE["source"] == "demo":
        return "resources/glue/demo"
    if GLUE["source"] == "hub":
        return "resources/glue/hub"
    return GLUE["path"]


# Cell names (and the `cell` wildcard) are kdbudget.glue.cells's: results, logs and the summary agree.
try:
    GLUE_CELLS = grid_cells(GLUE["grid"]["batch_size"], GLUE["grid"]["lr"], GLUE["seeds"])
except ValueError as err:
    raise WorkflowError(f"config key 'glue.grid': {err}") from None


FINETUNE_SETTINGS = ("epochs", "max_seq_len", "warmup", "weight_decay", "eps", "eval_batch_size", "precision", "device")


def glue_cell_results(wildcards):
    return expand(
        "results/finetune/{model}/{task}/{cell}.json",
        model=wildcards.model,
        task=GLUE["tasks"],
        cell=list(GLUE_CELLS),
    )


def glue_minutes(wildcards):
    """A fine-tuning cell's minutes: resources.glue.runtime where set, else sized by its task's
    training set, the epochs, the model's size and resources.glue.examples_per_second."""
    settings = config["resources"]["glue"]
    if settings["runtime"]:
        return settings["runtime"]
    return cluster.glue_cell_minutes(
        TRAIN_EXAMPLES[wildcards.task],
        epochs=GLUE["epochs"],
        examples_per_second=settings["examples_per_second"],
        cost=cluster.relative_cost(MODELS[wildcards.model].shape),
        min_minutes=settings["min_runtime"],
    )


def glue_resources(attribute):
    if attribute == "runtime":
        return lambda wildcards, attempt: job_minutes(cluster.attempt_scaled(glue_minutes(wildcards), attempt))
    return config["resources"]["glue"][attribute]


def glue_summaries():
    return expand("results/glue/{model}", model=list(MODELS))


def all_targets():
    """Everything: the data, every model, its GLUE summary, Table 2 and the plots (rule table, rules/report.smk)."""
    return [f"{DATA}/meta.json", *pretrained_models(), *glue_summaries(), *rules.table.input]


# --- cluster site settings ---------------------------------------------------
# Account, partition, GPU partition, QOS, constraint, GPU model, GPU request style and runtime cap
# of the user's cluster, all optional: KDBUDGET_SLURM_<KEY> over slurm/site.yaml (or the file named
# by KDBUDGET_SLURM_SITE; see slurm/site.example.yaml), parsed by kdbudget.cluster. Every rule that
# can run as a cluster job adds them to its resources (**slurm_site()); where they are not set, the
# SLURM plugin's own --default-resources / --set-resources and defaults apply.

try:
    SLURM_SITE, SLURM_SITE_FILE = cluster.read_site(os.environ, Path(workflow.basedir) / "slurm" / "site.yaml")
except cluster.SiteError as err:
    raise WorkflowError(str(err)) from None
MAX_RUNTIME = SLURM_SITE.get("max_runtime")


def job_minutes(minutes):
    """A job's runtime under the site's max_runtime."""
    return cluster.capped(minutes, MAX_RUNTIME)


def resources_of(stage):
    """A CPU stage's resources (resources.data, resources.extract), its runtime capped."""
    settings = config["resources"][stage]
    return {**settings, "runtime": job_minutes(settings["runtime"])}


def slurm_site(gpus=0):
    """One rule's cluster resources from the site settings (kdbudget.cluster.site_resources)."""
    return cluster.site_resources(SLURM_SITE, gpus)


# --- report --------------------------------------------------------------


def report_task_list(wildcards):
    """Table 2's task columns: its seven tasks that glue.tasks lists (a laptop study may fine-tune on fewer; Avg is
    then over those and labelled so, and table2_vs_paper says why it is skipped). A function, so that a config
    without any Table 2 task fails in the report's jobs, naming glue.tasks, not when the workflow is parsed."""
    return list(report_tasks(config["glue"]["tasks"]))
