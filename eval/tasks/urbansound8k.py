"""UrbanSound8K (Salamon et al. 2014): 8,732 slices of at most 4 s, 10 classes, 10 official folds.

Official layout::

    ROOT/metadata/UrbanSound8K.csv   slice_file_name,fsID,start,end,salience,fold,classID,class
    ROOT/audio/fold<k>/<slice_file_name>

Protocol ``us8k-10fold``: leave-one-fold-out over the 10 official folds (BYOL-A, Niizumi et al. 2021
Sec. IV-A4; DeLoRes Sec. IV-A3), validation on the next fold, mean over folds.
"""
from __future__ import annotations

from .base import Clip, TaskData, TaskSpec, Window, audio_file, clip_key, parse_fold, read_dict_csv, require
from .registry import TASKS

COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")


def load(root: str, task: str = "urbansound8k") -> TaskData:
    rows = read_dict_csv(require(root, "metadata/UrbanSound8K.csv", task), COLUMNS, task)
    clips = []
    for r in rows:
        fold = parse_fold(r["fold"], task, r["slice_file_name"])
        path = audio_file(root, f"audio/fold{fold}/{r['slice_file_name']}", task)
        clips.append(Clip(clip_key(r["slice_file_name"]), path, (r["class"],), fold=fold, group=r["fsID"]))
    folds = sorted({c.fold for c in clips})
    return TaskData(task, "us8k-10fold", clips, sorted({c.labels[0] for c in clips}), False, root, folds=folds).check()


@TASKS.register("urbansound8k")
class Urbansound8kTask(TaskSpec):
    family = "urbansound8k"
    domain = "environment"
    protocol = "us8k-10fold"
    description = "UrbanSound8K, 10 classes, 10-fold CV (official folds; validation = next fold)"
    layout = "ROOT/metadata/UrbanSound8K.csv, ROOT/audio/fold<k>/*.wav"
    markers = ("metadata/UrbanSound8K.csv",)
    default_dirs = ("UrbanSound8K", "urbansound8k")
    window = Window("sliding", 96, "mean")
    reference = "Niizumi et al. 2021 Sec. IV-A4; Ghosh et al. 2022 Sec. IV-A3"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root)
