"""Every relative link in README.md and docs/*.md points to an existing file (and heading), and every doc
opens with its 3-line summary.

Docs that other branches are adding while this test lands are listed in ``IN_PROGRESS``: links to them are not
checked yet, nor is their summary.  Empty the set once they are merged.
"""
from __future__ import annotations

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IN_PROGRESS: set[str] = set()

_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCED = re.compile(r"^(```|~~~).*?^\1\s*$", re.M | re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")


def doc_files() -> list[str]:
    return ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))


def read(rel: str) -> str:
    with open(os.path.join(ROOT, rel), encoding="utf-8") as f:
        return f.read()


def links(text: str) -> list[str]:
    """Link targets outside code blocks and code spans."""
    return _LINK.findall(_CODE_SPAN.sub("", _FENCED.sub("", text)))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", lambda m: m.group(1) or "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    for h in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", _FENCED.sub("", text), re.M):
        s = slug(h)
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def broken_links(rel: str) -> list[str]:
    bad = []
    for target in links(read(rel)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):  # http:, https:, mailto:
            continue
        path, _, frag = target.partition("#")
        dest = os.path.normpath(os.path.join(os.path.dirname(rel), path)) if path else rel
        if dest in IN_PROGRESS:
            continue
        if not os.path.exists(os.path.join(ROOT, dest)):
            bad.append(f"{rel}: {target}: no file {dest}")
        elif frag and dest.endswith(".md") and frag not in anchors(read(dest)):
            bad.append(f"{rel}: {target}: no heading #{frag} in {dest}")
    return bad


@pytest.mark.parametrize("rel", doc_files())
def test_relative_links_resolve(rel):
    assert broken_links(rel) == []


@pytest.mark.parametrize("rel", [d for d in doc_files() if d.startswith("docs/") and d not in IN_PROGRESS])
def test_doc_starts_with_a_three_line_summary(rel):
    lines = read(rel).splitlines()
    assert lines and lines[0].startswith("# "), f"{rel}: the first line is the title"
    quote = [ln for ln in lines[2:6] if ln.startswith("> ")]
    assert lines[1] == "" and len(quote) == 3 and lines[2:5] == quote[:3] and not lines[5].startswith(">"), (
        f"{rel}: after the title, a blank line and a 3-line summary ('> ' lines)")


def test_checker_finds_broken_links_and_anchors(tmp_path, monkeypatch):
    assert slug("Measured here (2-core CPU, no GPU)") == "measured-here-2-core-cpu-no-gpu"
    assert slug("`delores_m`: a defect") == "delores_m-a-defect"
    assert links("[a](x.md) `[b](y.md)` ![c](img/p.png)\n```\n[d](z.md)\n```\n") == ["x.md", "img/p.png"]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## Two words\n[ok](b.md) [gone](missing.md) [h](#two-words) [no](#nope)\n"
                                            "[web](https://example.org/x.md)\n")
    (tmp_path / "docs" / "b.md").write_text("# B\n")
    monkeypatch.setitem(globals(), "ROOT", str(tmp_path))
    assert broken_links("docs/a.md") == ["docs/a.md: missing.md: no file docs/missing.md",
                                         "docs/a.md: #nope: no heading #nope in docs/a.md"]


# Result files the docs name before a bench has written them (gpu.json: `make gpu-check` on a CUDA machine).
WRITTEN_ON_DEMAND = {"bench/results/gpu.json"}


def test_cited_result_files_exist_and_current_ones_are_cited():
    text = "\n".join(read(d) for d in doc_files())
    cited = set(re.findall(r"bench/results/[a-z0-9_/.-]+\.json", text)) - WRITTEN_ON_DEMAND
    assert cited, "the docs cite no result file"
    assert sorted(p for p in cited if not os.path.isfile(os.path.join(ROOT, p))) == []
    index = read("docs/benchmarks.md")
    current = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "bench", "results", "*.json")))
    assert [f for f in current if f"`{f}`" not in index] == [], "every current result file has a row in docs/benchmarks.md"
    history = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "bench", "results", "history", "*.json")))
    assert [f for f in history if f"`{f}`" not in index] == [], "every history file is named in docs/benchmarks.md"
