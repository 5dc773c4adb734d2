"""FSD50K (Fonseca et al. 2022): 200 AudioSet classes, multi-label (mAP), official train/val/eval.

Official layout::

    ROOT/FSD50K.ground_truth/dev.csv         fname,labels,mids,split   (split: train | val)
    ROOT/FSD50K.ground_truth/eval.csv        fname,labels,mids
    ROOT/FSD50K.ground_truth/vocabulary.csv  index,label,mid (no header)
    ROOT/FSD50K.dev_audio/<fname>.wav   ROOT/FSD50K.eval_audio/<fname>.wav

Protocol ``fsd50k-official``: train on ``train``, early-stop on ``val``, test on ``eval``.
"""
from __future__ import annotations

import os

from .base import Clip, LayoutError, TaskData, Window, clip_key, read_csv_rows, read_dict_csv, require
from .registry import register


def load(root: str, task: str = "fsd50k") -> TaskData:
    gt = "FSD50K.ground_truth"
    vocab = [r[1] for r in read_csv_rows(require(root, f"{gt}/vocabulary.csv", task)) if len(r) >= 3]
    if not vocab:
        raise LayoutError(f"{task}: {gt}/vocabulary.csv lists no classes")
    clips = []
    for csv_name, adir in (("dev.csv", "FSD50K.dev_audio"), ("eval.csv", "FSD50K.eval_audio")):
        cols = ("fname", "labels", "split") if csv_name == "dev.csv" else ("fname", "labels")
        rows = read_dict_csv(require(root, f"{gt}/{csv_name}", task), cols, task)
        base = require(root, adir, task)
        for r in rows:
            split = {"train": "train", "val": "valid"}.get(r.get("split", ""), "") if csv_name == "dev.csv" else "test"
            if not split:
                raise LayoutError(f"{task}: {csv_name}: split must be train or val, got {r.get('split')!r}")
            path = os.path.join(base, r["fname"] + ".wav")
            if not os.path.isfile(path):
                raise LayoutError(f"{task}: audio file {path} listed in {csv_name} is missing")
            labs = tuple(sorted({x.strip() for x in r["labels"].split(",") if x.strip()}))
            clips.append(Clip(clip_key(f"{adir}/{r['fname']}"), path, labs, split))
    return TaskData(task, "fsd50k-official", clips, sorted(vocab), True, root).check()


register(name="fsd50k", family="fsd50k", domain="environment", protocol="fsd50k-official",
         description="FSD50K (200 classes, multi-label, mAP); official train/val/eval",
         layout="ROOT/FSD50K.ground_truth/{dev,eval,vocabulary}.csv, ROOT/FSD50K.{dev,eval}_audio/*.wav",
         load=load, markers=("FSD50K.ground_truth/dev.csv",), default_dirs=("FSD50K", "fsd50k"), multilabel=True,
         window=Window("sliding", 96, "mean"), max_seconds=30.0,
         reference="Ghosh et al. 2022 Sec. IV-A2 (pretraining data); Fonseca et al. 2022")
