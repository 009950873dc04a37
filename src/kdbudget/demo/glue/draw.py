"""Draws a task's examples: distinct, within the length limit, labels balanced exactly."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence

from kdbudget.demo.glue import nli, pairs, single
from kdbudget.demo.glue.context import Context, Example, Retry
from kdbudget.glue.tasks import TASKS

MAX_WORDS = 60
_ATTEMPTS = 400


#: One example builder per task but MNLI, which draws a premise with one hypothesis per label (:func:`draw_mnli`).
_BUILDERS: dict[str, Callable[[Context, str, random.Random], Example]] = {
    "cola": single.cola, "sst2": single.sst2, "mrpc": pairs.mrpc, "qqp": pairs.qqp, "stsb": pairs.stsb,
    "qnli": nli.qnli, "rte": nli.rte,
}


def _balanced(labels: Sequence[str], n: int, rng: random.Random) -> list[str]:
    out = [labels[i % len(labels)] for i in range(n)]
    rng.shuffle(out)
    return out


def _ok(ex: Example, seen: set[tuple[str, ...]]) -> bool:
    return ex.texts not in seen and all(0 < len(t.split()) <= MAX_WORDS and "\t" not in t and "\n" not in t
                                        for t in ex.texts)


def draw_examples(task: str, ctx: Context, n: int, rng: random.Random, seen: set[tuple[str, ...]]) -> list[Example]:
    """``n`` distinct examples (none in ``seen``, which grows) with balanced labels."""
    labels = TASKS[task].labels or tuple(level for level, _ in pairs.STS_LEVELS)
    out: list[Example] = []
    for label in _balanced(labels, n, rng):
        for _ in range(_ATTEMPTS):
            try:
                ex = _BUILDERS[task](ctx, label, rng)
            except Retry:
                continue
            if _ok(ex, seen):
                seen.add(ex.texts)
                out.append(ex)
                break
        else:
            raise _too_small(task, n, ctx)
    return out


def draw_mnli(ctx: Context, n: int, rng: random.Random, seen: set[tuple[str, ...]], genres: Sequence[str],
               prompts: Iterator[int]) -> list[Example]:
    """Premises each with one hypothesis per label (so labels balance); ``n`` rows.
    ``prompts`` numbers the premises (MNLI's promptID) across files."""
    out: list[Example] = []
    while len(out) < n:
        for _ in range(_ATTEMPTS):
            try:
                group = nli.mnli_group(ctx, rng.choice(list(genres)), rng)
            except Retry:
                continue
            if all(_ok(ex, seen) for ex in group) and len({ex.texts for ex in group}) == 3:
                break
        else:
            raise _too_small("mnli", n, ctx)
        prompt = next(prompts)
        for ex, letter in zip(group, rng.sample("abc", 3), strict=True):
            seen.add(ex.texts)
            out.append(Example(ex.texts, ex.label, {**ex.meta, "prompt": prompt, "letter": letter}))
    out = out[:n]
    rng.shuffle(out)
    return out


def _too_small(task: str, n: int, ctx: Context) -> ValueError:
    return ValueError(f"demo GLUE task {task}: cannot draw {n} distinct examples about {len(ctx.entities)} entities "
                      f"of a world of {len(ctx.world.entities)}; use a larger demo corpus (words) or smaller sizes")
