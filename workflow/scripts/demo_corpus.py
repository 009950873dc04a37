"""Write the embedded demo's Wikipedia-format dump and book folder."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

import logging
from pathlib import Path

from kdbudget.demo import write_demo_corpus
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
demo = snakemake.params.demo
stats = write_demo_corpus(Path(snakemake.output.dump), Path(snakemake.output.books), words=demo["words"],
                          seed=demo["seed"], wiki_fraction=demo["wiki_fraction"], language=snakemake.params.language)
logging.getLogger("demo_corpus").info("demo corpus: %s", stats)
