"""``python -m ingest fsd50k --root DIR [--download] --out OUT``: FSD50K in its official layout.

::

    ROOT/FSD50K.dev_audio/<fname>.wav          ROOT/FSD50K.ground_truth/dev.csv   fname,labels,mids,split
    ROOT/FSD50K.eval_audio/<fname>.wav         ROOT/FSD50K.ground_truth/eval.csv  fname,labels,mids
                                               ROOT/FSD50K.ground_truth/vocabulary.csv  index,label,mid (no header)

Writes the splits ``train`` and ``val`` (from dev.csv's ``split`` column) and ``eval``.  Labels are
stored as AudioSet MIDs (the ``mids`` column), so FSD50K and AudioSet share one vocabulary; the
ground truth is "smeared" (every ancestor of a label is listed too) and kept as published.
Display names come from vocabulary.csv (underscores -> spaces) or, with ``--labels``, from
AudioSet's class_labels_indices.csv.

``--download`` first fetches the Zenodo record (``--zenodo-url``): the split archives
``FSD50K.dev_audio.zip`` + ``.z01``..``.z05`` and ``FSD50K.eval_audio.zip`` + ``.z01``, the ground
truth and the metadata, with HTTP Range resume and md5 verification (sums from the Zenodo record
API, or ``--md5-file``), then extracts them safely with :mod:`ingest.download` (split zips are
read part by part; no zip/7z tool needed).
"""
from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shards.bounded import MAX_TABLE_BYTES, bounded_lines, open_bounded
from shards.cli_types import bounded_float, bounded_int

from ..decode import decode_audio
from ..download import DownloadError, extract, fetch, split_parts
from ..engine import Item, SkipItem
from . import SOURCES, SourceSpec

log = logging.getLogger("melstream.ingest.fsd50k")

DEFAULT_ZENODO_URL = "https://zenodo.org/records/4060432/files/"
# archive stem -> number of .zNN parts in the published record
ARCHIVES = {"FSD50K.dev_audio": 5, "FSD50K.eval_audio": 1, "FSD50K.ground_truth": 0, "FSD50K.metadata": 0}
SPLITS = ("train", "val", "eval")
_MID_RE = re.compile(r"^/[a-z]/[A-Za-z0-9_]+$")


def expected_files() -> list[str]:
    out = []
    for stem, n in ARCHIVES.items():
        out += [f"{stem}.z{i:02d}" for i in range(1, n + 1)] + [f"{stem}.zip"]
    return out


def zenodo_api_url(files_url: str) -> str | None:
    """``https://zenodo.org/records/4060432/files/`` -> ``https://zenodo.org/api/records/4060432``."""
    m = re.match(r"^(https?://[^/]+(?:/.*?)?)/records?/(\d+)/files/?$", files_url.strip())
    return f"{m.group(1)}/api/records/{m.group(2)}" if m else None


def parse_zenodo_files(doc: Any) -> dict[str, dict[str, Any]]:
    """Zenodo record JSON -> {file name: {"md5": hex, "size": int}} (old and new API layouts)."""
    files = doc.get("files") if isinstance(doc, dict) else None
    if isinstance(files, dict):
        files = files.get("entries", files)
        if isinstance(files, dict):
            files = list(files.values())
    out = {}
    for f in files or []:
        if not isinstance(f, dict):
            continue
        name = f.get("key") or f.get("filename")
        ck = str(f.get("checksum") or "")
        if not name or not ck.startswith("md5:"):
            continue
        size = f.get("size", f.get("filesize"))
        out[name] = {"md5": ck[4:].lower(), "size": int(size) if isinstance(size, (int, float)) else None}
    return out


def read_md5_file(path: str) -> dict[str, dict[str, Any]]:
    """``md5sum`` output (``<hex>  <name>``) -> {name: {"md5": hex, "size": None}}."""
    out = {}
    with open_bounded(path, MAX_TABLE_BYTES, "md5 file") as f:
        for n, line in enumerate(bounded_lines(f, "md5 file", name=path), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            m = re.match(r"^([0-9a-fA-F]{32})\s+\*?(.+)$", line)
            if not m:
                raise ValueError(f"{path}:{n}: expected '<md5>  <file name>'")
            out[os.path.basename(m.group(2).strip())] = {"md5": m.group(1).lower(), "size": None}
    return out


def download(root: str, zenodo_url: str = DEFAULT_ZENODO_URL, archives_dir: str | None = None,
             md5_file: str | None = None, skip_md5: bool = False, delete_archives: bool = False,
             retries: int = 5, backoff: float = 2.0, timeout: float = 60.0) -> None:
    """Fetch, verify and extract the FSD50K archives into ``root`` (idempotent, resumable)."""
    import requests

    archives_dir = archives_dir or os.path.join(root, "archives")
    os.makedirs(archives_dir, exist_ok=True)
    base = zenodo_url if zenodo_url.endswith("/") else zenodo_url + "/"
    sess = requests.Session()
    todo = [stem for stem in ARCHIVES if not os.path.exists(os.path.join(root, f".{stem}.extracted"))]
    if not todo:
        return
    sums: dict[str, dict[str, Any]] = {}
    if md5_file:
        sums = read_md5_file(md5_file)
    elif not skip_md5:
        api = zenodo_api_url(base)
        try:
            if not api:
                raise ValueError(f"cannot derive the record API URL from {base}")
            r = sess.get(api, timeout=timeout, headers={"Accept": "application/json"})
            r.raise_for_status()
            sums = parse_zenodo_files(r.json())
        except (requests.RequestException, ValueError) as e:
            raise DownloadError(f"could not read the md5 sums from the Zenodo record API ({e}); "
                                f"pass --md5-file FILE (md5sum format) or --skip-md5") from None
        if not sums:
            raise DownloadError(f"the Zenodo record API {api} lists no md5 sums; pass --md5-file or --skip-md5")
    for stem in todo:
        names = [f"{stem}.z{i:02d}" for i in range(1, ARCHIVES[stem] + 1)] + [f"{stem}.zip"]
        if sums:
            lacking = [n for n in names if n not in sums]
            if lacking:
                raise DownloadError(f"no md5 sum for {', '.join(lacking)} (record lists {sorted(sums)[:8]}...)")
        paths = []
        for name in names:
            s = sums.get(name, {})
            dest = os.path.join(archives_dir, name)
            log.info("fetching %s", name)
            fetch(base + name + "?download=1", dest, md5=s.get("md5"), size=s.get("size"), retries=retries,
                  backoff=backoff, timeout=timeout, session=sess)
            paths.append(dest)
        if split_parts(paths[-1]) != paths:
            raise DownloadError(f"unexpected parts next to {paths[-1]}: {split_parts(paths[-1])}")
        log.info("extracting %s", stem)
        files = extract(paths, root)
        with open(os.path.join(root, f".{stem}.extracted"), "w") as f:
            json.dump({"archives": names, "files": len(files)}, f)
        if delete_archives:
            for p in paths:
                for q in (p, p + ".md5"):
                    if os.path.exists(q):
                        os.unlink(q)


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def read_vocabulary(path: str) -> dict[str, str]:
    """``vocabulary.csv`` (``index,label,mid``, no header) -> {mid: label}."""
    out = {}
    with open_bounded(path, MAX_TABLE_BYTES, "vocabulary CSV", newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(bounded_lines(f, "vocabulary CSV", name=path)), 1):
            if not row:
                continue
            if len(row) != 3 or not _MID_RE.match(row[2].strip()):
                raise ValueError(f"{path}:{n}: expected index,label,mid, got {row!r}")
            out[row[2].strip()] = row[1].strip()
    return out


@dataclass(frozen=True)
class GroundTruthRow:
    """One clip of the ground truth: ``split`` is ``train`` / ``val`` (dev.csv) or ``eval``."""

    fname: str
    split: str
    mids: tuple[str, ...]    # the labels: AudioSet MIDs (``mids`` column)
    labels: tuple[str, ...]  # the ``labels`` column (FSD50K names), for display only
    audio: str               # ROOT/FSD50K.{dev,eval}_audio/<fname>.wav (not checked here)


def ground_truth_path(root: str, name: str) -> str:
    p = os.path.join(root, "FSD50K.ground_truth", name)
    if not os.path.isfile(p):
        raise FileNotFoundError(f"{p} not found: give --root the folder that holds FSD50K.ground_truth/ "
                                f"(or add --download to fetch it)")
    return p


def display_names(vocab: dict[str, str]) -> dict[str, str]:
    """MID -> display name from vocabulary.csv's labels (underscores -> spaces)."""
    return {mid: lab.replace("_", " ") for mid, lab in vocab.items()}


def read_ground_truth(root: str, splits: tuple[str, ...] = SPLITS) -> tuple[dict[str, str], list[GroundTruthRow]]:
    """The one FSD50K parser (ingest and the ``fsd50k`` eval task): ``({mid: label}, rows)`` of the wanted
    splits, every fname and MID checked; a malformed file is a one-line ``ValueError``."""
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise ValueError(f"unknown FSD50K split(s) {bad}; choose from {SPLITS}")
    vocab = read_vocabulary(ground_truth_path(root, "vocabulary.csv"))
    if not vocab:
        raise ValueError(f"{ground_truth_path(root, 'vocabulary.csv')}: lists no classes")
    rows = []
    want = set(splits)
    for csv_name, audio_dir in (("dev.csv", "FSD50K.dev_audio"), ("eval.csv", "FSD50K.eval_audio")):
        if csv_name == "dev.csv" and not want & {"train", "val"} or csv_name == "eval.csv" and "eval" not in want:
            continue
        path = ground_truth_path(root, csv_name)
        with open_bounded(path, MAX_TABLE_BYTES, "ground-truth CSV", newline="", encoding="utf-8") as f:
            rd = csv.DictReader(bounded_lines(f, "ground-truth CSV", name=path))
            need = {"fname", "labels", "mids"} | ({"split"} if csv_name == "dev.csv" else set())
            if not need <= set(rd.fieldnames or []):
                raise ValueError(f"{path}: expected columns {sorted(need)}, got {rd.fieldnames}")
            for n, row in enumerate(rd, 2):
                fname = (row["fname"] or "").strip()
                if not (fname.isascii() and fname.isdigit() and len(fname) <= 20):
                    raise ValueError(f"{path}:{n}: bad fname {fname!r}")
                split = (row.get("split") or "").strip() if csv_name == "dev.csv" else "eval"
                if split not in (("train", "val") if csv_name == "dev.csv" else ("eval",)):
                    raise ValueError(f"{path}:{n}: split must be train or val, got {split!r}")
                if split not in want:
                    continue
                mids = _split_list(row["mids"])
                unknown = [m for m in mids if m not in vocab]
                if unknown:
                    raise ValueError(f"{path}:{n}: mids {unknown} not in vocabulary.csv")
                rows.append(GroundTruthRow(fname, split, tuple(mids), tuple(_split_list(row["labels"])),
                                           os.path.join(root, audio_dir, f"{fname}.wav")))
    return vocab, rows


@dataclass
class FSD50KSource:
    root: str
    splits: tuple[str, ...] = SPLITS
    labels_csv: str | None = None
    dataset: str = "fsd50k"
    display_names: dict[str, str] = field(default_factory=dict)

    def items(self) -> list[Item]:
        vocab, rows = read_ground_truth(self.root, self.splits)
        names = display_names(vocab)
        if self.labels_csv:
            from .audioset import read_class_labels
            names.update({m: n for m, n in read_class_labels(self.labels_csv).items() if m in names})
        self.display_names = names
        return [Item(key=r.fname, source_id=r.fname, origin=r.audio, split=r.split, labels=list(r.mids),
                     extra={"fsd50k_labels": list(r.labels)}) for r in rows]

    def load(self, item: Item, sample_rate: int) -> np.ndarray:
        if not os.path.isfile(item.origin):
            raise SkipItem("missing", f"{item.origin} not found")
        if os.path.getsize(item.origin) == 0:
            raise SkipItem("empty", "zero-length file")
        return decode_audio(item.origin, sample_rate)

    def shard_common(self, split: str) -> dict[str, Any]:
        return {"display_names": dict(self.display_names)}

    def manifest_extra(self) -> dict[str, Any]:
        return {"fsd50k": {"ground_truth": "smeared (ancestor labels included, as published)",
                           "labels": "AudioSet MIDs (mids column)"}}


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", required=True, help="folder with FSD50K.dev_audio/, FSD50K.eval_audio/, FSD50K.ground_truth/")
    p.add_argument("--splits", default=",".join(SPLITS), help="comma-separated subset of train,val,eval")
    p.add_argument("--labels", default=None, metavar="CSV",
                   help="AudioSet class_labels_indices.csv: use its display names for the shared MIDs")
    p.add_argument("--download", action="store_true", help="fetch + verify + extract the Zenodo archives first")
    p.add_argument("--zenodo-url", default=DEFAULT_ZENODO_URL, help=f"record files URL (default {DEFAULT_ZENODO_URL})")
    p.add_argument("--archives-dir", default=None, help="where the archives go (default ROOT/archives)")
    p.add_argument("--md5-file", default=None, help="md5sum-format file of the archives (instead of the record API)")
    p.add_argument("--skip-md5", action="store_true", help="do not verify checksums (not recommended)")
    p.add_argument("--delete-archives", action="store_true", help="delete the archives after extraction")
    p.add_argument("--download-retries", type=bounded_int(0, 100), default=5, help="retries per file without progress (default 5)")
    p.add_argument("--download-backoff", type=bounded_float(0.0, 3600.0), default=2.0, help="first retry delay in seconds")
    p.add_argument("--download-timeout", type=bounded_float(0.1, 3600.0), default=60.0, help="network timeout in seconds")


@SOURCES.register("fsd50k")
class FSD50KSpec(SourceSpec):
    help = "FSD50K (official layout; --download fetches the Zenodo archives)"
    add_args = staticmethod(add_args)

    @staticmethod
    def run(a: argparse.Namespace) -> FSD50KSource:
        if a.download:
            download(a.root, a.zenodo_url, a.archives_dir, a.md5_file, a.skip_md5, a.delete_archives,
                     a.download_retries, a.download_backoff, a.download_timeout)
        return FSD50KSource(a.root, splits=tuple(_split_list(a.splits)), labels_csv=a.labels)
