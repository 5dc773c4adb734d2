"""TUT Urban Acoustic Scenes 2018, development set (DCASE 2018 Task 1A): 10 scenes, 10-s clips.

Official layout (``TUT-urban-acoustic-scenes-2018-development``)::

    ROOT/meta.csv                           filename<TAB>scene_label<TAB>identifier<TAB>source_label
    ROOT/evaluation_setup/fold1_train.txt   audio/<file>.wav<TAB>scene_label
    ROOT/evaluation_setup/fold1_evaluate.txt
    ROOT/audio/<scene>-<city>-<location>-<segment>-a.wav

Protocol ``tut18-fold1``: the official fold-1 train / evaluate split (evaluate = test).  Validation is
carved from the training fold keeping each recording location (``identifier``) whole, so no location
is in both.
"""
from __future__ import annotations

import os

from .base import Clip, LayoutError, TaskData, TaskSpec, Window, audio_file, clip_key, read_csv_rows, require
from .registry import TASKS


def load(root: str, task: str = "tut18_scenes") -> TaskData:
    meta = {}
    for row in read_csv_rows(require(root, "meta.csv", task), delimiter="\t"):
        if row[0] == "filename":
            continue
        if len(row) < 3:
            raise LayoutError(f"{task}: meta.csv row {row!r}: expected filename, scene_label, identifier")
        meta[os.path.normpath(row[0])] = row[2]
    clips = []
    for split, fn in (("train", "fold1_train.txt"), ("test", "fold1_evaluate.txt")):
        lst = require(root, f"evaluation_setup/{fn}", task)
        for row in read_csv_rows(lst, delimiter="\t"):
            if len(row) < 2:
                raise LayoutError(f"{task}: {lst}: row {row!r}: expected 'audio/<file>.wav<TAB>scene_label'")
            rel = os.path.normpath(row[0])
            path = audio_file(root, rel, task)
            clips.append(Clip(clip_key(rel), path, (row[1],), split, group=meta.get(rel, rel)))
    return TaskData(task, "tut18-fold1", clips, sorted({c.labels[0] for c in clips}), False, root).check()


@TASKS.register("tut18_scenes")
class Tut18ScenesTask(TaskSpec):
    family = "tut"
    domain = "environment"
    protocol = "tut18-fold1"
    description = "TUT Urban Acoustic Scenes 2018 dev (10 scenes); official fold1 train/evaluate"
    layout = "ROOT/meta.csv, ROOT/evaluation_setup/fold1_{train,evaluate}.txt, ROOT/audio/*.wav"
    markers = ("evaluation_setup/fold1_train.txt",)
    default_dirs = ("TUT-urban-acoustic-scenes-2018-development", "tut18")
    window = Window("sliding", 96, "naive_bayes")
    reference = "Tagliasacchi et al. 2019 Sec. 4; Ghosh et al. 2022 Sec. IV-A3; Wang et al. 2022 Table 1"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root)
