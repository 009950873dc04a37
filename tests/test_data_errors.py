"""Bad input fails early with a message naming the file or config key, and
leaves no partial output that looks complete."""

import json

import pytest
from conftest import base_config, run_snakemake, write_books, write_wiki_dump

from kdbudget.data.tokenizer import save_tokenizer, train_wordpiece
from kdbudget.io import atomic_dir, atomic_path


def _sources(wiki, books):
    return {"corpus": {"wikipedia": {"source": "file", "path": str(wiki)},
                       "bookcorpus": {"source": "dir", "path": str(books)}}}


def _output(result) -> str:
    return result.stdout + result.stderr


def test_missing_dump_is_named_before_any_job(tmp_path, books_dir):
    missing = tmp_path / "nowhere" / "enwiki-pages-articles.xml.bz2"
    result = run_snakemake(tmp_path / "work", base_config(**_sources(missing, books_dir)), "data", check=False)
    assert result.returncode != 0
    assert str(missing) in _output(result)
    assert not (tmp_path / "work" / "results").exists()


def test_missing_book_folder_is_named_before_any_job(tmp_path, wiki_dump):
    missing = tmp_path / "no-books"
    result = run_snakemake(tmp_path / "work", base_config(**_sources(wiki_dump, missing)), "data", check=False)
    assert result.returncode != 0
    assert str(missing) in _output(result)
    assert not (tmp_path / "work" / "results").exists()


@pytest.mark.slow
def test_book_folder_without_books_is_named(tmp_path, wiki_dump):
    empty = tmp_path / "empty-books"
    empty.mkdir()
    work = tmp_path / "work"
    result = run_snakemake(work, base_config(**_sources(wiki_dump, empty)), "data", check=False)
    assert result.returncode != 0
    assert f"book folder has no *.txt files: {empty}" in (work / "logs" / "data" / "read_books.log").read_text()
    assert not (work / "results" / "data" / "extracted" / "bookcorpus.jsonl").exists()


@pytest.mark.slow
def test_empty_corpus_after_cleaning(tmp_path):
    wiki = write_wiki_dump(tmp_path / "src" / "dump.xml.bz2", n_articles=2)
    books = write_books(tmp_path / "src" / "books", n_books=1)
    config = base_config(**_sources(wiki, books))
    config["corpus"]["min_doc_words"] = 100000
    work = tmp_path / "work"
    result = run_snakemake(work, config, "data", check=False)
    assert result.returncode != 0
    log = (work / "logs" / "data" / "shard_documents.log").read_text()
    assert "the corpus is empty after cleaning" in log and "min_doc_words=100000" in log
    assert not list((work / "results" / "data" / "docs").glob("*.jsonl"))
    assert not (work / "results" / "data" / "meta.json").exists()


def test_tokenizer_that_does_not_match_the_teacher(tmp_path, wiki_dump, books_dir):
    teacher = tmp_path / "teacher"
    save_tokenizer(train_wordpiece(["a b c d e f g"] * 10, vocab_size=100, lowercase=True, min_frequency=1), teacher)
    (teacher / "config.json").write_text(json.dumps({"model_type": "bert", "vocab_size": 30522}))
    config = base_config(**_sources(wiki_dump, books_dir), tokenizer={"source": "dir", "path": str(teacher)})
    result = run_snakemake(tmp_path / "work", config, "data", check=False)
    assert result.returncode != 0
    out = _output(result)
    assert "tokenizer.path" in out and "does not match the teacher's vocabulary" in out and "30522" in out
    assert not (tmp_path / "work" / "results").exists()


@pytest.mark.parametrize("override, key", [({"corpus": {"shardz": 2}}, "corpus.shardz"),
                                           ({"packing": {"seq_len": 4}}, "packing.seq_len")])
def test_bad_config_is_named_by_the_workflow(tmp_path, override, key):
    result = run_snakemake(tmp_path / "work", base_config(**override), "data", "-n", check=False)
    assert result.returncode != 0
    assert f"config key '{key}'" in _output(result)


def test_atomic_writers_leave_nothing_on_failure(tmp_path):
    target = tmp_path / "out.npy"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    directory = tmp_path / "tokenizer"
    with pytest.raises(RuntimeError):
        with atomic_dir(directory) as tmp:
            (tmp / "vocab.txt").write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
