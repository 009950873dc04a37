# kdbudget: knowledge distillation vs. pretraining from scratch under a fixed
# compute budget. `snakemake --cores 2` runs the embedded demo end to end;
# `snakemake --configfile config/paper.yaml ...` runs the paper's settings.
from snakemake.utils import min_version

min_version("9.0")


# The demo config is the default; a --configfile replaces it instead of
# being merged into it, so a paper run never inherits demo values.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "rules/common.smk"
include: "rules/sources.smk"
include: "rules/data.smk"
include: "rules/pretrain.smk"
include: "rules/glue.smk"
include: "rules/report.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        all_targets(),
