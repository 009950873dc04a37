"""Pretrain one model (a student or a teacher) from its run spec."""
from kdbudget.log import setup_logging
from kdbudget.train.spec import RunSpec
from kdbudget.train.trainer import pretrain

setup_logging(snakemake.log[0])
spec = snakemake.params.spec
pretrain(RunSpec.from_dict({**spec, "threads": spec["threads"] or snakemake.threads}))
