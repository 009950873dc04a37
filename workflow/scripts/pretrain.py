"""Pretrain one model (a student or a teacher) from its run spec; several GPUs run under torchrun."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from kdbudget.log import setup_logging
from kdbudget.train.launch import run

setup_logging(snakemake.log[0])
spec = snakemake.params.spec
gpus = int(snakemake.params.gpus or 0)
run({**spec, "threads": spec["threads"] or snakemake.threads, "gpus": gpus}, processes=max(1, gpus),
    log_file=snakemake.log[0])
