"""ESC-50 (Piczak 2015): 2,000 five-second clips, 50 classes, 5 official folds.

Official layout (the GitHub release ``ESC-50-master``)::

    ROOT/meta/esc50.csv      filename,fold,target,category,esc10,src_file,take
    ROOT/audio/<filename>    e.g. 1-100032-A-0.wav

Protocol ``esc50-5fold``: 5-fold cross-validation over the ``fold`` column, test on each fold in turn,
validation (early stopping) on the next fold, never the test fold; the mean over folds is reported
(HARES, Wang et al. 2022 App. A, "report the average of all the splits").
"""
from __future__ import annotations

from .base import Clip, TaskData, TaskSpec, Window, audio_file, clip_key, parse_fold, read_dict_csv, require
from .registry import TASKS

COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")


def load(root: str, task: str = "esc50") -> TaskData:
    rows = read_dict_csv(require(root, "meta/esc50.csv", task), COLUMNS, task)
    require(root, "audio", task)
    clips = []
    for r in rows:
        fold = parse_fold(r["fold"], task, f"{r['filename']} in meta/esc50.csv")
        path = audio_file(root, f"audio/{r['filename']}", task)
        clips.append(Clip(clip_key(r["filename"]), path, (r["category"],), fold=fold, group=r["src_file"]))
    folds = sorted({c.fold for c in clips})
    classes = sorted({c.labels[0] for c in clips})
    return TaskData(task, "esc50-5fold", clips, classes, False, root, folds=folds).check()


@TASKS.register("esc50")
class Esc50Task(TaskSpec):
    family = "esc50"
    domain = "environment"
    protocol = "esc50-5fold"
    description = "ESC-50, 50 classes, 5-fold CV (official folds; validation = next fold)"
    layout = "ROOT/meta/esc50.csv (filename,fold,target,category,esc10,src_file,take), ROOT/audio/*.wav"
    markers = ("meta/esc50.csv",)
    default_dirs = ("ESC-50-master", "ESC-50", "esc50")
    window = Window("sliding", 96, "mean")
    reference = "Wang et al. 2022 Table 1 / App. A"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root)
