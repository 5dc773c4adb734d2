"""Any folder of audio: recursive scan, labels from sub-folder names or a CSV of ``path,label``."""
from __future__ import annotations

import argparse
import csv
import hashlib
import os
import re
from dataclasses import dataclass, field

import numpy as np

from ..decode import AUDIO_EXTENSIONS, decode_audio, decode_many
from ..engine import Item, SkipItem
from . import SOURCES, SourceSpec

_SAFE = re.compile(r"[^A-Za-z0-9_-]+")
# load_many leaves files larger than this to ``load`` (one at a time): sharing a process gains little
# for them, and a decoded group is held in memory (and in /dev/shm) at once.
BATCH_MAX_FILE_BYTES = 4 << 20


def path_key(rel: str) -> str:
    """Stable, unique, WebDataset-safe key for a relative path: slug + 8 hex of its sha1."""
    stem = os.path.splitext(rel)[0]
    slug = _SAFE.sub("-", stem).strip("-")[-80:] or "clip"
    return f"{slug}_{hashlib.sha1(rel.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"


def read_label_csv(path: str, root: str) -> dict[str, list[str]]:
    """``path,label`` rows (header optional; a path may repeat for several labels; ``;`` also splits)."""
    out: dict[str, list[str]] = {}
    with open(path, newline="", encoding="utf-8") as f:
        for n, row in enumerate(csv.reader(f), 1):
            if not row or row[0].startswith("#"):
                continue
            if n == 1 and [c.strip().lower() for c in row[:2]] == ["path", "label"]:
                continue
            if len(row) < 2:
                raise ValueError(f"{path}:{n}: expected 'path,label', got {row!r}")
            rel = os.path.normpath(row[0].strip())
            if os.path.isabs(rel):
                rel = os.path.relpath(rel, root)
            if rel.startswith(".."):
                raise ValueError(f"{path}:{n}: path {row[0]!r} is outside {root}")
            labs = [lab.strip() for lab in row[1].split(";") if lab.strip()]
            out.setdefault(rel, [])
            out[rel].extend(lab for lab in labs if lab not in out[rel])
    return out


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

    def items(self) -> list[Item]:
        root = os.path.abspath(self.root)
        if not os.path.isdir(root):
            raise FileNotFoundError(f"source folder {self.root!r} does not exist")
        csv_labels = None
        if self.labels not in ("none", "dirname"):
            csv_labels = read_label_csv(self.labels, root)
        items = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fn in sorted(filenames):
                if fn.startswith(".") or os.path.splitext(fn)[1].lower() not in self.extensions:
                    continue
                full = os.path.join(dirpath, fn)
                rel = os.path.relpath(full, root)
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
        return items

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
