"""Save the GLUE tasks from the hub in the official layout (needs the internet)."""
from kdbudget.glue.loader import save_hub_glue
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
save_hub_glue(snakemake.output[0])
