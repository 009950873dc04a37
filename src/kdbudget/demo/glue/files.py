"""The rows of each demo task's files, column by column as in the official GLUE download."""

from __future__ import annotations

from kdbudget.demo.glue.context import Example
from kdbudget.demo.glue.language import parses


class Ids:
    """Stable ids for repeated texts (MRPC sentence ids, QQP question ids)."""

    def __init__(self, start: int) -> None:
        self.ids: dict[str, int] = {}
        self.start = start

    def __call__(self, text: str) -> str:
        return str(self.ids.setdefault(text, self.start + len(self.ids)))


def task_rows(task: str, examples: list[Example], ids: Ids, offset: int) -> list[list[str]]:
    """The file rows of ``examples``; ``offset`` numbers QQP's pair ids across files."""
    out: list[list[str]] = []
    for i, ex in enumerate(examples):
        t, y = ex.texts, ex.label
        if task == "cola":
            out.append([ex.meta["source"], y, "" if y == "1" else "*", t[0]])
        elif task == "sst2":
            out.append([t[0], y])
        elif task == "mrpc":
            out.append([y, ids(t[0]), ids(t[1]), t[0], t[1]])
        elif task == "qqp":
            out.append([str(offset + i), ids(t[0]), ids(t[1]), t[0], t[1], y])
        elif task == "stsb":
            genre = "main-news" if ex.meta["style"] == "wiki" else "main-captions"
            out.append([str(i), genre, f"demo-{ex.meta['style']}", "2024", f"{i:04d}", "none", "none", t[0], t[1], y])
        elif task == "mnli":
            b1, p1 = parses(t[0])
            b2, p2 = parses(t[1])
            prompt = ex.meta["prompt"]
            out.append([str(i), str(prompt), f"{prompt}{ex.meta['letter']}", ex.meta["genre"], b1, b2, p1, p2,
                        t[0], t[1], y, y])
        else:  # qnli, rte
            out.append([str(i), t[0], t[1], y])
    return out
