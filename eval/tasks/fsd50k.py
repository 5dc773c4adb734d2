"""FSD50K (Fonseca et al. 2022): 200 AudioSet classes, multi-label (mAP), official train/val/eval.

Official layout::

    ROOT/FSD50K.ground_truth/dev.csv         fname,labels,mids,split   (split: train | val)
    ROOT/FSD50K.ground_truth/eval.csv        fname,labels,mids
    ROOT/FSD50K.ground_truth/vocabulary.csv  index,label,mid (no header)
    ROOT/FSD50K.dev_audio/<fname>.wav   ROOT/FSD50K.eval_audio/<fname>.wav

Protocol ``fsd50k-official``: train on ``train``, early-stop on ``val``, test on ``eval``.  Parsed by
``ingest.sources.fsd50k.read_ground_truth`` (the parser ingest uses): labels are AudioSet MIDs, as in
the shards, with vocabulary.csv's names for display (``TaskData.display_names``).
"""
from __future__ import annotations

import os

from ingest.sources.fsd50k import display_names, read_ground_truth

from .base import Clip, LayoutError, TaskData, TaskSpec, Window, clip_key, require
from .registry import TASKS

_SPLIT = {"train": "train", "val": "valid", "eval": "test"}
_AUDIO = {"train": "FSD50K.dev_audio", "val": "FSD50K.dev_audio", "eval": "FSD50K.eval_audio"}


def load(root: str, task: str = "fsd50k") -> TaskData:
    gt = "FSD50K.ground_truth"
    for name in ("vocabulary.csv", "dev.csv", "eval.csv"):
        require(root, f"{gt}/{name}", task)
    vocab, rows = read_ground_truth(root)
    clips = []
    for r in rows:
        if not os.path.isfile(r.audio):
            raise LayoutError(f"{task}: audio file {r.audio} listed in the ground truth is missing")
        clips.append(Clip(clip_key(f"{_AUDIO[r.split]}/{r.fname}"), r.audio, tuple(sorted(set(r.mids))), _SPLIT[r.split]))
    td = TaskData(task, "fsd50k-official", clips, sorted(vocab), True, root)
    td.display_names = display_names(vocab)
    return td.check()


@TASKS.register("fsd50k")
class Fsd50kTask(TaskSpec):
    family = "fsd50k"
    domain = "environment"
    protocol = "fsd50k-official"
    description = "FSD50K (200 classes, multi-label, mAP); official train/val/eval"
    layout = "ROOT/FSD50K.ground_truth/{dev,eval,vocabulary}.csv, ROOT/FSD50K.{dev,eval}_audio/*.wav"
    markers = ("FSD50K.ground_truth/dev.csv",)
    default_dirs = ("FSD50K", "fsd50k")
    multilabel = True
    window = Window("sliding", 96, "mean")
    max_seconds = 30.0
    reference = "Ghosh et al. 2022 Sec. IV-A2 (pretraining data); Fonseca et al. 2022"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root)
