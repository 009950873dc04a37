"""Clean, de-duplicate and split all documents; scatter them into shards."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from kdbudget.data.shard import shard_documents
from kdbudget.io import write_json
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
stats = shard_documents(
    snakemake.input, snakemake.output.train, snakemake.output.validation[0],
    min_doc_words=snakemake.params.min_doc_words, validation_fraction=snakemake.params.validation_fraction,
    seed=snakemake.params.seed, processes=snakemake.threads,
)
write_json(snakemake.output.stats, stats)
