"""benchmarks/gpu_throughput.py runs on a CPU at tiny shapes, through the code a GPU run takes:
every strategy, compiled and eager, the out-of-memory halving of the micro-batch (simulated), the
table and the JSON that `python -m kdbudget.estimate` reads."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import ROOT

from kdbudget.strategies import REGISTRY

SCRIPT = ROOT / "benchmarks" / "gpu_throughput.py"
COLUMNS = ["shape", "strategy", "compile", "micro", "tok/s", "min-max tok/s", "MFU", "KD/NoKD", "ideal", "excess",
           "peak GiB", "warm-up s"]


def test_the_benchmark_runs_on_a_cpu_at_tiny_shapes(tmp_path):
    out = tmp_path / "bench"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    # One thread: tiny matrices on two threads of a busy machine spend their time in thread barriers.
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--device", "cpu", "--out", str(out), "--shapes", "paper6",
         "--compile", "off,on", "--compile-backend", "aot_eager", "--batch-size", "4", "--max-micro-batch", "4",
         "--oom-above", "2", "--warmup", "1", "--steps", "2", "--threads", "1"],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "micro-batch 4 does not fit" in done.stderr  # the simulated OOM was halved away

    lines = (out / "gpu_throughput.txt").read_text().splitlines()
    assert lines[0].startswith("# ") and "peak unknown" in lines[0]
    header = [c for c in lines[2].split("  ") if c.strip()]
    assert [c.strip() for c in header] == COLUMNS
    rows = [line.split() for line in lines[3:] if not line.startswith("#")]
    assert [(r[0], r[1], r[2]) for r in rows] == [("paper6", s, c) for c in ("off", "on") for s in REGISTRY]
    assert all(r[3] == "2" and r[6] == "-" for r in rows)  # micro-batch 2 after the OOM; no MFU on a CPU

    report = json.loads((out / "gpu_throughput.json").read_text())
    assert report["tiny"] and report["peak_flops"] is None and len(report["rows"]) == 2 * len(REGISTRY)
    for row in report["rows"]:
        assert row["micro_batch"] == 2 and row["accumulation"] == 2 and row["tokens_per_step"] == 4 * 128
        assert len(row["step_seconds"]) == 2 and row["tokens_per_second"] > 0
        assert row["tokens_per_second_min"] <= row["tokens_per_second"] <= row["tokens_per_second_max"]
        assert row["mfu"] is None and row["peak_memory_bytes"] is None and row["cost_ratio"] > 0
        assert row["compile_active"] == row["compile"] and row["compile_error"] is None
        assert (row["teacher"] is None) == (row["strategy"] == "nokd") and row["student"]["layers"] == 2
        assert row["ideal_ratio"] == 1.0 if row["strategy"] == "nokd" else row["ideal_ratio"] > 1.0
        assert 15 <= row["masked_per_seq"] <= 20  # 20 per full sequence, fewer in the short ones
