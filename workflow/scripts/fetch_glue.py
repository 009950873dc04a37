"""Save the GLUE tasks from the hub in the official layout (needs the internet)."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from kdbudget.glue.loader import save_hub_glue
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
save_hub_glue(snakemake.output[0], tuple(snakemake.params.tasks), hub_name=snakemake.params.hub_name)
