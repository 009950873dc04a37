"""Extract a Wikipedia dump into documents with wikiextractor."""
from kdbudget.data.extract import extract_wikipedia
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
extract_wikipedia(snakemake.input[0], snakemake.output[0], processes=snakemake.threads)
