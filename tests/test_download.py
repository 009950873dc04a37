"""The Wikipedia download against a local mirror (tests/wiki_mirror.py):
``latest`` resolution and its record, checksums, resumed transfers, errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import base_config, make_packed_data, run_snakemake, write_wiki_dump
from wiki_mirror import add_dump_run, serve_mirror, wiki_mirror

from kdbudget.data.build import PackingConfig, write_meta
from kdbudget.data.download import ChecksumError, DownloadError, TransferInterrupted, fetch_wikipedia

# Small chunks so that a cut transfer stops inside the body, not after it.
FAST = {"timeout": 10.0, "retry_wait_s": 0.0, "chunk_bytes": 256}


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


@pytest.fixture
def dumps(tmp_path: Path) -> dict[str, bytes]:
    """Two different real (bz2 MediaWiki) dumps: an older and a newer run."""
    old = write_wiki_dump(tmp_path / "src" / "old.xml.bz2", n_articles=3).read_bytes()
    new = write_wiki_dump(tmp_path / "src" / "new.xml.bz2", n_articles=12).read_bytes()
    assert old != new and len(new) > 1000
    return {"20231001": old, "20231101": new}


@pytest.fixture
def two_runs(tmp_path: Path, dumps: dict[str, bytes]) -> Path:
    root = tmp_path / "mirror"
    add_dump_run(root, dumps["20231001"], date="20231001")
    add_dump_run(root, dumps["20231101"], date="20231101")  # becomes latest/
    return root


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_latest_resolves_to_the_dated_run_and_records_it(tmp_path: Path, two_runs: Path, dumps: dict[str, bytes]):
    out = tmp_path / "resources"
    dest, record = out / "enwiki-latest-pages-articles.xml.bz2", out / "enwiki-latest-pages-articles.json"
    with serve_mirror(two_runs) as mirror:
        fetch_wikipedia(mirror.url, "en", "latest", dest, record=record, **FAST)
    dated_url = f"{mirror.url}/enwiki/20231101/enwiki-20231101-pages-articles.xml.bz2"
    assert dest.read_bytes() == dumps["20231101"]
    info = json.loads(record.read_text())
    assert info["url"] == dated_url
    assert (info["requested_date"], info["dump_date"]) == ("latest", "20231101")
    assert info["sha1"] == sha1(dumps["20231101"]) and info["bytes"] == len(dumps["20231101"])
    # The checksum comes from latest/, the file from the dated folder.
    assert [r.path for r in mirror.gets()] == ["/enwiki/latest/enwiki-latest-sha1sums.txt",
                                               "/enwiki/20231101/enwiki-20231101-pages-articles.xml.bz2"]
    assert leftovers(out) == sorted([dest.name, record.name])


def test_explicit_date_reads_that_run(tmp_path: Path, two_runs: Path, dumps: dict[str, bytes]):
    dest = tmp_path / "out" / "enwiki-20231001-pages-articles.xml.bz2"
    with serve_mirror(two_runs) as mirror:
        info = fetch_wikipedia(mirror.url, "en", "20231001", dest, **FAST)
    assert dest.read_bytes() == dumps["20231001"]
    assert info["dump_date"] == "20231001" and info["sha1"] == sha1(dumps["20231001"])
    assert [r.path for r in mirror.gets()] == ["/enwiki/20231001/enwiki-20231001-sha1sums.txt",
                                               "/enwiki/20231001/enwiki-20231001-pages-articles.xml.bz2"]


def test_configured_sha1_overrides_the_published_one(tmp_path: Path, dumps: dict[str, bytes]):
    data = dumps["20231101"]
    dest = tmp_path / "out" / "enwiki-latest-pages-articles.xml.bz2"
    # The mirror publishes a wrong value; the configured right one wins.
    with wiki_mirror(tmp_path / "mirror", data, listed_sha1="f" * 40) as mirror:
        info = fetch_wikipedia(mirror.url, "en", "latest", dest, sha1=sha1(data), **FAST)
    assert dest.read_bytes() == data and info["dump_date"] == "20231101"
    assert info["sha1_source"] == "config"


def test_interrupted_transfer_is_resumed_with_a_range_request(tmp_path: Path, dumps: dict[str, bytes]):
    data, cut = dumps["20231101"], 700
    dest = tmp_path / "out" / "enwiki-latest-pages-articles.xml.bz2"
    part = dest.with_name("enwiki-20231101-pages-articles.xml.bz2.part")
    with wiki_mirror(tmp_path / "mirror", data, cut_after=cut) as mirror:
        with pytest.raises(TransferInterrupted, match=r"/enwiki/20231101/enwiki-20231101-pages-articles\.xml\.bz2"):
            fetch_wikipedia(mirror.url, "en", "latest", dest, retries=0, **FAST)
        assert not dest.exists()
        assert part.read_bytes() == data[:cut]
        # A rerun continues where the first one stopped.
        fetch_wikipedia(mirror.url, "en", "latest", dest, **FAST)
    assert mirror.ranges(".xml.bz2") == [None, f"bytes={cut}-"]
    assert [r.status for r in mirror.gets(".xml.bz2")] == [200, 206]
    assert dest.read_bytes() == data
    assert not part.exists()


def test_a_broken_transfer_is_retried_within_one_run(tmp_path: Path, dumps: dict[str, bytes]):
    data, cut = dumps["20231101"], 300
    dest = tmp_path / "out" / "enwiki-20231101-pages-articles.xml.bz2"
    with wiki_mirror(tmp_path / "mirror", data, cut_after=cut) as mirror:
        fetch_wikipedia(mirror.url, "en", "20231101", dest, retries=1, **FAST)
    assert mirror.ranges(".xml.bz2") == [None, f"bytes={cut}-"]
    assert dest.read_bytes() == data
    assert leftovers(dest.parent) == [dest.name]


def test_a_200_answer_to_a_range_request_restarts_from_zero(tmp_path: Path, dumps: dict[str, bytes]):
    data = dumps["20231101"]
    dest = tmp_path / "out" / "enwiki-20231101-pages-articles.xml.bz2"
    part = dest.with_name(dest.name + ".part")
    part.parent.mkdir(parents=True)
    # Not a prefix of the dump: appending the full answer to it would fail the checksum.
    part.write_bytes(b"x" * 500)
    with wiki_mirror(tmp_path / "mirror", data, honour_range=False) as mirror:
        fetch_wikipedia(mirror.url, "en", "20231101", dest, **FAST)
    assert mirror.ranges(".xml.bz2") == ["bytes=500-"]
    assert [r.status for r in mirror.gets(".xml.bz2")] == [200]
    assert dest.read_bytes() == data
    assert not part.exists()


def test_a_part_longer_than_the_file_restarts_from_zero(tmp_path: Path, dumps: dict[str, bytes]):
    data = dumps["20231101"]
    dest = tmp_path / "out" / "enwiki-20231101-pages-articles.xml.bz2"
    part = dest.with_name(dest.name + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data + b"trailing junk")
    with wiki_mirror(tmp_path / "mirror", data) as mirror:
        fetch_wikipedia(mirror.url, "en", "20231101", dest, **FAST)
    assert mirror.ranges(".xml.bz2") == [f"bytes={len(data) + 13}-", None]
    assert dest.read_bytes() == data


@pytest.mark.parametrize("where", ["config", "mirror"])
def test_a_wrong_checksum_is_refused_and_leaves_no_file(tmp_path: Path, dumps: dict[str, bytes], where: str):
    data, wrong = dumps["20231101"], "0123456789abcdef0123456789abcdef01234567"
    out = tmp_path / "out"
    dest, record = out / "enwiki-latest-pages-articles.xml.bz2", out / "enwiki-latest-pages-articles.json"
    with wiki_mirror(tmp_path / "mirror", data, listed_sha1=wrong if where == "mirror" else None) as mirror:
        with pytest.raises(ChecksumError) as err:
            fetch_wikipedia(mirror.url, "en", "latest", dest, sha1=wrong if where == "config" else None,
                            record=record, **FAST)
    message = str(err.value)
    assert f"{mirror.url}/enwiki/20231101/enwiki-20231101-pages-articles.xml.bz2" in message
    assert wrong in message and sha1(data) in message
    assert leftovers(out) == []  # no dump, no partial file, no record


@pytest.mark.parametrize("sha1_given", [True, False])
def test_a_missing_run_names_the_url(tmp_path: Path, dumps: dict[str, bytes], sha1_given: bool):
    dest = tmp_path / "out" / "enwiki-20230101-pages-articles.xml.bz2"
    with wiki_mirror(tmp_path / "mirror", dumps["20231101"]) as mirror:
        with pytest.raises(DownloadError) as err:
            fetch_wikipedia(mirror.url, "en", "20230101", dest, sha1="a" * 40 if sha1_given else None, **FAST)
    # With a configured sha1 there is nothing to look up: the dump itself is missing.
    missing = "enwiki-20230101-pages-articles.xml.bz2" if sha1_given else "enwiki-20230101-sha1sums.txt"
    assert f"{mirror.url}/enwiki/20230101/{missing}" in str(err.value)
    assert "404" in str(err.value)
    assert leftovers(dest.parent) == []


@pytest.mark.slow
def test_the_rule_writes_the_dump_and_its_record(tmp_path: Path, dumps: dict[str, bytes]):
    data = dumps["20231101"]
    work = tmp_path / "work"
    with wiki_mirror(tmp_path / "mirror", data) as mirror:
        config = base_config(corpus={"wikipedia": {"source": "download", "mirror": mirror.url, "dump_date": "latest"}})
        run_snakemake(work, config, "resources/wikipedia/enwiki-latest-pages-articles.json", timeout=120)
    assert (work / "resources/wikipedia/enwiki-latest-pages-articles.xml.bz2").read_bytes() == data
    info = json.loads((work / "resources/wikipedia/enwiki-latest-pages-articles.json").read_text())
    assert info["dump_date"] == "20231101" and info["sha1"] == sha1(data)


def test_meta_json_carries_the_source_record(tmp_path: Path):
    data_dir = make_packed_data(tmp_path / "data", docs=12)
    record = {"url": "http://mirror/enwiki/20231101/enwiki-20231101-pages-articles.xml.bz2",
              "dump_date": "20231101", "sha1": "a" * 40, "bytes": 3}
    meta = write_meta(data_dir / "meta.json", train_shards=[data_dir / "train-000.npy"],
                      validation_shards=[data_dir / "validation-000.npy"], tokenizer_dir=data_dir / "tokenizer",
                      config=PackingConfig(), seed=0, documents={}, language="en", sources={"wikipedia": record})
    assert json.loads((data_dir / "meta.json").read_text())["sources"] == {"wikipedia": record}
    assert meta["sources"]["wikipedia"]["dump_date"] == "20231101"
