"""Writing every output (atomically): the table files, the comparison with the paper, the plots, the docs copies."""

from __future__ import annotations

import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

from kdbudget.io import atomic_path
from kdbudget.report.formats import RENDERERS, TABLE_FILES
from kdbudget.report.paper import PaperRow, render_comparison
from kdbudget.report.results import ModelResults
from kdbudget.report.sweep import SWEEP_FILES, render_sweep_csv, render_sweep_markdown, sweeps
from kdbudget.report.table import Block

COMPARISON_FILES = {"md": "table2_vs_paper.md", "html": "table2_vs_paper.html"}


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_tables(blocks: Sequence[Block], out_dir: str | Path,
                 paper_rows: Sequence[PaperRow] | None = None) -> list[Path]:
    """``table2.{md,tex,csv,html}`` and ``table2_vs_paper.{md,html}`` in ``out_dir``."""
    out_dir = Path(out_dir)
    written = [write_text(out_dir / name, RENDERERS[fmt](blocks)) for fmt, name in TABLE_FILES.items()]
    comparison = render_comparison(blocks, paper_rows)
    written += [write_text(out_dir / name, comparison[fmt]) for fmt, name in COMPARISON_FILES.items()]
    return written


def write_sweeps(blocks: Sequence[Block], out_dir: str | Path, plots_dir: str | Path | None = None,
                 amortise_over: int = 1) -> list[Path]:
    """``sweep.{md,csv}`` in ``out_dir`` and ``compute_quality.{png,pdf}`` in ``plots_dir`` (None: no plot);
    nothing where no group has more than one budget scale."""
    found = sweeps(blocks)
    if not found:
        return []
    out_dir = Path(out_dir)
    written = [write_text(out_dir / SWEEP_FILES["md"], render_sweep_markdown(found, amortise_over)),
               write_text(out_dir / SWEEP_FILES["csv"], render_sweep_csv(found, amortise_over))]
    if plots_dir is not None:
        from kdbudget.report.plots import write_compute_quality  # matplotlib only when plotting

        written += write_compute_quality(found, plots_dir, amortise_over)
    return written


def write_plots(blocks: Sequence[Block], results: Mapping[str, ModelResults], plots_dir: str | Path) -> list[Path]:
    from kdbudget.report.plots import write_plots as _write_plots  # matplotlib only when plotting

    return _write_plots(blocks, results, plots_dir)


def write_docs(tables_dir: str | Path, plots_dir: str | Path, docs_dir: str | Path, name: str = "demo") -> list[Path]:
    """The README's copies: ``{name}_table2.md`` and ``{name}_throughput.png`` in ``docs_dir``."""
    docs_dir = Path(docs_dir)
    written = []
    for source, target in ((Path(tables_dir) / TABLE_FILES["md"], docs_dir / f"{name}_table2.md"),
                           (Path(plots_dir) / "throughput.png", docs_dir / f"{name}_throughput.png")):
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
        written.append(target)
    return written
