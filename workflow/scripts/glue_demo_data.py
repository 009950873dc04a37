"""Write the demo's eight GLUE tasks (official layout) from the demo world."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

import logging

from kdbudget.demo import write_demo_glue
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
demo, glue_demo = snakemake.params.demo, snakemake.params.glue_demo
counts = write_demo_glue(snakemake.output[0], words=demo["words"], seed=demo["seed"],
                         wiki_fraction=demo["wiki_fraction"], task_seed=glue_demo["task_seed"],
                         sizes=glue_demo["sizes"] or None)
logging.getLogger("glue_demo_data").info("demo GLUE tasks: %s", counts)
