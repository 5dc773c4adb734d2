"""MUSAN (Snyder et al. 2015): music / speech / noise, Tagliasacchi et al. 2019 Sec. 4.

Official layout::

    ROOT/music/<subset>/*.wav   ROOT/speech/<subset>/*.wav   ROOT/noise/<subset>/*.wav
    (each subset folder holds an ANNOTATIONS and a LICENSE file)

No official split.  Protocol ``musan-file-hash``: each file goes to train/valid/test by a hash of its
relative path (80/10/10).  Recordings are long (whole songs and talks); the first 10 s of each file
are used.
"""
from __future__ import annotations

import os

from .base import Clip, TaskData, TaskSpec, Window, clip_key, hash_split, require, scan_audio
from .registry import TASKS

CLASSES = ("music", "noise", "speech")


def load(root: str, task: str = "musan") -> TaskData:
    clips = []
    for c in CLASSES:
        cdir = require(root, c, task, "MUSAN has music/, speech/ and noise/ folders")
        for rel in scan_audio(cdir):
            full = os.path.join(c, rel)
            clips.append(Clip(clip_key(full), os.path.join(root, full), (c,), hash_split(full),
                              group=rel.split(os.sep)[0]))
    return TaskData(task, "musan-file-hash", clips, list(CLASSES), False, root).check()


@TASKS.register("musan")
class MusanTask(TaskSpec):
    family = "musan"
    domain = "environment"
    protocol = "musan-file-hash"
    description = "MUSAN music/speech/noise (3 classes); file-hash 80/10/10 split, first 10 s of each file"
    layout = "ROOT/{music,speech,noise}/<subset>/*.wav"
    markers = ("music", "speech", "noise")
    default_dirs = ("musan", "MUSAN")
    window = Window("sliding", 96, "naive_bayes")
    max_seconds = 10.0
    reference = "Tagliasacchi et al. 2019 Sec. 4, Table 2"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root)
