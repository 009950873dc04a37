#!/usr/bin/env python3
"""Deliberate breakages the test suite must catch.

Each breakage is a small text substitution in one source file. For each, the
repository is copied to a temporary directory (without .git, .venv, results,
resources, logs, .snakemake and caches), the substitution is applied there,
and the tests named for it run against the copy (``PYTHONPATH`` at the copy's
``src``). A breakage is *caught* when those tests fail; it *survives* when
they pass. The same tests are first run on the unbroken copy (``--no-baseline``
skips that), so a red result means the breakage, not a test already failing.

    python tools/breakages.py [--only ID ...] [--no-baseline] [--keep]

Exit status 0 when every breakage was caught; 1 when one survived, its text
was not found (the source moved on: update the breakage), or the baseline
failed. Not part of CI: it runs ~20 pytest sessions (a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXCLUDE = {".git", ".venv", "results", "resources", "logs", ".snakemake", "__pycache__", ".pytest_cache",
           ".mypy_cache", ".ruff_cache", "mutants", "report.html"}


@dataclass(frozen=True)
class Breakage:
    id: str
    what: str
    path: str
    edits: tuple[tuple[str, str], ...]  # (text that must occur exactly once, its replacement)
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -k expressions


TRAINER = "src/kdbudget/train/trainer.py"
BUDGET = "src/kdbudget/train/budget.py"

BREAKAGES = [
    Breakage("1-mask-fractions", "masking_spec swaps the 0.8 [MASK] and 0.1 random-token fractions",
             "src/kdbudget/data/storage.py",
             (('mask_token_fraction=masking["mask_token_fraction"], random_token_fraction=masking["random_token_fraction"]',
               'mask_token_fraction=masking["random_token_fraction"], random_token_fraction=masking["mask_token_fraction"]'),),
             ("tests/test_packing.py", "-k", "dynamic")),
    Breakage("2-stream-epochs", "BatchStream: the same order and static-mask copy 0 in every epoch",
             "src/kdbudget/train/stream.py",
             (("order = self._permutation(pos.epoch)", "order = self._permutation(0)"),
              ("epoch=pos.epoch, rng=rng", "epoch=0, rng=rng")),
             ("tests/test_stream.py",)),
    Breakage("3-constant-lr", "the trainer applies the peak learning rate at every step",
             TRAINER, (("lr = opt.lr * lr_multiplier(run.strategy.schedule_fraction(fraction), total=1.0, warmup=opt.warmup)",
                        "lr = opt.lr"),),
             ("tests/test_train.py", "-k", "learning_rate")),
    Breakage("4a-precision-ignored", "pretraining always runs in fp32, whatever `precision` says",
             TRAINER, (("amp_dtype = autocast_dtype(device, spec.precision)", 'amp_dtype = autocast_dtype(device, "fp32")'),),
             ("tests/test_gpu_paths.py", "-k", "autocast or scaler")),
    Breakage("4b-autocast-not-applied", "precision recorded, but the forward passes run without autocast",
             TRAINER, (("autocast = autocast_context(device, amp_dtype)", "autocast = autocast_context(device, None)"),),
             ("tests/test_gpu_paths.py", "-k", "autocast or scaler")),
    Breakage("4c-scaler-not-restored", "a resume starts a fresh fp16 loss scaler instead of the checkpointed one",
             TRAINER, (('scaler.load_state_dict(state["scaler"])', "pass"),),
             ("tests/test_gpu_paths.py", "-k", "scaler")),
    Breakage("4d-scaler-not-saved", "the checkpoint holds a fresh scaler's state, not the run's",
             TRAINER, (('"scaler": run.parts.scaler.state_dict(),',
                        '"scaler": torch.amp.GradScaler(run.device.type, enabled=run.parts.scaler.is_enabled())'
                        '.state_dict(),'),),
             ("tests/test_gpu_paths.py", "-k", "scaler")),
    Breakage("5a-follower-ignores-reference", "a follower trains its own epochs instead of the reference's spend",
             BUDGET, (('limit = reference["spent"][b.measure]', 'limit = b.epochs * meta["sequences"] * meta["seq_len"]'),),
             ("tests/test_train.py", "-k", "reference_budgets or other_hardware")),
    Breakage("5b-mismatch-flag-ignored", "allow_device_mismatch does not allow a wall-clock reference from other hardware",
             BUDGET, ((" and not b.allow_device_mismatch", ""),),
             ("tests/test_train.py", "-k", "other_hardware")),
    Breakage("5c-missing-reference", "a missing reference summary is not reported as a BudgetError naming it",
             BUDGET, (("if not b.reference_summary or not Path(b.reference_summary).is_file():",
                        "if not b.reference_summary:"),),
             ("tests/test_train.py", "-k", "missing_reference")),
    Breakage("5d-hardware-check-for-flops", "the same-hardware check also refuses FLOPs references",
             BUDGET, (('if b.measure == "seconds" and reference["device"] != device', 'if reference["device"] != device'),),
             ("tests/test_train.py", "-k", "reference_budgets")),
    Breakage("6a-hub-split", "fetch_glue reads MNLI's dev split under a wrong hub split name",
             "src/kdbudget/glue/tasks.py",
             (('hub_dev_splits=("validation_matched", "validation_mismatched")',
               'hub_dev_splits=("validation", "validation_mismatched")'),),
             ("tests/test_glue.py", "-k", "hub_copy")),
    Breakage("6b-hub-column", "fetch_glue reads QQP's first question from a wrong hub column",
             "src/kdbudget/glue/tasks.py",
             (('hub_config="qqp", hub_text_columns=("question1", "question2")',
               'hub_config="qqp", hub_text_columns=("question", "question2")'),),
             ("tests/test_glue.py", "-k", "hub_copy")),
    Breakage("7a-summary-tokens-per-second", "the pretraining summary renames tokens_per_second",
             TRAINER, (('"tokens_per_second": spent.tokens / spent.seconds', '"tokens_per_sec": spent.tokens / spent.seconds'),),
             ("tests/test_report.py", "-k", "real_training")),
    Breakage("7b-summary-spent", "the pretraining summary renames spent",
             TRAINER, (('"spent": spent.as_dict(), "device": run.hardware',
                        '"spent_budget": spent.as_dict(), "device": run.hardware'),),
             ("tests/test_report.py", "-k", "real_training")),
    # From the audit of tests that asserted too little:
    Breakage("8-eval-mean-of-means", "validation loss averages the batches' means instead of every masked token",
             TRAINER, (("total_loss += float(out.mlm_loss) * len(labels)", "total_loss += float(out.mlm_loss) * batch_size"),
                       ("count += len(labels)", "count += batch_size")),
             ("tests/test_train.py", "-k", "validation_loss")),
    Breakage("9-mask-count-of-maskable", "15% of the maskable tokens instead of the whole sequence",
             "src/kdbudget/data/masking.py",
             (("np.rint(lengths * spec.mask_prob)", "np.rint(maskable * spec.mask_prob)"),),
             ("tests/test_packing.py", "-k", "dynamic")),
    Breakage("10-positions-not-uniform", "masked positions drawn from the start of the sequence, not uniformly",
             "src/kdbudget/data/masking.py",
             (("keys = np.where(candidate, rng.random((n, seq_len)), np.inf)",
               "keys = np.where(candidate, np.arange(seq_len)[None, :] + 0.9 * rng.random((n, seq_len)) ** 8, np.inf)"),),
             ("tests/test_packing.py", "-k", "dynamic")),
    Breakage("11-short-seq-rate", "short targets drawn at half of short_seq_prob",
             "src/kdbudget/data/packing.py",
             (("if rng.random() < short_seq_prob:", "if rng.random() < short_seq_prob / 2:"),),
             ("tests/test_packing.py", "-k", "short")),
    Breakage("12-glue-bf16-ignored", "GLUE fine-tuning records bf16 but runs without autocast",
             "src/kdbudget/glue/finetune.py",
             (("autocast = autocast_context(device_, amp_dtype)", "autocast = autocast_context(device_, None)"),),
             ("tests/test_glue.py", "-k", "bf16")),
]


def copy_tree(dest: Path) -> Path:
    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in EXCLUDE or n.endswith(".egg-info")}

    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)
    return dest


def run_tests(copy: Path, tests: tuple[str, ...], timeout: int) -> tuple[int, str, float]:
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-o", "addopts=", *tests]
    started = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as err:
        return 124, f"timed out after {timeout} s\n{err.stdout or ''}", time.perf_counter() - started
    return done.returncode, done.stdout + done.stderr, time.perf_counter() - started


def verdict_line(output: str) -> str:
    failed = re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.M)
    tail = [line for line in output.strip().splitlines() if re.search(r"\b(passed|failed|error|no tests ran)", line)]
    return (", ".join(failed[:3]) + " | " if failed else "") + (tail[-1].strip("= ") if tail else output.strip()[-200:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="breakage ids (or their prefixes) to run")
    parser.add_argument("--no-baseline", action="store_true", help="skip the run of the tests on the unbroken copy")
    parser.add_argument("--keep", action="store_true", help="keep the temporary copy")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per pytest run")
    args = parser.parse_args(argv)
    chosen = [b for b in BREAKAGES if not args.only or any(b.id == o or b.id.startswith(o) for o in args.only)]
    if not chosen:
        parser.error("no breakage matches --only")

    tmp = Path(tempfile.mkdtemp(prefix="kdbudget-breakages-"))
    copy = copy_tree(tmp / "repo")
    bad = 0
    try:
        if not args.no_baseline:
            # The union of the selections, on the unbroken copy, file by file.
            selections: dict[str, list[str]] = {}
            for b in chosen:
                file, expr = b.tests[0], (b.tests[2] if len(b.tests) > 2 else None)
                selections.setdefault(file, [])
                if expr is None:
                    selections[file] = None  # type: ignore[assignment]
                elif selections[file] is not None and f"({expr})" not in selections[file]:
                    selections[file].append(f"({expr})")
            for file, exprs in selections.items():
                tests = (file,) if exprs is None else (file, "-k", " or ".join(exprs))
                rc, out, seconds = run_tests(copy, tests, args.timeout)
                ok = rc == 0
                print(f"{'baseline ok ' if ok else 'BASELINE RED'} {' '.join(tests)}  [{seconds:.0f} s] {verdict_line(out)}",
                      flush=True)
                if not ok:
                    bad += 1
                    print(out[-3000:])
            if bad:
                print("the tests fail without any breakage: fix them first")
                return 1
        for b in chosen:
            target = copy / b.path
            original = target.read_text(encoding="utf-8")
            text = original
            missing = [old for old, _ in b.edits if text.count(old) != 1]
            if missing:
                bad += 1
                print(f"NOT APPLIED  {b.id}: {b.path} does not hold exactly one of: {missing!r}", flush=True)
                continue
            for old, new in b.edits:
                text = text.replace(old, new)
            target.write_text(text, encoding="utf-8")
            try:
                rc, out, seconds = run_tests(copy, b.tests, args.timeout)
            finally:
                target.write_text(original, encoding="utf-8")
            if rc == 0:
                status, bad = "SURVIVED", bad + 1
            elif rc in (1, 2, 3):  # tests failed, interrupted or broke on import: red
                status = "caught  "
            else:
                status, bad = f"rc={rc}?  ", bad + 1  # no tests collected, a timeout: not a verdict
            print(f"{status} {b.id}: {b.what}\n         {' '.join(b.tests)}  [{seconds:.0f} s] {verdict_line(out)}",
                  flush=True)
    finally:
        if args.keep:
            print(f"copy kept at {copy}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    caught = len(chosen) - bad
    print(f"\n{caught}/{len(chosen)} breakages caught" + ("" if not bad else f"; {bad} not caught (see above)"))
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())
