"""Extract a Wikipedia dump into documents with wikiextractor."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from kdbudget.data.extract import extract_wikipedia
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
extract_wikipedia(snakemake.input[0], snakemake.output[0], processes=snakemake.threads)
