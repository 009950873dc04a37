"""Render Table 2, its comparison with the paper, the sweeps and the plots from a results folder, without Snakemake.

    python -m kdbudget.report --results results --config config/config.yaml --out results/tables
        [--plots results/plots] [--no-plots] [--allow-missing] [--docs docs/ [--docs-name demo]]

Reads only results/pretrain/{model}/summary.json, metrics.jsonl and
results/glue/{model}/summary.json for the models the config defines. A group
at several budget scales also gets sweep.{md,csv} and compute_quality.{png,pdf}
(its teacher's cost amortised over the config's report.amortise_over students).
The task columns are Table 2's seven that the config's glue.tasks lists.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import yaml

from kdbudget.config import ConfigError, validate_config
from kdbudget.log import setup_logging
from kdbudget.report.formats import RENDERERS
from kdbudget.report.layout import layout_from_config
from kdbudget.report.render import write_docs, write_plots, write_sweeps, write_tables
from kdbudget.report.results import load_results
from kdbudget.report.table import MissingResultsError, build_table, report_tasks

log = logging.getLogger("kdbudget.report")
SCHEMA = Path("workflow") / "schemas" / "config.schema.yaml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kdbudget.report", description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results", help="the results folder (default: results)")
    parser.add_argument("--config", default="config/config.yaml", help="the run's config (its groups and models)")
    parser.add_argument("--schema", help=f"the config schema (default: {SCHEMA} beside the config's folder, "
                                         "then in the working directory)")
    parser.add_argument("--out", help="folder of the table files (default: RESULTS/tables)")
    parser.add_argument("--plots", help="folder of the plots (default: RESULTS/plots)")
    parser.add_argument("--no-plots", action="store_true", help="write the tables only")
    parser.add_argument("--allow-missing", action="store_true",
                        help="render models without results as marked gaps (n/a) instead of failing")
    parser.add_argument("--docs", help="also copy the table (Markdown) and the throughput plot here, for the README")
    parser.add_argument("--docs-name", default="demo", help="prefix of the docs copies (default: demo)")
    parser.add_argument("--log", help="log file (default: stderr)")
    return parser


def find_schema(config_path: Path, given: str | None) -> Path:
    candidates = [Path(given)] if given else [config_path.resolve().parent.parent / SCHEMA, Path.cwd() / SCHEMA]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(f"no config schema at {', '.join(map(str, candidates))}: give it with --schema")


def load_config(config_path: str | Path, schema: str | None = None) -> dict:
    config_path = Path(config_path)
    if not config_path.is_file():
        raise ConfigError(f"{config_path}: no such config file")
    raw = yaml.safe_load(config_path.read_text(encoding="utf-8")) or {}
    return validate_config(raw, find_schema(config_path, schema))


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.docs and args.no_plots:
        parser.error("--docs needs the plots (drop --no-plots)")
    setup_logging(args.log)
    results = Path(args.results)
    out = Path(args.out) if args.out else results / "tables"
    plots = Path(args.plots) if args.plots else results / "plots"
    try:
        config = load_config(args.config, args.schema)
        layout = layout_from_config(config)
        model_results = load_results(layout, results)
        blocks = build_table(layout, model_results, allow_missing=args.allow_missing,
                             tasks=report_tasks(config["glue"]["tasks"]))
    except (ConfigError, MissingResultsError, ValueError) as err:
        log.error("%s", err)
        return 1
    for path in write_tables(blocks, out):
        log.info("wrote %s", path)
    if not args.no_plots:
        for path in write_plots(blocks, model_results, plots):
            log.info("wrote %s", path)
    for path in write_sweeps(blocks, out, None if args.no_plots else plots, config["report"]["amortise_over"]):
        log.info("wrote %s", path)
    if args.docs:
        for path in write_docs(out, plots, args.docs, args.docs_name):
            log.info("wrote %s", path)
    print(RENDERERS["md"](blocks), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
