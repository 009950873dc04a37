"""The data stage end to end through Snakemake, in a temporary directory."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, SNAKEMAKE, base_config, run_snakemake


@pytest.mark.slow
def test_wikiextractor_through_the_rule(tmp_path, wiki_dump, books_dir):
    config = base_config(corpus={"wikipedia": {"source": "file", "path": str(wiki_dump)},
                                 "bookcorpus": {"source": "dir", "path": str(books_dir)}})
    work = tmp_path / "work"
    run_snakemake(work, config, "results/data/extracted/wikipedia.jsonl")
    docs = [json.loads(line) for line in (work / "results/data/extracted/wikipedia.jsonl").read_text().splitlines()]
    titles = [d["title"] for d in docs]
    assert titles == ["Ashford", "Brindle", "Coldwater", "Dunmore", "Elmstead", "Fernley"]
    # neither the redirect nor the template page
    assert "Ashford Town" not in titles and not any(t.startswith("Template:") for t in titles)
    text = docs[0]["text"]
    assert "in the ash valley near the river Morrow" in text  # piped and plain link text kept
    assert "from the hills in the north" in text
    assert not any(marker in d["text"] for d in docs for marker in ("[[", "{{", "<ref", "|}", "Infobox"))


@pytest.mark.slow
def test_demo_data_stage_end_to_end(tmp_path):
    work = tmp_path / "work"
    result = run_snakemake(work, base_config(), "data")
    assert "Nothing to be done" not in result.stdout + result.stderr
    data = work / "results" / "data"
    meta = json.loads((data / "meta.json").read_text())
    assert meta["seq_len"] == 128 and meta["masking"]["mode"] == "static" and meta["masking"]["duplication"] == 2
    assert set(meta["documents"]) == {"wikipedia", "bookcorpus"}
    assert meta["splits"]["validation"]["sequences"] > 0
    shards = meta["splits"]["train"]["shards"]
    assert [s["path"] for s in shards] == ["train-000.npy", "train-001.npy"]
    total = 0
    for shard in shards:
        records = np.load(data / shard["path"], mmap_mode="r")
        assert records.shape == (2, shard["sequences"])
        lengths = records["length"][0].astype(int)
        ids = records["input_ids"][0]
        assert (lengths <= 128).all() and (ids[:, 0] == meta["tokenizer"]["special_ids"]["cls"]).all()
        assert (ids[np.arange(len(ids)), lengths - 1] == meta["tokenizer"]["special_ids"]["sep"]).all()
        total += int(lengths.sum())
    assert meta["tokens"] == total > 15000
    tokenizer = data / "tokenizer"
    assert {"tokenizer.json", "tokenizer_config.json", "vocab.txt"} <= {p.name for p in tokenizer.iterdir()}
    assert "tokens/s" in (work / "logs" / "data" / "pack_train-000.log").read_text()
    # Nothing left to do: the outputs are complete and up to date.
    again = run_snakemake(work, base_config(), "data")
    assert "Nothing to be done" in again.stdout + again.stderr


def test_paper_data_stage_plans_offline(tmp_path: Path):
    config = tmp_path / "paper.yaml"
    shutil.copy(ROOT / "config" / "paper.yaml", config)
    result = subprocess.run([str(SNAKEMAKE), "data", "-n", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                             str(tmp_path), "--configfile", str(config)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    for rule in ("download_wikipedia", "fetch_bookcorpus", "fetch_tokenizer", "extract_wikipedia", "pack_shard"):
        assert rule in out
    assert "resources/wikipedia/enwiki-latest-pages-articles.xml.bz2" in out


@pytest.mark.parametrize("unused, used_rule, unused_rule", [("bookcorpus", "extract_wikipedia", "read_books"),
                                                            ("wikipedia", "read_books", "extract_wikipedia")])
def test_a_one_source_corpus_plans(tmp_path, unused, used_rule, unused_rule):
    result = run_snakemake(tmp_path / "work", base_config(corpus={unused: {"source": "none"}}), "data", "-n")
    planned = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert used_rule in planned and "pack_shard" in planned and unused_rule not in planned


@pytest.mark.slow
def test_wikipedia_only_demo_data_stage(tmp_path):
    """BookCorpus is hard to get: pretraining on Wikipedia alone runs end to end."""
    work = tmp_path / "work"
    run_snakemake(work, base_config(corpus={"bookcorpus": {"source": "none"}}), "data")
    meta = json.loads((work / "results" / "data" / "meta.json").read_text())
    assert set(meta["documents"]) == {"wikipedia"} and meta["sequences"] > 0
    assert not (work / "results" / "data" / "extracted" / "bookcorpus.jsonl").exists()
