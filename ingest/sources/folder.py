"""Any folder of audio: recursive scan, labels from sub-folder names or a CSV of ``path,label``."""
from __future__ import annotations

import argparse
import csv
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shards.bounded import MAX_TABLE_BYTES, bounded_lines, open_bounded
from shards.format import KEY_HASH_LEN, MAX_KEY_LEN, key_digest, slug
from shards.redact import redact

from ..decode import AUDIO_EXTENSIONS, decode_audio, decode_many
from ..engine import Item, SkipItem
from . import SOURCES, SourceSpec

# load_many leaves files larger than this to ``load`` (one at a time): sharing a process gains little
# for them, and a decoded group is held in memory (and in /dev/shm) at once.
BATCH_MAX_FILE_BYTES = 4 << 20
MAX_LISTED = 1000  # unmatched labels-CSV rows listed in the summary and manifests (all are counted)
log = logging.getLogger("melstream.ingest.folder")


def path_key(rel: str) -> str:
    """Stable, unique, WebDataset-safe key for a relative path (any length, any characters): the end of
    its slug + ``_`` + 8 hex of its sha1, at most ``MAX_KEY_LEN`` characters so that the members' names fit
    the tar format (docs/shard-format.md, "Sample keys").  Keys that always fitted are unchanged."""
    stem = os.path.splitext(rel)[0]
    s = slug(stem)
    key = f"{s[-80:] or 'clip'}_{key_digest(rel)}"
    if len(key) <= MAX_KEY_LEN:
        return key
    return f"{s[-(MAX_KEY_LEN - KEY_HASH_LEN - 1):].strip('-') or 'clip'}_{key_digest(rel)}"


def read_label_csv(path: str, root: str, lines: dict[str, int] | None = None) -> dict[str, list[str]]:
    """``path,label`` rows (header optional; a path may repeat for several labels; ``;`` also splits).
    Read with a size bound (``MAX_TABLE_BYTES``, lines of at most ``MAX_LINE_BYTES``); ``lines`` collects
    the first line number of each path (to name unmatched rows)."""
    out: dict[str, list[str]] = {}
    n = 0
    try:
        with open_bounded(path, MAX_TABLE_BYTES, "labels CSV", newline="", encoding="utf-8") as f:
            for n, row in enumerate(csv.reader(bounded_lines(f, "labels CSV", name=path)), 1):
                if not row or row[0].startswith("#"):
                    continue
                if n == 1 and [c.strip().lower() for c in row[:2]] == ["path", "label"]:
                    continue
                if len(row) < 2:
                    raise ValueError(f"{path}:{n}: expected 'path,label', got {row!r}"[:300])
                rel = os.path.normpath(row[0].strip())
                if os.path.isabs(rel):
                    rel = os.path.relpath(rel, root)
                if rel.startswith(".."):
                    raise ValueError(f"{path}:{n}: path {row[0]!r} is outside {root}")
                labs = [lab.strip() for lab in row[1].split(";") if lab.strip()]
                out.setdefault(rel, [])
                out[rel].extend(lab for lab in labs if lab not in out[rel])
                if lines is not None:
                    lines.setdefault(rel, n)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: labels CSV is not UTF-8 text ({e.reason} near row {n + 1})") from None
    except csv.Error as e:
        raise ValueError(f"{path}:{n + 1}: labels CSV: {e}") from None
    return out


def why_unmatched(root: str, rel: str, extensions: frozenset) -> str:
    """Why a labels-CSV row names no scanned file: the reason recorded for it."""
    full = os.path.join(root, rel)
    if not os.path.lexists(full):
        return "no such file"
    if os.path.isdir(full):
        return "is a folder"
    ext = os.path.splitext(rel)[1].lower()
    if ext not in extensions:
        return f"not an audio file extension ({ext or 'none'})"
    return "not scanned (a hidden file or folder, or outside the split folders)"


def _unreadable(e: OSError) -> SkipItem:
    """A file that cannot be opened is a failure of its own (``unreadable``), never the end of the run."""
    return SkipItem("unreadable", e.strerror or str(e))


@dataclass
class FolderSource:
    """``root`` scanned recursively for files with audio extensions ffmpeg reads."""

    root: str
    dataset: str = "folder"
    split: str = "train"
    split_from_dir: bool = False
    labels: str = "none"  # none | dirname | CSV path
    extensions: frozenset = field(default_factory=lambda: AUDIO_EXTENSIONS)
    # labels-CSV rows that name no scanned file: {"line", "path", "reason"} (set by items())
    unmatched_labels: list[dict[str, Any]] = field(default_factory=list, repr=False)
    label_rows: int = 0

    def items(self) -> list[Item]:
        root = os.path.abspath(self.root)
        if not os.path.exists(root):
            raise FileNotFoundError(f"source folder {self.root!r} does not exist")
        if not os.path.isdir(root):
            raise ValueError(f"{self.root}: is not a folder (give the folder that holds the audio files)")
        csv_labels = None
        csv_lines: dict[str, int] = {}
        if self.labels not in ("none", "dirname"):
            csv_labels = read_label_csv(self.labels, root, csv_lines)
        scanned: set[str] = set()
        items = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if fn.startswith(".") or os.path.splitext(fn)[1].lower() not in self.extensions:
                    continue
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, root)
                scanned.add(rel)
                parts = rel.split(os.sep)
                split = self.split
                if self.split_from_dir:
                    if len(parts) < 2:
                        continue
                    split, parts = parts[0], parts[1:]
                if self.labels == "dirname":
                    labs = [parts[-2]] if len(parts) >= 2 else []
                elif csv_labels is not None:
                    labs = csv_labels.get(rel, [])
                else:
                    labs = []
                items.append(Item(key=path_key(rel), source_id=rel, origin=full, split=split, labels=labs))
        if csv_labels is not None:
            self._note_unmatched(root, csv_labels, csv_lines, scanned)
        return items

    def _note_unmatched(self, root: str, csv_labels: dict[str, list[str]], lines: dict[str, int],
                        scanned: set[str]) -> None:
        """Count and log the labels-CSV rows that name no scanned file, each with its reason."""
        self.label_rows = len(csv_labels)
        self.unmatched_labels = [{"line": lines.get(rel), "path": rel, "reason": why_unmatched(root, rel, self.extensions)}
                                 for rel in sorted(csv_labels, key=lambda r: lines.get(r, 0)) if rel not in scanned]
        if self.unmatched_labels:
            first = self.unmatched_labels[0]
            log.warning("labels CSV %s: %d of %d paths name no audio file that was scanned (line %s: %s: %s%s); "
                        "listed under labels_csv in the summary and each manifest", self.labels,
                        len(self.unmatched_labels), self.label_rows, first["line"], first["path"], first["reason"],
                        ", ..." if len(self.unmatched_labels) > 1 else "")

    def labels_report(self) -> dict[str, Any]:
        """``{"labels_csv": {...}}``: rows read, matched, and the unmatched ones with their reasons (the
        first ``MAX_LISTED``); empty without a labels CSV."""
        if self.labels in ("none", "dirname"):
            return {}
        um = self.unmatched_labels
        return {"labels_csv": {"path": redact(self.labels), "paths": self.label_rows,
                               "matched": self.label_rows - len(um), "unmatched": len(um),
                               "unmatched_rows": um[:MAX_LISTED], "listed": min(len(um), MAX_LISTED)}}

    def manifest_extra(self) -> dict[str, Any]:
        return self.labels_report()

    def finalize(self) -> dict[str, Any]:
        return self.labels_report()

    def estimate_seconds(self, item: Item) -> float | None:
        """Duration from the file header (WAV, FLAC, OGG: what soundfile reads); None for other formats
        (the shard plan then counts the file's size)."""
        if os.path.splitext(item.origin)[1].lower() not in (".wav", ".flac", ".ogg"):
            return None
        try:
            import soundfile

            return float(soundfile.info(item.origin).duration)
        except Exception:  # unreadable header: the file's size stands in; decoding reports the error
            return None

    def load(self, item: Item, sample_rate: int) -> np.ndarray:
        try:
            if os.path.getsize(item.origin) == 0:
                raise SkipItem("empty", "zero-length file")
            return decode_audio(item.origin, sample_rate)
        except OSError as e:  # a dangling symlink, a symlink loop, no permission: this file only
            raise _unreadable(e) from None

    def load_many(self, items: list[Item], sample_rate: int) -> list[np.ndarray | Exception | None]:
        """:meth:`load` for a group of items, non-WAV files decoded by one ffmpeg process (``decode_many``).

        Each entry is the audio or the exception ``load`` would raise; None for a file larger
        than ``BATCH_MAX_FILE_BYTES``, which the engine then loads alone with :meth:`load`.
        """
        out: list[np.ndarray | Exception | None] = [None] * len(items)
        todo: list[int] = []
        for i, it in enumerate(items):
            try:
                size = os.path.getsize(it.origin)
            except OSError as e:
                out[i] = _unreadable(e)
                continue
            if size == 0:
                out[i] = SkipItem("empty", "zero-length file")
            elif size <= BATCH_MAX_FILE_BYTES:
                todo.append(i)
        for i, res in zip(todo, decode_many([items[i].origin for i in todo], sample_rate)):
            out[i] = res
        return out


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="folder of audio files (scanned recursively)")
    p.add_argument("--dataset", default="folder", help="dataset name used in shard names")
    p.add_argument("--split", default="train", help="split name for all files (default train)")
    p.add_argument("--split-from-dir", action="store_true", help="first sub-folder level is the split")
    p.add_argument("--labels", default="none", help="none | dirname | path to a CSV of path,label")


def make_source(a: argparse.Namespace) -> FolderSource:
    return FolderSource(a.src, dataset=a.dataset, split=a.split, split_from_dir=a.split_from_dir, labels=a.labels)


@SOURCES.register("folder")
class FolderSpec(SourceSpec):
    help = "any folder of audio files"
    add_args = staticmethod(add_args)

    @staticmethod
    def run(a: argparse.Namespace) -> FolderSource:
        return make_source(a)
