"""Shared fixtures: small hand-written sources and a Snakemake runner that
works in a temporary directory, so tests never touch results/ or the network."""

from __future__ import annotations

import bz2
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

_ARTICLE = """{{{{Infobox settlement
| name = {title}
| population = {population}
}}}}
'''{title}''' is a town in the [[Valley of Ash|ash valley]] near the river [[Morrow]].<ref>{{{{cite book|title=Old towns|year=1901}}}}</ref> The town has {population} inhabitants and a market that opens every {day}.<ref name="census" />

== History ==
The first settlers of {title} came from the [[Northern Hills|hills in the north]] and built a mill by the water. They traded wool, salt and dried fish with the people of [[Morrow]]. Over the years the mill grew into a busy market town with a stone bridge.

{{| class="wikitable"
! Year !! Population
|-
| 1900 || 120
|}}

Today the people of {title} still hold a fair in the autumn, when farmers from the valley sell apples and cheese.

[[Category:Towns in the valley]]"""  # noqa: E501 (wiki paragraphs are one line each)


def _page(title: str, ns: int, page_id: int, text: str, redirect: str | None = None) -> str:
    redirect_tag = f'    <redirect title="{redirect}" />\n' if redirect else ""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return (
        f"  <page>\n    <title>{title}</title>\n    <ns>{ns}</ns>\n    <id>{page_id}</id>\n{redirect_tag}"
        f"    <revision>\n      <id>{page_id + 1000}</id>\n      <timestamp>2023-11-01T00:00:00Z</timestamp>\n"
        f'      <text bytes="{len(text)}" xml:space="preserve">{escaped}</text>\n    </revision>\n  </page>\n'
    )


def write_wiki_dump(path: Path, n_articles: int = 6) -> Path:
    """A small pages-articles dump with templates, links, refs, a table, a
    redirect and a template page, as a bz2 MediaWiki export."""
    pages = [_page("Template:Infobox settlement", 10, 1, "<includeonly>{{{name}}}</includeonly>")]
    pages.append(_page("Ashford Town", 0, 2, "#REDIRECT [[Ashford]]", redirect="Ashford"))
    days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    for i in range(n_articles):
        title = ["Ashford", "Brindle", "Coldwater", "Dunmore", "Elmstead", "Fernley", "Glenwick", "Hollowby"][i % 8]
        if i >= 8:
            title += f" {i}"
        pages.append(_page(title, 0, 10 + i, _ARTICLE.format(title=title, population=100 * (i + 3), day=days[i % 6])))
    xml = (
        '<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="en">\n'
        "  <siteinfo>\n    <sitename>Wikipedia</sitename>\n    <dbname>enwiki</dbname>\n"
        "    <base>https://en.wikipedia.org/wiki/Main_Page</base>\n    <generator>MediaWiki 1.41</generator>\n"
        '    <case>first-letter</case>\n    <namespaces>\n      <namespace key="0" case="first-letter" />\n'
        '      <namespace key="10" case="first-letter">Template</namespace>\n'
        '      <namespace key="14" case="first-letter">Category</namespace>\n    </namespaces>\n  </siteinfo>\n'
        + "".join(pages) + "</mediawiki>\n"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bz2.compress(xml.encode("utf-8")))
    return path


def write_books(folder: Path, n_books: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for b in range(n_books):
        paragraphs = []
        for p in range(12):
            paragraphs.append(
                f"Chapter {p} of book {b} begins at dawn. The old miller walked to the river and looked at the water. "
                f"\"Will the rain come today?\" asked his daughter, who carried a basket of {p + b} apples. "
                f"He did not answer, because the clouds over the hills were already dark and heavy."
            )
        (folder / f"book_{b:02d}.txt").write_text("\n\n".join(paragraphs) + "\n", encoding="utf-8")
    return folder


def base_config(**overrides) -> dict:
    """A test config far smaller than the demo (merged with ``overrides``)."""
    config = {
        "seed": 1,
        "corpus": {
            "wikipedia": {"source": "demo"},
            "bookcorpus": {"source": "demo"},
            "demo": {"words": 20000, "seed": 3},
            "shards": 2,
            "validation_fraction": 0.05,
            "min_doc_words": 10,
        },
        "tokenizer": {"source": "train", "vocab_size": 600, "min_frequency": 1},
        "packing": {"duplication": 2},
        "resources": {"data": {"threads": 1, "runtime": 5, "mem_mb": 500}},
    }
    return _merge(config, overrides)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def run_snakemake(workdir: Path, config: dict, *targets: str, extra: tuple[str, ...] = (), check: bool = True,
                  timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` with ``config`` (written as a YAML file)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "test-config.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    cmd = [str(SNAKEMAKE), *targets, "--snakefile", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", "--configfile", str(config_path), *extra]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=workdir)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake failed ({result.returncode}):\n"
                             f"{result.stdout[-4000:]}\n{result.stderr[-6000:]}")
    return result


@pytest.fixture
def wiki_dump(tmp_path: Path) -> Path:
    return write_wiki_dump(tmp_path / "sources" / "enwiki-test-pages-articles.xml.bz2")


@pytest.fixture
def books_dir(tmp_path: Path) -> Path:
    return write_books(tmp_path / "sources" / "books")


def make_packed_data(directory: Path, *, docs: int = 40, vocab_size: int = 200, seed: int = 0,
                     masking: str = "static", duplication: int = 2) -> Path:
    """A small packed corpus made with the real data-stage functions."""
    import json

    from kdbudget.data.build import PackingConfig, pack_shard, write_meta
    from kdbudget.data.tokenizer import save_tokenizer, train_wordpiece

    words = ["river", "mill", "town", "apple", "cheese", "wool", "salt", "market", "bridge", "farmer", "hill",
             "water", "stone", "autumn", "fair", "north", "valley", "the", "a", "of", "by", "near", "sold", "built"]
    texts = []
    for d in range(docs):
        sentences = [" ".join(words[(d * 5 + s * 3 + w * 7) % len(words)] for w in range(6 + (s + d) % 9)).capitalize()
                     + "." for s in range(14)]
        texts.append(" ".join(sentences))
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = directory / "tokenizer"
    save_tokenizer(train_wordpiece(texts, vocab_size=vocab_size, lowercase=True, min_frequency=1), tokenizer_dir)
    doc_file = directory / "docs.jsonl"
    doc_file.write_text("".join(json.dumps({"source": "bookcorpus", "id": f"d{i}", "title": "", "text": t}) + "\n"
                                for i, t in enumerate(texts)))
    config = PackingConfig(masking=masking, duplication=duplication if masking == "static" else 1)
    for name, key in (("train-000", (0, 0)), ("validation-000", (1, 0))):
        pack_shard(doc_file, tokenizer_dir, directory / f"{name}.npy", config, seed=seed, shard_key=key)
    write_meta(directory / "meta.json", train_shards=[directory / "train-000.npy"],
               validation_shards=[directory / "validation-000.npy"], tokenizer_dir=tokenizer_dir, config=config,
               seed=seed, documents={}, language="en")
    return directory


def tiny_spec(tmp_path: Path, data_dir: Path, name: str = "nokd2", strategy: str = "nokd", **overrides) -> dict:
    """A run spec of a tiny student (2 layers, width 32) on ``data_dir``."""
    spec = {
        "name": name, "strategy": strategy,
        "student": {"layers": 2, "hidden": 32, "heads": 4, "intermediate": 64},
        "optim": {"lr": 1e-3, "batch_size": 8, "micro_batch_size": 4},
        "budget": {"mode": "tokens", "limit": 8 * 128 * 12},
        "data_dir": str(data_dir), "out_dir": str(tmp_path / "out" / name),
        "checkpoint_dir": str(tmp_path / "checkpoints" / name),
        "threads": 1, "log_every_steps": 1, "eval_sequences": 16, "seed": 5,
    }
    return _merge(spec, overrides)


@pytest.fixture(scope="session")
def packed_data(tmp_path_factory) -> Path:
    return make_packed_data(tmp_path_factory.mktemp("packed"))


@pytest.fixture(scope="session")
def packed_dynamic(tmp_path_factory) -> Path:
    return make_packed_data(tmp_path_factory.mktemp("packed-dynamic"), masking="dynamic")


def make_teacher(tmp_path: Path, data: Path, vocab: int, layers: int = 4) -> Path:
    """A user's teacher directory made with transformers' own save_pretrained."""
    import shutil

    import torch
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    config = BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=layers, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=512)
    directory = tmp_path / "teacher"
    BertForMaskedLM(config).save_pretrained(directory)
    for item in (data / "tokenizer").iterdir():
        shutil.copy(item, directory / item.name)
    return directory


def ended(pid: int, wait: float = 0.0) -> bool:
    """Whether a process (not necessarily our child) has ended, gone or a zombie nobody reaped,
    within ``wait`` seconds."""
    import time

    deadline = time.monotonic() + wait
    while True:
        try:
            state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state in ("Z", "X"):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
