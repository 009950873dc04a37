"""A rehearsal of the paper run: config/paper.yaml itself, with only its sizes
made tiny, through the whole DAG on a CPU without the internet.

Every code path of the paper run executes: Wikipedia downloaded from a local
mirror laid out like dumps.wikimedia.org (``latest`` resolved to its dated run,
an interrupted transfer resumed, a wrong checksum refused), the teachers and
the tokenizer fetched through a Hugging Face cache filled beforehand (what
``HF_HOME`` on a cluster without internet holds), BookCorpus and GLUE loaded
by ``datasets`` from local clones of their hub repositories, GPU-sized jobs
(``gpu: 1``) told to train on the CPU on purpose, bf16 autocast in
pretraining, fp16 with loss scaling in fine-tuning, all three of Table 2's
groups (the limited-data one included) and the report.

One change beyond sizes: GLUE runs four of the eight tasks (MNLI, STS-B,
CoLA, MRPC: every metric, two dev sets, regression, single sentences and
pairs), since every task is a cell per model and process start-up dominates
a toy cell. The other four take the same code; loading all eight from the
hub's layout is test_glue's `test_hub_copy_is_written_in_the_layout_the_loader_reads`.
"""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, run_snakemake, write_books, write_wiki_dump
from hub_standin import glue_clone, text_dataset_clone, warm_model_cache
from wiki_mirror import add_dump_run, serve_mirror

pytestmark = pytest.mark.slow

DUMP_DATE = "20231101"
GLUE_TASKS = ["mnli", "stsb", "cola", "mrpc"]
# stands in for bert-base; deeper than the 6-layer students, which distilbert cuts out of it
BASE = {"layers": 8, "hidden": 32, "heads": 4, "intermediate": 64}
LARGE = {"layers": 6, "hidden": 48, "heads": 4, "intermediate": 96}  # stands in for bert-large


def _stand_ins(root: Path) -> dict[str, Path]:
    """The hub's teachers and tokenizer in a warmed cache, BookCorpus and GLUE as local clones."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from kdbudget.data.tokenizer import save_tokenizer, train_wordpiece

    books = write_books(root / "books-src", n_books=6)
    texts = [p.read_text() for p in sorted(books.iterdir())]
    texts += [(ROOT / "tests" / "conftest.py").read_text()]  # the dump's article words, roughly
    tokenizer = train_wordpiece(texts, vocab_size=400, lowercase=True, min_frequency=1)
    hf_home = root / "hf-home"
    for repo_id, shape in (("bert-base-uncased", BASE), ("bert-large-uncased", LARGE)):
        torch.manual_seed(len(repo_id))
        files = root / repo_id
        save_tokenizer(tokenizer, files)
        BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), hidden_size=shape["hidden"],
                                   num_hidden_layers=shape["layers"], num_attention_heads=shape["heads"],
                                   intermediate_size=shape["intermediate"])).save_pretrained(files)
        warm_model_cache(hf_home, repo_id, files)
    lines = [line for text in texts[:-1] for line in text.splitlines() if line.strip()]
    return {"hf_home": hf_home, "bookcorpus": text_dataset_clone(root / "bookcorpus-clone", lines),
            "glue": glue_clone(root / "glue-clone", rows_per_split=24)}


def rehearsal_config(mirror_url: str, stand_ins: dict[str, Path]) -> dict:
    """config/paper.yaml with tiny sizes and the stand-ins' addresses; nothing else changed."""
    config = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text(encoding="utf-8"))
    paper = copy.deepcopy(config)
    config["corpus"]["wikipedia"]["mirror"] = mirror_url
    config["corpus"]["bookcorpus"].update(hub_name=str(stand_ins["bookcorpus"]), hub_lines_per_book=12)
    config["corpus"].update(shards=2, min_doc_words=10, validation_fraction=0.1)
    config["packing"].update(duplication=2, batch_sentences=500)
    for name, group in config["groups"].items():  # the teacher's width, the paper's depth (6 or 12)
        width = BASE if group["teacher"] == "bert-base" else LARGE
        group["student"] = {**width, "layers": paper["groups"][name]["student"]["layers"]}
    config["pretrain"].update(batch_size=16, micro_batch_size=8, precision="bf16", device="cpu",
                              log_every_steps=2, eval_sequences=32, checkpoint_every_minutes=5)
    config["glue"].update(hub_name=str(stand_ins["glue"]), grid={"batch_size": [16], "lr": [1.0e-3]}, epochs=1,
                          max_seq_len=64, precision="fp16", device="cpu", tasks=GLUE_TASKS)
    for stage in config["resources"].values():
        stage.update(threads=1, mem_mb=1000)
    # What the rehearsal keeps from the paper: the groups, strategies, budgets, teachers, sources.
    assert config["groups"].keys() == paper["groups"].keys()
    for name, group in config["groups"].items():
        assert group["strategies"] == paper["groups"][name]["strategies"]
        assert group["budget"] == paper["groups"][name]["budget"]
    assert config["teachers"] == paper["teachers"] and config["tokenizer"] == paper["tokenizer"]
    assert config["resources"]["pretrain"]["gpu"] == config["resources"]["glue"]["gpu"] == 1
    return config


def test_the_paper_config_runs_end_to_end_at_toy_sizes(tmp_path, monkeypatch):
    stand_ins = _stand_ins(tmp_path / "hub")
    monkeypatch.setenv("HF_HOME", str(stand_ins["hf_home"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    dump = write_wiki_dump(tmp_path / "dump.xml.bz2", n_articles=16).read_bytes()
    mirror_root = tmp_path / "mirror"
    add_dump_run(mirror_root, dump, date="20231001", latest=False)
    add_dump_run(mirror_root, dump, date=DUMP_DATE)  # the run "latest" stands for
    work = tmp_path / "work"
    dump_target = "resources/wikipedia/enwiki-latest-pages-articles.xml.bz2"

    with serve_mirror(mirror_root, cut_after=len(dump) // 3) as mirror:
        config = rehearsal_config(mirror.url, stand_ins)
        wrong = copy.deepcopy(config)
        wrong["corpus"]["wikipedia"]["sha1"] = "0" * 40
        refused = run_snakemake(work, wrong, dump_target, check=False)
        assert refused.returncode != 0
        log = (work / "logs/sources/download_wikipedia_en_latest.log").read_text()
        assert "0" * 40 in log and f"enwiki-{DUMP_DATE}-pages-articles.xml.bz2" in log
        assert not (work / dump_target).exists()

        run_snakemake(work, config, timeout=1500)
        assert mirror.ranges(".xml.bz2"), "the interrupted transfer was not resumed with a Range request"

    meta = json.loads((work / "results/data/meta.json").read_text())
    assert meta["sources"]["wikipedia"]["dump_date"] == DUMP_DATE
    models = {p.parent.name: json.loads(p.read_text()) for p in (work / "results/pretrain").glob("*/summary.json")}
    expected = {f"{s}{n}" for s in ("nokd", "vanillakd", "minilm", "tinybert") for n in ("6", "12", "6_limited")}
    expected.add("distilbert6")  # the extra row of the 6-layer group (not in the paper)
    assert set(models) == expected
    assert all(m["precision"] == "torch.bfloat16" for m in models.values())
    # The limited-data group: No-KD repeats the corpus 6 times, and each KD arm gets its seconds.
    assert models["nokd6_limited"]["epochs"] == pytest.approx(6, abs=0.2)
    for name in ("vanillakd6_limited", "minilm6_limited", "tinybert6_limited"):
        assert models[name]["budget"]["limit"] == pytest.approx(models["nokd6_limited"]["spent"]["seconds"])
    cell = json.loads(next((work / "results/finetune/minilm12").glob("*/*.json")).read_text())
    assert cell["precision"] == "torch.float16"
    with open(work / "results/tables/table2.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 13  # Table 2's 12 and distilbert6
    assert all(row["avg"] not in ("", "n/a") for row in rows)
    for name in models:
        assert set(json.loads((work / "results/glue" / name / "summary.json").read_text())["tasks"]) == set(GLUE_TASKS)
    assert (work / "results/tables/table2.md").is_file()
