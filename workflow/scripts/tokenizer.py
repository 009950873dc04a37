"""Train the demo's WordPiece tokenizer, or store the teacher's."""
import _kdbudget_path  # noqa: F401  (first: the repository's kdbudget, whatever environment runs this)

import logging

from kdbudget.data.tokenizer import copy_tokenizer, document_texts, save_tokenizer, train_wordpiece
from kdbudget.log import setup_logging

setup_logging(snakemake.log[0])
tok = snakemake.params.tokenizer
if tok["source"] == "train":
    tokenizer = train_wordpiece(document_texts(snakemake.input), vocab_size=tok["vocab_size"],
                                lowercase=tok["lowercase"], min_frequency=tok["min_frequency"])
    save_tokenizer(tokenizer, snakemake.output[0])
    logging.getLogger("tokenizer").info("trained a WordPiece vocabulary of %d tokens", len(tokenizer))
else:
    info = copy_tokenizer(snakemake.input[0], snakemake.output[0])
    logging.getLogger("tokenizer").info("stored tokenizer from %s: %s", snakemake.input[0], info)
