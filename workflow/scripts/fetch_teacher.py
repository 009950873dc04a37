"""Fetch a Hugging Face BertForMaskedLM teacher (weights, config, tokenizer) into resources/ (needs the internet)."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from kdbudget.log import setup_logging
from kdbudget.model.fetch import fetch_hub_model

setup_logging(snakemake.log[0])
fetch_hub_model(snakemake.params.hub_name, snakemake.output[0])
