"""Download a Wikipedia pages-articles dump, verify its SHA-1 and record which
dated run it is (``latest`` resolved) in a JSON sidecar (needs the internet)."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from kdbudget.data.download import fetch_wikipedia
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
fetch_wikipedia(snakemake.params.mirror, snakemake.wildcards.language, snakemake.wildcards.date,
                snakemake.output.dump, snakemake.params.sha1, record=snakemake.output.record)
