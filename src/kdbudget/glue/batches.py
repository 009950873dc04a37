"""The order of training batches: length-grouped, seeded.

A shuffled epoch is cut into chunks of 50 batches, each chunk sorted by
length, and the batches shuffled again: batches hold sequences of similar
length (little padding) while the order stays random.
"""

from __future__ import annotations

import math

import numpy as np

CHUNK_BATCHES = 50  # batches per length-sorted chunk


def batch_plan(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
               chunk_batches: int = CHUNK_BATCHES) -> list[np.ndarray]:
    """One epoch of batches: shuffle, sort chunks of ``chunk_batches`` batches by length, shuffle the batches."""
    order = rng.permutation(len(lengths))
    batches = []
    chunk = batch_size * chunk_batches
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def epoch_plans(lengths: np.ndarray, batch_size: int, epochs: float,
                rng: np.random.Generator) -> list[list[np.ndarray]]:
    """The batches of each epoch; a fractional last epoch takes the first part of a fresh epoch's batches."""
    whole = int(epochs)
    plans = [batch_plan(lengths, batch_size, rng) for _ in range(whole)]
    if epochs > whole:
        plan = batch_plan(lengths, batch_size, rng)
        plans.append(plan[:max(1, math.ceil((epochs - whole) * len(plan)))])
    return plans
