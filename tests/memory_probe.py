"""Peak memory of one data-stage step, run as its own process (a job's view).

Used by tests/test_data_memory.py, and by hand to size the data rules' mem_mb
(config/README.md, "Memory of the data jobs"):

    python tests/memory_probe.py book OUT.txt MEGABYTES     # a generated book
    python tests/memory_probe.py read BOOK_DIR OUT.jsonl
    python tests/memory_probe.py extract DUMP OUT.jsonl
    python tests/memory_probe.py shard OUT_DIR DOCS.jsonl...  # one train shard, as the worst case
    python tests/memory_probe.py tokenizer DOCS.jsonl OUT_DIR [VOCAB_SIZE]
    python tests/memory_probe.py pack DOCS.jsonl TOKENIZER_DIR OUT.npy [DUPLICATION]

Each step prints one JSON line: ``baseline_mb`` (resident memory once its
libraries are imported, before any work), ``peak_mb`` (the process's peak, or
its largest child's where the work runs in one: wikiextractor) and
``growth_mb`` (their difference: what the data costs).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def resident_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * resource.getpagesize() / 2**20


def peak_mb(who: int = resource.RUSAGE_SELF) -> float:
    """The peak resident memory. Our own from /proc (VmHWM), which reset_peak() can clear: ru_maxrss
    keeps the peak of the process that forked this one (pytest, hundreds of MB late in a run)."""
    if who == resource.RUSAGE_SELF:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(who).ru_maxrss / 1024  # kB on Linux


def reset_peak() -> None:
    """Start the peak over from the current resident memory (Linux: 5 to clear_refs resets VmHWM)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def write_book(path: Path, megabytes: float, seed: int = 0) -> None:
    """A book of Zipf-distributed made-up words, 3-8 sentences a paragraph, one paragraph a line."""
    import numpy as np

    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(rng.choice(letters, size=rng.integers(2, 10))) for _ in range(20000)]
    p = 1.0 / np.arange(1, len(vocab) + 1)
    p /= p.sum()
    target, written = int(megabytes * 1e6), 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        while written < target:
            words = rng.choice(len(vocab), size=20000, p=p)
            paragraphs, sentences, i = [], [], 0
            for n in rng.integers(8, 25, size=2000):
                if i + n > len(words):
                    break
                text = " ".join(vocab[w] for w in words[i:i + n])
                i += n
                sentences.append(text[0].upper() + text[1:] + ".")
                if len(sentences) >= rng.integers(3, 9):
                    paragraphs.append(" ".join(sentences))
                    sentences = []
            chunk = "\n".join(paragraphs) + "\n"
            out.write(chunk)
            written += len(chunk)


def main(argv: list[str]) -> dict:
    step, args = argv[0], argv[1:]
    if step == "book":
        write_book(Path(args[0]), float(args[1]))
        return {"step": step}
    import numpy  # noqa: F401  (imported by every step: part of the baseline)

    if step in ("tokenizer", "pack"):
        # transformers loads its tokenizer modules on first use: about 200 MB that any job pays.
        from tokenizers import Tokenizer  # noqa: F401
        from transformers import AutoTokenizer, BertTokenizerFast  # noqa: F401
    reset_peak()
    baseline = resident_mb()
    started = time.perf_counter()
    who = resource.RUSAGE_SELF
    if step == "read":
        from kdbudget.data.extract import read_books

        result = read_books(args[0], args[1])
    elif step == "extract":
        from kdbudget.data.extract import extract_wikipedia

        result = extract_wikipedia(args[0], args[1])
        who = resource.RUSAGE_CHILDREN
    elif step == "shard":
        from kdbudget.data.shard import shard_documents

        out = Path(args[0])
        result = shard_documents(args[1:], [out / "train-000.jsonl"], out / "validation-000.jsonl",
                                 min_doc_words=20, validation_fraction=0.01, seed=1)
    elif step == "tokenizer":
        from kdbudget.data.tokenizer import document_texts, save_tokenizer, train_wordpiece

        tokenizer = train_wordpiece(document_texts([args[0]]), vocab_size=int(args[2]) if len(args) > 2 else 8192,
                                    lowercase=True, min_frequency=2)
        save_tokenizer(tokenizer, args[1])
        result = {"vocab_size": len(tokenizer)}
    elif step == "pack":
        from kdbudget.data.build import PackingConfig, pack_shard

        duplication = int(args[3]) if len(args) > 3 else 1
        result = pack_shard(args[0], args[1], args[2], PackingConfig(duplication=duplication), seed=1,
                            shard_key=(0, 0))
    else:
        raise SystemExit(f"unknown step {step!r}")
    peak = max(peak_mb(who), peak_mb()) if who == resource.RUSAGE_CHILDREN else peak_mb()
    return {"step": step, "baseline_mb": round(baseline), "peak_mb": round(peak), "growth_mb": round(peak - baseline),
            "seconds": round(time.perf_counter() - started, 1), "result": result}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1:])))
