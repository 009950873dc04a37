"""Corpus stage: extraction, cleaning, sentence splitting, sharding, tokenization,
packing into 128-token sequences, masking and memory-mappable storage."""
