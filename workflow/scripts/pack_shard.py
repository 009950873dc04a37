"""Tokenize, pack and mask one document shard."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from kdbudget.data.build import PackingConfig, pack_shard
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
split, index = snakemake.wildcards.shard.split("-")
pack_shard(
    snakemake.input.docs, snakemake.input.tokenizer, snakemake.output[0],
    PackingConfig.from_dict(snakemake.params.packing), seed=snakemake.params.seed,
    shard_key=(0 if split == "train" else 1, int(index)), threads=snakemake.threads,
)
