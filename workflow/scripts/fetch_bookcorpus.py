"""Save a hub copy of BookCorpus as a folder of plain-text books (needs the internet)."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from kdbudget.data.download import fetch_hub_books
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
fetch_hub_books(snakemake.params.hub_name, snakemake.output[0], snakemake.params.lines_per_book)
