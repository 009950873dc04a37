"""Command line: ``python -m kdbudget.train SPEC.json [--log-file FILE]``.

Several processes (data parallel, one per GPU) through torchrun:
``torchrun --standalone --nproc_per_node N -m kdbudget.train SPEC.json``.

Runs one pretraining job from a run spec (see ``kdbudget.train.spec``), for
researchers who drive training without Snakemake and for the tests that kill
and resume a real training process.
"""

from __future__ import annotations

import argparse
import logging
import os

from kdbudget.log import setup_logging
from kdbudget.train.spec import RunSpec
from kdbudget.train.trainer import Interrupted, pretrain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kdbudget.train", description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="a run spec as JSON")
    parser.add_argument("--log-file", help="log file (default: stderr)")
    args = parser.parse_args(argv)
    setup_logging(args.log_file)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun only rank 0 reports
        logging.getLogger().setLevel(logging.WARNING)
    try:
        pretrain(RunSpec.from_json(args.spec))
    except Interrupted as stop:
        return int(stop.code)
    return 0  # an exception ends in setup_logging's hook: the traceback, then the cause as the last line


if __name__ == "__main__":
    raise SystemExit(main())
