"""Imported first by every workflow script: the repository's kdbudget, whatever environment runs it.

A rule's conda environment (``--sdm conda``) holds only third-party packages, and an installed copy
of kdbudget may be stale, so the checkout's ``src/`` goes first on ``sys.path``. Snakemake puts this
folder on the path of every ``script:`` it runs; PYTHONPATH could not do this, as Snakemake removes
it from conda jobs. The variable is set here for child interpreters, though (torchrun's workers run
``python -m kdbudget.train``, which does not inherit ``sys.path``).
"""

import os
import sys
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[2] / "src")

if sys.path[:1] != [SRC]:
    sys.path.insert(0, SRC)
if os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] != SRC:
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
