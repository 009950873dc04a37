"""Read a folder of plain-text books into documents."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

from kdbudget.data.extract import read_books
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
read_books(snakemake.input[0], snakemake.output[0])
