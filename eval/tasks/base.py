"""What a task loader returns, and the helpers every loader uses to check its on-disk layout.

A loader reads a dataset's *official* layout (the user downloads the data; nothing is fetched at run
time) and returns a :class:`TaskData`: every clip with its labels and its official split or fold.
Missing files raise :class:`LayoutError` naming the file that is missing.
"""
from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterable, Optional

from ingest.decode import AUDIO_EXTENSIONS
from ingest.sources.folder import path_key

SPLITS = ("train", "valid", "test")


class LayoutError(FileNotFoundError):
    """The dataset folder does not have the layout the loader expects; the message names the file."""


@dataclass
class Clip:
    """One evaluation item.  ``split`` is train/valid/test (split tasks) or ``""`` (k-fold tasks)."""

    key: str
    path: str
    labels: tuple[str, ...]
    split: str = ""
    fold: Optional[int] = None
    start: Optional[float] = None      # seconds; with ``duration`` cuts a window out of ``path``
    duration: Optional[float] = None
    group: Optional[str] = None        # speaker / location / recording: validation carving keeps groups whole


@dataclass
class TaskData:
    name: str
    protocol: str
    clips: list[Clip]
    classes: list[str]
    multilabel: bool
    root: str
    folds: Optional[list[int]] = None   # k-fold cross-validation over these fold ids
    slots: Optional[list[str]] = None   # Fluent Speech Commands: label = "slot=value|slot=value|..."
    #: shard dirs that already hold this task's log-mels (the demo), with their frontend hash
    mel_dirs: list[str] = field(default_factory=list)
    mel_frontend_hash: Optional[str] = None
    notes: list[str] = field(default_factory=list)
    #: class -> readable name where the classes are codes (AudioSet / FSD50K MIDs)
    display_names: dict[str, str] = field(default_factory=dict)

    @property
    def kfold(self) -> bool:
        return self.folds is not None

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.clips:
            k = f"fold{c.fold}" if self.kfold else c.split
            out[k] = out.get(k, 0) + 1
        return out

    def check(self) -> "TaskData":
        if not self.clips:
            raise LayoutError(f"{self.name}: no clips found under {self.root}")
        keys = set()
        cls = set(self.classes)
        for c in self.clips:
            if c.key in keys:
                raise ValueError(f"{self.name}: duplicate clip key {c.key!r}")
            keys.add(c.key)
            if not c.labels:
                raise ValueError(f"{self.name}: clip {c.path} has no label")
            if not self.multilabel and len(c.labels) != 1:
                raise ValueError(f"{self.name}: single-label task but {c.path} has labels {c.labels}")
            bad = set(c.labels) - cls
            if bad:
                raise ValueError(f"{self.name}: labels {sorted(bad)} of {c.path} are not in the class list")
            if self.kfold:
                if c.fold not in self.folds:
                    raise ValueError(f"{self.name}: clip {c.path} has fold {c.fold}, expected one of {self.folds}")
            elif c.split not in SPLITS:
                raise ValueError(f"{self.name}: clip {c.path} has split {c.split!r}, expected one of {SPLITS}")
        if not self.kfold:
            have = {c.split for c in self.clips}
            for s in ("train", "test"):
                if s not in have:
                    raise LayoutError(f"{self.name}: no {s} clips found under {self.root}")
        # one class makes every score trivially perfect (accuracy 1.00 +- 0): refuse it
        groups = [("all clips", self.clips)] if self.kfold else \
            [(f"the {s} split", [c for c in self.clips if c.split == s]) for s in ("train", "test")]
        for what, clips in groups:
            present = sorted({lab for c in clips for lab in c.labels})
            if len(present) < 2:
                raise LayoutError(f"{self.name}: {what} has only the class(es) {present[:3]} under {self.root}; "
                                  f"a task needs at least 2 classes in train and test")
        return self

    def limited(self, n: Optional[int]) -> "TaskData":
        """At most ``n`` clips per split (or fold), the first by key: quick runs on big datasets."""
        if not n:
            return self
        groups: dict[str, list[Clip]] = {}
        for c in sorted(self.clips, key=lambda c: c.key):
            groups.setdefault(f"{c.split}/{c.fold}", []).append(c)
        clips = [c for g in groups.values() for c in g[:n]]
        return TaskData(**{**self.__dict__, "clips": clips, "protocol": f"{self.protocol}+limit{n}"})


def clip_key(rel: str) -> str:
    """Stable shard-safe key of a relative path: ingest's ``path_key`` (slug + 8 hex of its sha1)."""
    return path_key(rel)


def parse_fold(value: str, task: str, where: str) -> int:
    """An official fold number from a metadata CSV; a :class:`LayoutError` naming the row otherwise."""
    try:
        return int(value)
    except ValueError:
        raise LayoutError(f"{task}: bad fold {value!r} for {where}") from None


def require(root: str, rel: str, task: str, hint: str = "") -> str:
    """``root/rel`` or a :class:`LayoutError` that names it."""
    p = os.path.join(root, rel)
    if not os.path.exists(p):
        extra = f" ({hint})" if hint else ""
        raise LayoutError(f"{task}: expected {p} -- missing file or folder{extra}")
    return p


def audio_file(root: str, rel: str, task: str) -> str:
    p = os.path.join(root, rel)
    if not os.path.isfile(p):
        raise LayoutError(f"{task}: audio file {p} listed in the metadata is missing")
    return p


def read_csv_rows(path: str, delimiter: str = ",", skip_comments: bool = False) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = []
        for row in csv.reader(f, delimiter=delimiter, skipinitialspace=True):
            if not row or (skip_comments and row[0].lstrip().startswith("#")):
                continue
            rows.append(row)
    return rows


def read_dict_csv(path: str, required: Iterable[str], task: str, delimiter: str = ",") -> list[dict[str, str]]:
    """Rows of a CSV with a header; a :class:`LayoutError` names the file and the missing columns."""
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.DictReader(f, delimiter=delimiter)
        cols = [c.strip() for c in (r.fieldnames or [])]
        missing = [c for c in required if c not in cols]
        if missing:
            raise LayoutError(f"{task}: {path} lacks column(s) {missing}; found {cols}")
        return [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in r]


def hash_split(name: str, fractions: tuple[float, float] = (0.8, 0.1)) -> str:
    """Deterministic train/valid/test assignment of a group name by its sha1 (80/10/10 by default)."""
    u = int(hashlib.sha1(name.encode("utf-8", "surrogateescape")).hexdigest()[:8], 16) / 0xFFFFFFFF
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "valid"
    return "test"


def scan_audio(root: str, exts: Optional[frozenset] = None) -> list[str]:
    """Relative paths of the audio files under ``root`` (sorted, hidden entries skipped)."""
    exts = exts or AUDIO_EXTENSIONS
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for fn in sorted(filenames):
            if not fn.startswith(".") and os.path.splitext(fn)[1].lower() in exts:
                out.append(os.path.relpath(os.path.join(dirpath, fn), root))
    return out


@dataclass(frozen=True)
class Window:
    """How clips become encoder inputs.

    ``mode="crop"``: one centre crop (or silence padding) of ``frames``.  ``mode="sliding"``: windows
    of ``frames`` with hop ``frames // 2`` (Tagliasacchi et al. 2019, Sec. 4), at most ``max_windows``
    evenly spaced.  ``aggregate="mean"`` averages window embeddings (scene embedding);
    ``"naive_bayes"`` trains on windows and sums per-window log-probabilities per clip (Sec. 4).
    """

    mode: str = "sliding"
    frames: int = 96
    aggregate: str = "mean"
    max_windows: int = 64

    def slug(self) -> str:
        return f"{self.mode}{self.frames}-{self.aggregate}" + (f"-max{self.max_windows}" if self.mode == "sliding" else "")

    def embed_slug(self) -> str:
        """Embeddings do not depend on the aggregation (both aggregations read the same windows)."""
        return f"{self.mode}{self.frames}" + (f"-max{self.max_windows}" if self.mode == "sliding" else "")


class TaskSpec:
    """Base of a registered task: how to find, load and window it, and what it reports.

    A task is a subclass with these class attributes and a ``load`` classmethod, registered with
    ``@TASKS.register("name")`` (which sets ``name``); ``TASKS.get(name)`` returns the class.
    """

    name: ClassVar[str] = ""
    family: ClassVar[str] = ""
    domain: ClassVar[str] = "other"            # environment | speech | music | other (HARES domains, Wang et al. 2022)
    protocol: ClassVar[str] = ""               # the protocol name results carry
    description: ClassVar[str] = ""
    layout: ClassVar[str] = ""                 # the on-disk layout the loader expects (docs/evaluation.md)
    markers: ClassVar[tuple[str, ...]] = ()    # relative paths that identify the dataset folder
    default_dirs: ClassVar[tuple[str, ...]] = ()  # names the dataset folder usually has under --data-root
    multilabel: ClassVar[bool] = False
    window: ClassVar[Window] = Window()
    max_seconds: ClassVar[Optional[float]] = None  # decode at most this much of each file (long recordings)
    reference: ClassVar[str] = ""
    metric: ClassVar[str] = "accuracy"         # derived from ``multilabel``: "mAP" or "accuracy"

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        cls.metric = "mAP" if cls.multilabel else "accuracy"

    @classmethod
    def load(cls, root: str) -> TaskData:
        """Every clip of the dataset at ``root`` with its labels and official split or fold."""
        raise NotImplementedError(f"task {cls.name or cls.__name__} has no load()")

    @classmethod
    def locate(cls, data_root: str) -> str:
        """The dataset folder: ``data_root`` itself or one of ``default_dirs`` under it."""
        cands = [os.path.join(data_root, d) for d in cls.default_dirs] + [data_root]
        for c in cands:
            if cls.markers and all(os.path.exists(os.path.join(c, m)) for m in cls.markers):
                return c
        for c in cands:
            if os.path.isdir(c) and not cls.markers:
                return c
        for c in cands:  # the first existing candidate; the loader names the missing file
            if os.path.exists(c):
                return c
        raise LayoutError(f"{cls.name}: data root {data_root!r} does not exist"
                          + (f" (looked for {', '.join(cls.default_dirs)} under it)" if cls.default_dirs else ""))
