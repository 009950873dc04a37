"""Describe all packed shards in meta.json."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from kdbudget.data.build import PackingConfig, write_meta
from kdbudget.io import read_json
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
records = list(snakemake.input.wikipedia_record)  # one when the dump was downloaded, else none
write_meta(
    snakemake.output[0], train_shards=snakemake.input.train, validation_shards=snakemake.input.validation,
    tokenizer_dir=snakemake.input.tokenizer, config=PackingConfig.from_dict(snakemake.params.packing),
    seed=snakemake.params.seed, documents=read_json(snakemake.input.stats), language=snakemake.params.language,
    sources={"wikipedia": read_json(records[0])} if records else {},
)
