"""Save a hub model's tokenizer locally (needs the internet)."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from kdbudget.data.download import fetch_hub_tokenizer
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
fetch_hub_tokenizer(snakemake.params.hub_name, snakemake.output[0])
