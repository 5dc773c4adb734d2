"""Generic tasks for the user's own data: ``folder`` and ``csv``.

``folder``::

    ROOT/<label>/**/<file>                    no split: protocol ``folder-hash-80-20``
    ROOT/<split>/<label>/**/<file>            split in train, valid (or val, validation), test: ``folder-splits``

``csv`` (``--data-root`` is the CSV file, or a folder holding ``labels.csv``; paths are relative to the
CSV's folder)::

    path,label            one label per row (single-label task)
    path,labels           ``;``-separated labels (multi-label task, scored by mAP)
    ...,split             optional: train / valid / test            -> ``csv-splits``
    ...,fold              optional: integer fold ids, k-fold CV      -> ``csv-kfold``

Whether a task is multi-label is declared by the layout (the ``labels`` column), never guessed from
the data.  Without a split or fold, each file goes to train (80 %) or test (20 %) by a hash of its path
(``*-hash-80-20``); validation is then carved from train.
"""
from __future__ import annotations

import os

from .base import Clip, LayoutError, TaskData, TaskSpec, Window, audio_file, clip_key, hash_split, read_dict_csv, require, scan_audio
from .registry import TASKS

SPLIT_NAMES = {"train": "train", "valid": "valid", "val": "valid", "validation": "valid", "dev": "valid", "test": "test"}


def _hash_8020(rel: str) -> str:
    return "test" if hash_split(rel, (0.8, 0.0)) != "train" else "train"


def load_folder(root: str, task: str = "folder") -> TaskData:
    if not os.path.isdir(root):
        raise LayoutError(f"{task}: {root} is not a folder")
    tops = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    if not tops:
        raise LayoutError(f"{task}: expected {root}/<label>/ or {root}/<split>/<label>/ folders; found none")
    split_dirs = [d for d in tops if d.lower() in SPLIT_NAMES]
    if split_dirs and len(split_dirs) != len(tops):
        raise LayoutError(f"{task}: {root} mixes split folders {split_dirs} with label folders "
                          f"{sorted(set(tops) - set(split_dirs))}")
    clips = []
    if split_dirs:
        if not any(SPLIT_NAMES[d.lower()] == "test" for d in split_dirs):
            require(root, "test", task, "a split layout needs a test folder")
        for d in split_dirs:
            for rel in scan_audio(os.path.join(root, d)):
                parts = rel.split(os.sep)
                if len(parts) < 2:
                    raise LayoutError(f"{task}: {os.path.join(root, d, rel)} is not inside a <label>/ folder")
                clips.append(Clip(clip_key(os.path.join(d, rel)), os.path.join(root, d, rel), (parts[0],),
                                  SPLIT_NAMES[d.lower()]))
        proto = "folder-splits"
    else:
        for rel in scan_audio(root):
            parts = rel.split(os.sep)
            if len(parts) < 2:
                continue
            clips.append(Clip(clip_key(rel), os.path.join(root, rel), (parts[0],), _hash_8020(rel)))
        proto = "folder-hash-80-20"
    if not clips:
        raise LayoutError(f"{task}: no audio files under {root}/<label>/")
    return TaskData(task, proto, clips, sorted({c.labels[0] for c in clips}), False, root).check()


def load_csv(root: str, task: str = "csv") -> TaskData:
    path = root if os.path.isfile(root) else require(root, "labels.csv", task, "or pass the CSV file as --data-root")
    base = os.path.dirname(os.path.abspath(path))
    with open(path, encoding="utf-8") as f:
        header = [h.strip() for h in f.readline().strip().split(",")]
    if "path" not in header or ("label" in header) == ("labels" in header):
        raise LayoutError(f"{task}: {path}: header must have 'path' and exactly one of 'label' or 'labels'; got {header}")
    multilabel = "labels" in header
    rows = read_dict_csv(path, ["path", "labels" if multilabel else "label"], task)
    kfold = "fold" in header
    has_split = "split" in header
    clips = []
    for n, r in enumerate(rows, 2):
        rel = os.path.normpath(r["path"])
        full = audio_file(base, rel, task)
        labs = tuple(sorted({x.strip() for x in r["labels"].split(";") if x.strip()})) if multilabel else (r["label"],)
        if not labs or not labs[0]:
            raise LayoutError(f"{task}: {path}:{n}: empty label")
        if kfold:
            try:
                fold = int(r["fold"])
            except ValueError:
                raise LayoutError(f"{task}: {path}:{n}: fold must be an integer, got {r['fold']!r}") from None
            clips.append(Clip(clip_key(rel), full, labs, fold=fold))
        else:
            if has_split:
                split = SPLIT_NAMES.get(r["split"].lower())
                if split is None:
                    raise LayoutError(f"{task}: {path}:{n}: split must be train/valid/test, got {r['split']!r}")
            else:
                split = _hash_8020(rel)
            clips.append(Clip(clip_key(rel), full, labs, split))
    classes = sorted({lab for c in clips for lab in c.labels})
    folds = sorted({c.fold for c in clips}) if kfold else None
    proto = "csv-kfold" if kfold else "csv-splits" if has_split else "csv-hash-80-20"
    return TaskData(task, proto, clips, classes, multilabel, base, folds=folds).check()


@TASKS.register("folder")
class FolderTask(TaskSpec):
    family = "generic"
    domain = "other"
    protocol = "folder-splits|folder-hash-80-20"
    description = "your own data: ROOT/<label>/... or ROOT/<split>/<label>/..."
    layout = "ROOT/<label>/**/<audio> or ROOT/<train|valid|test>/<label>/**/<audio>"
    window = Window("sliding", 96, "mean")

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load_folder(root)


@TASKS.register("csv")
class CsvTask(TaskSpec):
    family = "generic"
    domain = "other"
    protocol = "csv-splits|csv-kfold|csv-hash-80-20"
    description = "your own data listed in a CSV: path,label|labels[,split|fold]"
    layout = "CSV with header path,label (or labels, ';'-separated = multi-label) [,split|fold]; paths relative to it"
    window = Window("sliding", 96, "mean")

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load_csv(root)
