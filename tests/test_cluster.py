"""The cluster side of a paper run: conda environments that hold only third-party packages while
every script runs the repository's kdbudget; SLURM site settings (kdbudget.cluster) next to the
plugin's own conventions; and what each job asks for (GLUE cells by task, KD runs by their No-KD
run, a runtime cap that pretraining outlasts by retries)."""

from __future__ import annotations

import ast
import functools
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kdbudget import cluster

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
SCRIPTS = ROOT / "workflow" / "scripts"
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
BOOTSTRAP = "_kdbudget_path"

# Import name -> conda package names that provide it (where they differ).
CONDA_NAMES = {
    "yaml": {"pyyaml"},
    "torch": {"pytorch"},
    "sklearn": {"scikit-learn"},
    "PIL": {"pillow"},
    "matplotlib": {"matplotlib", "matplotlib-base"},
}

# The official GLUE train-set sizes, written out here rather than read from the package.
GLUE_TRAIN = {"cola": 8551, "sst2": 67349, "mrpc": 3668, "qqp": 363846,
              "stsb": 5749, "mnli": 392702, "qnli": 104743, "rte": 2490}


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any site settings (and no site file), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KDBUDGET_SLURM_")}
    env["KDBUDGET_SLURM_SITE"] = "/nonexistent/kdbudget-site.yaml"
    return {**env, **extra}


# --- rules, scripts and environments ---------------------------------------------------------


def rule_blocks() -> dict[str, str]:
    """Each rule's body, by name, from rules/*.smk and the Snakefile."""
    blocks: dict[str, str] = {}
    for path in [*sorted((ROOT / "rules").glob("*.smk")), ROOT / "Snakefile"]:
        parts = re.split(r"^rule (\w+):\n", path.read_text(encoding="utf-8"), flags=re.M)
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            blocks[name] = re.split(r"^\S", body, maxsplit=1, flags=re.M)[0]
    return blocks


def local_rules() -> set[str]:
    """The rules that run beside Snakemake (`localrules:`), never as cluster jobs."""
    names = set()
    for path in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.findall(r"^localrules:\n((?:[ \t]+\w+,?\n)+)", path.read_text(encoding="utf-8"), re.M):
            names |= set(re.findall(r"\w+", block))
    return names


def directive(body: str, name: str) -> str | None:
    found = re.search(rf"^    {name}:\n\s+\"([^\"]+)\"", body, re.M)
    return found.group(1) if found else None


def scripted_rules() -> dict[str, tuple[Path, Path | None]]:
    """Rules with a script: their script and their conda environment file."""
    rules = {}
    for name, body in rule_blocks().items():
        script = directive(body, "script")
        if script:
            env = directive(body, "conda")
            rules[name] = ((ROOT / "rules" / script).resolve(), (ROOT / "rules" / env).resolve() if env else None)
    return rules


def _module_file(name: str) -> Path | None:
    path = SRC.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _imports(path: Path, module: str) -> set[str]:
    """Every module a file imports anywhere (function bodies too), and modules it runs as
    `python -m NAME` (a list literal holding "-m", NAME)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    # Imports under `if TYPE_CHECKING:` never run (annotations only): a torch-free module may name torch's types.
    typing_only = {id(inner) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                   for stmt in node.body for inner in ast.walk(stmt)}
    names: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names.add(source)
            names |= {f"{source}.{alias.name}" for alias in node.names}  # a submodule, or just a name
        elif isinstance(node, (ast.List, ast.Tuple)):
            values = [e.value if isinstance(e, ast.Constant) else None for e in node.elts]
            names |= {values[i + 1] for i, v in enumerate(values[:-1]) if v == "-m" and isinstance(values[i + 1], str)}
    return names


@functools.cache
def third_party_imports(script: Path) -> frozenset[str]:
    """Top-level third-party modules that a script and every kdbudget module it reaches import."""
    queue, seen, third = list(_imports(script, "__main__")), set(), set()
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        top = name.split(".")[0]
        if top == "kdbudget":
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
                module = ".".join(parts[:i])
                file = _module_file(module)
                if file is not None and (module, "file") not in seen:
                    seen.add((module, "file"))
                    queue.extend(_imports(file, module))
        elif top not in sys.stdlib_module_names and top not in ("__future__", BOOTSTRAP):
            third.add(top)
    return frozenset(third)


def env_packages(env_file: Path) -> tuple[set[str], list[str]]:
    """An environment's package names (conda and pip, normalised) and its raw pip entries."""
    spec = yaml.safe_load(env_file.read_text(encoding="utf-8"))
    names, pip = set(), []
    for dep in spec["dependencies"]:
        entries = dep["pip"] if isinstance(dep, dict) else [dep]
        if isinstance(dep, dict):
            pip.extend(entries)
        for entry in entries:
            match = re.match(r"[A-Za-z0-9_.-]+", entry)
            if match:
                names.add(match.group(0).lower().replace("_", "-"))
    return names, pip


def providers(module: str) -> set[str]:
    return {name.lower().replace("_", "-") for name in CONDA_NAMES.get(module, {module})}


def test_every_scripted_rule_runs_in_a_conda_environment():
    rules = scripted_rules()
    assert len(rules) >= 15, sorted(rules)
    missing = sorted(name for name, (_, env) in rules.items() if env is None)
    assert not missing, f"rules without conda: {missing}"
    for name, (script, env) in rules.items():
        assert script.is_file() and env.is_file(), (name, script, env)


@pytest.mark.parametrize("env_file", sorted((ROOT / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_environments_hold_third_party_packages_only(env_file):
    """An env that pip-installs the package resolves `..` from Snakemake's copy of the file under
    .snakemake/conda/ (not the repository), drags in all of its dependencies, and goes stale."""
    names, pip = env_packages(env_file)
    assert "kdbudget" not in names
    assert not [e for e in pip if e.strip().startswith((".", "/", "-e", "file:"))], pip


@pytest.mark.parametrize("env_name", ["data", "train", "glue", "report"])
def test_each_environment_lists_what_its_rules_import(env_name):
    env_file = (ROOT / "envs" / f"{env_name}.yaml").resolve()
    scripts = {script for script, env in scripted_rules().values() if env == env_file}
    assert scripts, f"no rule uses {env_file}"
    names, _ = env_packages(env_file)
    needed = {module: sorted(s.name for s in scripts if module in third_party_imports(s))
              for module in set().union(*(third_party_imports(s) for s in scripts))}
    missing = {module: users for module, users in needed.items() if not providers(module) & names}
    assert not missing, f"{env_file.name} lacks the packages of these imports (module: scripts): {missing}"


def test_the_import_scan_sees_lazy_and_dash_m_imports():
    """The scan counts an import inside a function and a module run as `python -m`: the training
    env gets torch through the trainer, the data env wikiextractor through extraction."""
    assert "torch" in third_party_imports(SCRIPTS / "pretrain.py")
    assert "wikiextractor" in third_party_imports(SCRIPTS / "extract_wikipedia.py")
    assert "torch" not in third_party_imports(SCRIPTS / "tokenizer.py")


def test_the_report_layer_never_needs_torch():
    names, _ = env_packages(ROOT / "envs" / "report.yaml")
    assert not names & {"pytorch", "torch", "pytorch-gpu", "pytorch-cpu"}
    for script in ("report_table.py", "report_plots.py"):
        assert "torch" not in third_party_imports(SCRIPTS / script), script
    code = ("import sys; import kdbudget.report, kdbudget.report.table, kdbudget.report.render, "
            "kdbudget.report.plots, kdbudget.report.paper, kdbudget.report.__main__, kdbudget.log, kdbudget.io; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", result.stdout


@pytest.mark.parametrize("script", sorted(p.name for p in SCRIPTS.glob("*.py") if p.name != f"{BOOTSTRAP}.py"))
def test_every_script_imports_the_repository_package_first(script):
    tree = ast.parse((SCRIPTS / script).read_text(encoding="utf-8"))
    body = tree.body[1:] if ast.get_docstring(tree) is not None else tree.body
    first = body[0]
    assert isinstance(first, ast.Import) and [a.name for a in first.names] == [BOOTSTRAP], \
        f"{script}: the first statement must be `import {BOOTSTRAP}`"


# What Snakemake's preamble does to a script's search path: its own site-packages and the script's
# folder go at the end. A stale kdbudget (an old non-editable install) comes first here.
_PROBE = """
import importlib.util, json, subprocess, sys
sys.path.insert(0, {stale!r})
sys.path.extend([{site!r}, {scripts!r}])
before = importlib.util.find_spec("kdbudget").origin
{imports}
import kdbudget
child = subprocess.run([sys.executable, "-S", "-c",
                        "import importlib.util; print(importlib.util.find_spec('kdbudget').origin)"],
                       capture_output=True, text=True).stdout.strip()
print(json.dumps({{"before": before, "after": kdbudget.__file__, "child": child,
                   "torch": "torch" in sys.modules}}))
"""


def test_a_script_finds_the_repository_package_in_an_environment_without_it(tmp_path):
    """A python without site-packages (-I -S: no kdbudget installed, no PYTHONPATH) runs a real
    script's imports as Snakemake would: kdbudget is the repository's, also for child interpreters
    (torchrun's workers), and the report script never loads torch."""
    stale = tmp_path / "stale"
    (stale / "kdbudget").mkdir(parents=True)
    (stale / "kdbudget" / "__init__.py").write_text("raise ImportError('a stale copy of kdbudget')\n")
    site = next(p for p in sys.path if p.endswith("site-packages"))
    tree = ast.parse((SCRIPTS / "report_table.py").read_text(encoding="utf-8"))
    imports = "\n".join(ast.unparse(node) for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)))
    probe = _PROBE.format(stale=str(stale), site=site, scripts=str(SCRIPTS), imports=imports)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True,
                            timeout=60, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["before"] == str(stale / "kdbudget" / "__init__.py")
    assert found["after"] == str(SRC / "kdbudget" / "__init__.py")
    assert found["child"] == str(SRC / "kdbudget" / "__init__.py")
    assert found["torch"] is False


def test_snakemake_runs_without_the_package_installed(tmp_path):
    """With --sdm conda, Snakemake may come from an env holding only it and the SLURM plugin: the
    workflow then reads the repository's kdbudget. Here site-packages is on the path without its
    .pth files (-I -S), so the editable install of kdbudget is invisible."""
    site = next(p for p in sys.path if p.endswith("site-packages"))
    argv = ["snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path),
            "--configfile", str(ROOT / "config" / "config.yaml")]
    code = (f"import sys; sys.path.append({site!r}); import importlib.util; "
            f"assert importlib.util.find_spec('kdbudget') is None; sys.argv = {argv!r}; "
            "from snakemake.cli import main; main()")
    env = {k: v for k, v in clean_env().items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True,
                            cwd=tmp_path, env=env, timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert "pretrain_model" in result.stdout


# --- site settings -------------------------------------------------------------------------


def test_site_settings_come_from_the_environment_over_the_site_file(tmp_path):
    site_file = tmp_path / "site.yaml"
    site_file.write_text("account: from_file\npartition: cpu\ngpu_partition: gpu\nmax_runtime: 1440\n")
    env = {"KDBUDGET_SLURM_SITE": str(site_file), "KDBUDGET_SLURM_ACCOUNT": "from_env",
           "KDBUDGET_SLURM_MAX_RUNTIME": "720"}
    site, path = cluster.read_site(env, tmp_path / "unused.yaml")
    assert path == site_file
    assert site == {"account": "from_env", "partition": "cpu", "gpu_partition": "gpu", "max_runtime": 720}
    # Nothing set anywhere is fine: the plugin's conventions then apply.
    assert cluster.read_site({}, tmp_path / "absent.yaml") == ({}, tmp_path / "absent.yaml")


@pytest.mark.parametrize(("content", "env", "message"), [
    ("acount: x\n", {}, r"site\.yaml: expected a mapping with keys among account, partition, gpu_partition"),
    ("account: [x\n", {}, r"site\.yaml: not valid YAML"),
    ("", {"KDBUDGET_SLURM_GPU_REQUEST": "mig"}, r"gpu_request \(KDBUDGET_SLURM_GPU_REQUEST or .*site\.yaml\) "
                                                r"must be one of gpus, gres, got 'mig'"),
    ("max_runtime: 1 day\n", {}, r"max_runtime \(KDBUDGET_SLURM_MAX_RUNTIME or .*site\.yaml\) must be a whole "
                                 r"number of minutes above 0, got '1 day'"),
    ("", {"KDBUDGET_SLURM_MAX_RUNTIME": "0"}, r"max_runtime .* got '0'"),
])
def test_bad_site_settings_are_named(tmp_path, content, env, message):
    (tmp_path / "site.yaml").write_text(content)
    with pytest.raises(cluster.SiteError, match=message):
        cluster.read_site(env, tmp_path / "site.yaml")


def test_gpu_jobs_go_to_the_gpu_partition():
    site = {"account": "a", "partition": "cpu", "gpu_partition": "gpu", "gpu_model": "a100", "max_runtime": 60}
    assert cluster.site_resources(site) == {"slurm_account": "a", "slurm_partition": "cpu"}
    assert cluster.site_resources(site, gpus=2) == {"slurm_account": "a", "slurm_partition": "gpu", "gpu": 2,
                                                    "gpu_model": "a100"}
    gres = cluster.site_resources({**site, "gpu_request": "gres"}, gpus=1)
    assert gres == {"slurm_account": "a", "slurm_partition": "gpu", "gres": "gpu:a100:1"}
    # Without a GPU partition, GPU jobs stay in the (site's, or the plugin's) partition.
    assert cluster.site_resources({"partition": "all"}, gpus=1) == {"slurm_partition": "all", "gpu": 1}


FAKE_SBATCH = """#!/bin/sh
echo "$@" >> "{log}"
echo "sbatch: error: this test's sbatch submits nothing" >&2
exit 1
"""


@pytest.mark.slow
def test_a_run_takes_account_and_partition_the_plugin_s_way(tmp_path):
    """`--default-resources slurm_account=... slurm_partition=...` reaches sbatch (a stand-in that
    records its arguments and refuses the job), with no site settings anywhere."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(FAKE_SBATCH.format(log=tmp_path / "sbatch.log"))
    (bin_dir / "sacctmgr").write_text("#!/bin/sh\necho acct42\n")  # the plugin validates the account
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    (tmp_path / "config.yaml").write_text((ROOT / "config" / "config.yaml").read_text())
    env = clean_env(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run(
        ["timeout", "-k", "5", "60", str(SNAKEMAKE), "resources/demo/books", "--profile", str(ROOT / "slurm"),
         "--snakefile", str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile",
         str(tmp_path / "config.yaml"), "--slurm-init-seconds-before-status-checks", "1", "--retries", "0",
         "--default-resources", "slurm_account=acct42", "slurm_partition=kdbudget-test-partition"],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=90)
    out = result.stdout + result.stderr
    assert "SLURM site settings missing" not in out
    log = tmp_path / "sbatch.log"
    assert log.is_file(), f"nothing was submitted:\n{out[-3000:]}"
    calls = log.read_text().splitlines()
    assert " -A acct42 -p kdbudget-test-partition " in calls[0] and "rule_demo_corpus" in calls[0]
    assert result.returncode != 0  # the stand-in refused it


# --- the paper's plan ------------------------------------------------------------------------


def plan(tmp_path: Path, *args: str, env: dict[str, str] | None = None, targets: tuple[str, ...] = ("all",),
         profile: bool = True) -> tuple[str, dict[str, list[dict]]]:
    """A dry run of the paper config from the root; each planned job's wildcards and resources, by rule."""
    cmd = [str(SNAKEMAKE), "-n", *targets, "--directory", str(tmp_path)]
    cmd += ["--profile", "slurm"] if profile else ["--configfile", "config/paper.yaml"]
    result = subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=ROOT, timeout=120,
                            env=env or clean_env())
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    jobs: dict[str, list[dict[str, str]]] = {}
    for block in re.split(r"^\[[^\]\n]+\]$", result.stdout, flags=re.M):
        rule = re.search(r"^(local)?rule (\w+):", block, re.M)
        if not rule:
            continue
        fields = {}
        for key in ("wildcards", "resources"):
            line = re.search(rf"^\s+{key}: (.*)$", block, re.M)
            if line:
                fields.update(dict(item.split("=", 1) for item in line.group(1).split(", ") if "=" in item))
        jobs.setdefault(rule.group(2), []).append(fields)
    return result.stdout, jobs


@pytest.fixture(scope="module")
def paper_plan(tmp_path_factory):
    """The profile's plan with a GPU partition and a 12-hour cap from the environment, and the
    account and the CPU partition the plugin's way."""
    env = clean_env(KDBUDGET_SLURM_GPU_PARTITION="gpu", KDBUDGET_SLURM_MAX_RUNTIME="720")
    return plan(tmp_path_factory.mktemp("plan"), "--default-resources", "slurm_account=acct",
                "slurm_partition=cpu", env=env)[1]


def test_data_and_gpu_jobs_go_to_their_partitions(paper_plan):
    for rule in ("extract_wikipedia", "pack_shard", "tokenizer", "shard_documents", "data_meta"):
        for job in paper_plan[rule]:
            assert job["slurm_partition"] == "cpu" and job["slurm_account"] == "acct", (rule, job)
    for rule in ("pretrain_model", "finetune_cell"):
        for job in paper_plan[rule]:
            assert job["slurm_partition"] == "gpu" and job["slurm_account"] == "acct" and job["gpu"] == "1", job


def test_no_job_asks_for_more_than_the_cap(paper_plan):
    local = local_rules()
    assert {"download_wikipedia", "fetch_glue", "table2"} <= local
    runtimes = {rule: {int(job["runtime"]) for job in jobs} for rule, jobs in paper_plan.items()
                if rule not in local and "runtime" in jobs[0]}
    assert {"extract_wikipedia", "pack_shard", "pretrain_model", "finetune_cell"} <= set(runtimes)
    assert max(max(values) for values in runtimes.values()) == 720
    assert runtimes["extract_wikipedia"] == {720}  # 1440 in the config
    assert 720 in runtimes["pretrain_model"]  # the limited group's 1620 minutes


def test_glue_cells_ask_for_their_task_s_time(paper_plan):
    """Hand-computed from the documented rule: train examples x 5 epochs at 400 examples/s for
    BERT-base, scaled by the student's size (6L/768: half of BERT-base; 12L/1024: 16/9 of it),
    + 5 minutes, at least 15."""
    cells = paper_plan["finetune_cell"]
    # 13 models (Table 2's 12 and the extra distilbert6) x 8 tasks x a 2 x 4 grid (paper.yaml)
    assert len(cells) == 13 * 8 * 8
    by = {}
    for job in cells:
        by.setdefault((job["model"], job["task"]), set()).add(int(job["runtime"]))
    assert all(len(values) == 1 for values in by.values())
    expected = {
        ("nokd6", "rte"): 15, ("minilm12", "rte"): 15, ("nokd6", "cola"): 15,
        ("nokd6", "mnli"): 46,        # 392702 * 5 * 0.5 / 400 s = 40.9 min -> 41 + 5
        ("tinybert12", "mnli"): 151,  # 392702 * 5 * 16/9 / 400 s = 145.5 min -> 146 + 5
        ("vanillakd6_limited", "qqp"): 43,  # 363846 * 2.5 / 400 s = 37.9 min -> 38 + 5
        ("nokd12", "sst2"): 30,       # 67349 * 5 * 16/9 / 400 s = 24.9 min -> 25 + 5
    }
    assert {key: by[key].pop() for key in expected} == expected


def test_gpu_partition_the_plugin_s_way(tmp_path):
    """The README's one-liner: account and partition as default resources, the GPU rules' partition
    with --set-resources."""
    _, jobs = plan(tmp_path, "--default-resources", "slurm_account=acct", "slurm_partition=cpu",
                   "--set-resources", "pretrain_teacher:slurm_partition=gpu", "pretrain_model:slurm_partition=gpu",
                   "finetune_cell:slurm_partition=gpu", targets=("results/glue/minilm6",))
    assert {job["slurm_partition"] for job in jobs["pack_shard"]} == {"cpu"}
    assert {job["slurm_partition"] for rule in ("pretrain_model", "finetune_cell") for job in jobs[rule]} == {"gpu"}


def test_kd_runs_ask_for_what_their_no_kd_run_took(tmp_path):
    """Once nokd6 has written its summary (an hour of training), vanillakd6 asks for an hour +10%
    + 15 minutes: 81 minutes instead of the group's 360; before, the group's runtime."""
    _, before = plan(tmp_path, targets=("results/pretrain/vanillakd6",), profile=False)
    assert {job["model"]: job["runtime"] for job in before["pretrain_model"]} == {"nokd6": "360", "vanillakd6": "360"}
    summary = tmp_path / "results" / "pretrain" / "nokd6" / "summary.json"
    summary.parent.mkdir(parents=True)
    summary.write_text(json.dumps({"spent": {"seconds": 3600.0, "tokens": 1, "flops": 1.0, "steps": 1}}))
    _, after = plan(tmp_path, targets=("results/pretrain/vanillakd6",), profile=False)
    assert {job["model"]: job["runtime"] for job in after["pretrain_model"]}["vanillakd6"] == "81"


# Loads the workflow through Snakemake's API as a run with `--retries 2` (the profile's) would, and
# evaluates the pretraining rule's retries and its runtime per attempt.
_RETRIES_PROBE = """
import json, sys
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.iocontainers import InputFiles, Wildcards
from snakemake.settings.types import (ConfigSettings, ExecutionSettings, OutputSettings,
                                      RemoteExecutionSettings, ResourceSettings, StorageSettings,
                                      WorkflowSettings)
from snakemake_interface_executor_plugins.settings import ExecMode
root = Path({root!r})
with SnakemakeApi(OutputSettings()) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
                            config_settings=ConfigSettings(configfiles=[root / "config/paper.yaml"]),
                            workflow_settings=WorkflowSettings(exec_mode=ExecMode.{mode}),
                            snakefile=root / "Snakefile", workdir=Path({workdir!r}))._workflow
    workflow.execution_settings = ExecutionSettings(retries={cli_retries})
    workflow.remote_execution_settings = RemoteExecutionSettings()
    rule = workflow.get_rule("pretrain_model")
    runtimes = {{model: [rule.expand_resources(Wildcards(fromdict={{"model": model}}),
                                              InputFiles(fromdict={{"data": "results/data/meta.json"}}),
                                              attempt)["runtime"] for attempt in range(1, 6)]
                for model in ("nokd6", "nokd6_limited")}}
    print("RESULT" + json.dumps({{"retries": {{name: workflow.get_rule(name).restart_times
                                             for name in ("pretrain_model", "pretrain_teacher", "pack_shard")}},
                                "runtimes": runtimes}}))
"""


@pytest.mark.parametrize(("cap", "retries", "runtimes"), [
    # 1620 minutes under a 720-minute cap: 3 jobs of 700 useful minutes (10 to stop, 10 to resume),
    # so two retries more than the profile's 2; every attempt asks for at most the cap.
    ("720", 4, {"nokd6": [360, 540, 720, 720, 720], "nokd6_limited": [720] * 5}),
    # 1620 under 1440: two jobs.
    ("1440", 3, {"nokd6": [360, 540, 720, 900, 1080], "nokd6_limited": [1440] * 5}),
    # No cap: the profile's retries, +50% per attempt.
    (None, 2, {"nokd6": [360, 540, 720, 900, 1080], "nokd6_limited": [1620, 2430, 3240, 4050, 4860]}),
])
def test_pretraining_outlasts_the_cap_by_retries(tmp_path, cap, retries, runtimes):
    env = clean_env(**({"KDBUDGET_SLURM_MAX_RUNTIME": cap} if cap else {}))
    probe = _RETRIES_PROBE.format(root=str(ROOT), workdir=str(tmp_path), mode="DEFAULT", cli_retries=2)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    found = json.loads(result.stdout.split("RESULT", 1)[1])
    # pretrain_teacher: the paper fetches its teachers, nothing to outlast; other rules: --retries.
    assert found["retries"] == {"pretrain_model": retries, "pretrain_teacher": 2, "pack_shard": 2}
    assert found["runtimes"] == runtimes


def test_a_cluster_job_never_retries_inside_itself(tmp_path):
    """Inside a SLURM job Snakemake runs the rule with --retries 0: the rule's own retries must not
    override that, or a job that stopped before its time limit would resume within the same job."""
    env = clean_env(KDBUDGET_SLURM_MAX_RUNTIME="720")
    probe = _RETRIES_PROBE.format(root=str(ROOT), workdir=str(tmp_path), mode="REMOTE", cli_retries=0)
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                            env=env, timeout=120)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    found = json.loads(result.stdout.split("RESULT", 1)[1])
    assert found["retries"] == {"pretrain_model": 0, "pretrain_teacher": 0, "pack_shard": 0}


@pytest.mark.slow
def test_snakemake_lets_a_rule_retry_more_often_than_the_profile_says(tmp_path):
    """What the pretraining rules rely on: a rule's `retries:` replaces --retries, even above it."""
    (tmp_path / "Snakefile").write_text(
        "rule flaky:\n"
        "    output: 'done.txt'\n"
        "    retries: 3\n"
        "    shell: 'echo attempt >> attempts.txt; test $(wc -l < attempts.txt) -ge 4 && touch {output}'\n"
    )
    result = subprocess.run([str(SNAKEMAKE), "--cores", "1", "--retries", "1"], capture_output=True, text=True,
                            cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len((tmp_path / "attempts.txt").read_text().splitlines()) == 4


# --- runtime arithmetic ----------------------------------------------------------------------


def test_runtime_arithmetic():
    assert cluster.relative_cost({"layers": 12, "hidden": 768, "intermediate": 3072}) == 1.0
    assert cluster.relative_cost({"layers": 6, "hidden": 768, "intermediate": 3072}) == 0.5
    # RTE at the floor; MNLI on BERT-base: 392702 * 5 / 400 s = 81.8 min -> 82 + 5.
    assert cluster.glue_cell_minutes(2490, epochs=5, examples_per_second=400) == 15
    assert cluster.glue_cell_minutes(392702, epochs=5, examples_per_second=400) == 87
    assert cluster.glue_cell_minutes(2490, epochs=5, examples_per_second=400, min_minutes=30) == 30
    # A 24-hour seconds budget: 1440 * 1.1 + 15 minutes.
    assert cluster.budget_minutes({"mode": "seconds", "limit": 86400}) == 1599
    assert cluster.budget_minutes({"mode": "flops", "limit": 1e18}) == 0
    assert cluster.capped(1620, 1440) == 1440 and cluster.capped(1620, None) == 1620
    assert [cluster.jobs_needed(m, 1440, 10) for m in (60, 1440, 1441, 2840, 2841)] == [1, 1, 2, 2, 3]
    assert cluster.jobs_needed(10_000, None, 10) == 1
    with pytest.raises(cluster.SiteError, match=r"max_runtime \(20 min\) leaves no training time"):
        cluster.jobs_needed(60, 20, 10)


def test_kd_minutes_follow_a_seconds_reference_only(tmp_path):
    summary = tmp_path / "summary.json"
    assert cluster.reference_minutes(summary) is None
    summary.write_text(json.dumps({"spent": {"seconds": 7200}}))
    assert cluster.reference_minutes(summary) == math.ceil(120 * 1.1) + 15
    seconds = {"mode": "reference", "measure": "seconds", "epochs": 1}
    flops = {"mode": "reference", "measure": "flops", "epochs": 1}
    assert cluster.pretrain_minutes(360, seconds, 147) == 147
    assert cluster.pretrain_minutes(360, seconds, None) == 360
    assert cluster.pretrain_minutes(10, flops, 16) == 10  # a KD step costs more: the seconds say little
    summary.write_text("{}")
    with pytest.raises(ValueError, match="summary.json: no spent.seconds"):
        cluster.reference_minutes(summary)


def test_the_paper_config_sizes_glue_cells_and_documents_the_keys():
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    assert "runtime" not in paper["resources"]["glue"]
    docs = (ROOT / "config" / "README.md").read_text()
    for key in ("examples_per_second", "min_runtime", "resources.pretrain.retries"):
        assert key in docs, key
    readme = (ROOT / "README.md").read_text()
    for text in ("KDBUDGET_SLURM_MAX_RUNTIME", "KDBUDGET_SLURM_GPU_PARTITION", "--default-resources slurm_account=",
                 "--unlock", "--rerun-incomplete", "HF_HOME", "benchmarks/README.md"):
        assert text in readme, text
