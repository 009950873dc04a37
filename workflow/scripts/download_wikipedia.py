"""Download a Wikipedia pages-articles dump and verify its SHA-1 (needs the internet)."""
from kdbudget.data.download import fetch_wikipedia
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
fetch_wikipedia(snakemake.params.mirror, snakemake.wildcards.language, snakemake.wildcards.date,
                snakemake.output[0], snakemake.params.sha1)
