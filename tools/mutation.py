#!/usr/bin/env python3
"""Mutation testing of the data and training core with mutmut (not part of CI).

mutmut (``pip install mutmut``, 3.x) rewrites each function of the chosen
files into many small variants ("mutants": an operator, a constant, a
comparison changed) and runs the tests that cover the function against each;
a mutant the tests still pass with has *survived*. This script works in a
temporary copy of the repository (nothing here is touched: mutmut's settings
go into the copy's pyproject.toml, its ``mutants/`` folder stays in the copy),
runs ``mutmut run``, then prints the score (killed / all mutants) and every
surviving mutant's diff.

    python tools/mutation.py [--files src/kdbudget/... ...] [--children 2] [--keep DIR]

The default files are the masking, storage, stream, schedule and budget
modules, tested by the fast tests that exercise them in-process (tests that
train in a subprocess are left out: mutmut's mutants live in this process only).
About 20 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from breakages import copy_tree  # noqa: E402  (the same copy of the repository)

FILES = ["src/kdbudget/data/masking.py", "src/kdbudget/data/storage.py", "src/kdbudget/train/stream.py",
         "src/kdbudget/train/schedule.py", "src/kdbudget/train/budget.py"]
TESTS = ["tests/test_packing.py", "tests/test_stream.py", "tests/test_train.py",
         "-k", "not two_process and not killed and not slurm_job and not progress_bar and not stop_signal "
               "and not job_end_time and not teacher_dir and not another_run"]


def toml_list(values: list[str]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def mutmut(copy: Path, *args: str, timeout: int | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).parent / "mutmut"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run([str(exe), *args], cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", nargs="+", default=FILES, help="source files to mutate")
    parser.add_argument("--tests", nargs="+", default=TESTS, help="pytest selection the mutants run against")
    parser.add_argument("--children", type=int, default=2, help="mutants tested in parallel")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds for the whole mutmut run")
    parser.add_argument("--keep", help="copy the finished mutants/ folder here (mutmut's own state and results)")
    args = parser.parse_args(argv)
    if not shutil.which("mutmut", path=str(Path(sys.executable).parent)):
        print(f"mutmut is not installed in {sys.prefix}: {sys.executable} -m pip install 'mutmut>=3,<4'")
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="kdbudget-mutation-"))
    try:
        copy = copy_tree(tmp / "repo")
        with open(copy / "pyproject.toml", "a", encoding="utf-8") as handle:
            handle.write(
                "\n[tool.mutmut]\n"
                f'source_paths = ["src"]\n'
                f"only_mutate = {toml_list(args.files)}\n"
                f"pytest_add_cli_args_test_selection = {toml_list(args.tests)}\n"
                'pytest_add_cli_args = ["-p", "no:cacheprovider", "-o", "addopts=", "-q"]\n'
                "use_git_change_detection = false\n"
            )
        started = time.perf_counter()
        run = mutmut(copy, "run", "--max-children", str(args.children), timeout=args.timeout)
        minutes = (time.perf_counter() - started) / 60
        log = run.stdout + run.stderr
        (tmp / "mutmut-run.log").write_text(log)
        if run.returncode != 0:
            print(f"mutmut run failed ({run.returncode}) after {minutes:.1f} min:\n{log[-4000:]}")
            return 1
        mutmut(copy, "export-cicd-stats")
        stats = json.loads((copy / "mutants" / "mutmut-cicd-stats.json").read_text())
        results = mutmut(copy, "results").stdout
        survivors = [line.split(":")[0].strip() for line in results.splitlines() if line.strip().endswith("survived")]
        others = [line.strip() for line in results.splitlines()
                  if line.strip() and not line.strip().endswith(("survived", "killed"))]
        tested = stats["killed"] + stats["survived"]
        print(f"mutmut on {', '.join(args.files)}")
        print(f"tests: {' '.join(args.tests)}")
        print(f"{minutes:.1f} min; stats: {json.dumps(stats)}")
        print(f"score: {stats['killed']}/{tested} killed = {100 * stats['killed'] / max(1, tested):.1f}% "
              f"(of {stats['total']} mutants; the rest: no covering test, timeouts, skipped)")
        if others:
            print(f"\nnot killed for another reason ({len(others)}):")
            print("\n".join(f"  {line}" for line in others))
        print(f"\nsurvivors ({len(survivors)}):")
        for name in survivors:
            diff = mutmut(copy, "show", name).stdout
            body = [line for line in diff.splitlines() if re.match(r"^[-+](?![-+])", line)]
            print(f"- {name}\n" + "\n".join(f"    {line}" for line in body))
        if args.keep:
            shutil.copytree(copy / "mutants", args.keep, dirs_exist_ok=True)
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
