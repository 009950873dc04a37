"""The README's map of the tree ("## Layout") names every tracked file, and nothing that is not there.

A path is covered by a map entry that is the path itself or a folder above it; a module of the
package (src/kdbudget/PKG/...) must also be named in its folder's description, so a new module
is described where a reader looks for it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "src/kdbudget/"
NAME = re.compile(r"^(\s*)(\S.*?)(?:\s{2,}(.*))?$")


def map_entries(readme: str) -> dict[str, str]:
    """Entry path -> its description (continuation lines included); indented entries are under the
    entry above them that ends in '/'."""
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    entries: dict[str, str] = {}
    parent, last = "", None
    for line in block.strip("\n").splitlines():
        indent, names, text = NAME.match(line).groups()
        if len(indent) > 2 and last is not None:  # a continuation of the description above
            entries[last] += " " + line.strip()
            continue
        if not indent:
            parent = ""
        for name in names.split(", "):
            path = parent + name.strip()
            entries[path] = text or ""
            last = path
        if not indent and names.endswith("/") and "," not in names:
            parent = names
    return entries


def uncovered(entries: dict[str, str], tracked: list[str]) -> list[str]:
    """Tracked paths that no entry covers, or package modules that their folder's entry does not name."""
    out = []
    for path in tracked:
        covering = [e for e in entries if path == e or (e.endswith("/") and path.startswith(e))]
        if not covering:
            out.append(path)
            continue
        entry = max(covering, key=len)
        if entry.startswith(PACKAGE) and entry.endswith("/") and entry != PACKAGE:
            parts = [Path(p).stem for p in path[len(entry):].split("/")]
            words = set(re.findall(r"[\w.]+", entries[entry])) | set(re.findall(r"\w+", entries[entry]))
            if any(part not in words for part in parts if part != "__init__"):
                out.append(path)
    return out


def stale(entries: dict[str, str], tracked: list[str], ignored: list[str]) -> list[str]:
    """Entries that name nothing tracked (ignored output folders may be named)."""
    return [e for e in entries if e not in ignored
            and not any(p == e or (e.endswith("/") and p.startswith(e)) for p in tracked)]


def test_the_checks_see_a_missing_module_and_a_stale_entry():
    readme = ("## Layout\n\n```\nSnakefile     rule all\nsrc/kdbudget/  all logic\n"
              "  data/       clean, shard: the corpus\n  gone.py     removed\nresults/      outputs\n```\n")
    entries = map_entries(readme)
    assert entries == {"Snakefile": "rule all", "src/kdbudget/": "all logic",
                       "src/kdbudget/data/": "clean, shard: the corpus", "src/kdbudget/gone.py": "removed",
                       "results/": "outputs"}
    tracked = ["Snakefile", "src/kdbudget/data/clean.py", "src/kdbudget/data/pack.py", "src/kdbudget/data/__init__.py",
               "Makefile"]
    assert uncovered(entries, tracked) == ["src/kdbudget/data/pack.py", "Makefile"]
    assert stale(entries, tracked, ["results/"]) == ["src/kdbudget/gone.py"]


def test_the_readme_map_matches_the_tracked_tree():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    ignored = [line.strip() for line in (ROOT / ".gitignore").read_text(encoding="utf-8").splitlines()]
    entries = map_entries((ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(entries) > 20
    assert uncovered(entries, tracked) == []
    assert stale(entries, tracked, ignored) == []
