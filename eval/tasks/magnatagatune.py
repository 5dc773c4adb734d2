"""MagnaTagATune (Law et al. 2009): 29-s music clips, top-50 tags, multi-label (mAP).

Official layout::

    ROOT/annotations_final.csv   tab-separated: clip_id, 188 tag columns (0/1), mp3_path
    ROOT/mp3/<0-9a-f>/<name>.mp3   (or the 16 folders directly under ROOT)

Protocol ``mtat-top50``: the 50 most frequent tags; the standard split by the first character of the
folder -- ``0``-``b`` train, ``c`` validation, ``d``-``f`` test (Dieleman & Schrauwen 2014, used by
the musicnn line of work that HARES follows); clips without any top-50 tag are dropped.
"""
from __future__ import annotations

import os

from .base import Clip, LayoutError, TaskData, TaskSpec, Window, clip_key, read_csv_rows, require
from .registry import TASKS


def _split(folder: str) -> str:
    c = folder[:1].lower()
    if c in "0123456789ab":
        return "train"
    if c == "c":
        return "valid"
    if c in "def":
        return "test"
    raise ValueError(folder)


def load(root: str, task: str = "mtat_top50", top: int = 50) -> TaskData:
    path = require(root, "annotations_final.csv", task)
    rows = read_csv_rows(path, delimiter="\t")
    if not rows or rows[0][0] != "clip_id" or rows[0][-1] != "mp3_path":
        raise LayoutError(f"{task}: {path}: expected a tab-separated header 'clip_id ... mp3_path'")
    header = [h.strip('"') for h in rows[0]]
    tags = header[1:-1]
    data = [r for r in rows[1:] if len(r) == len(header)]
    counts = [sum(r[1 + i] == "1" for r in data) for i in range(len(tags))]
    order = sorted((i for i in range(len(tags)) if counts[i] > 0), key=lambda i: (-counts[i], tags[i]))[:top]
    classes = sorted(tags[i] for i in order)
    adir = os.path.join(root, "mp3") if os.path.isdir(os.path.join(root, "mp3")) else root
    clips = []
    for r in data:
        labs = tuple(sorted(tags[i] for i in order if r[1 + i] == "1"))
        mp3 = r[-1].strip('"')
        if not labs or not mp3:
            continue
        full = os.path.join(adir, mp3)
        if not os.path.isfile(full):
            raise LayoutError(f"{task}: audio file {full} listed in annotations_final.csv is missing")
        try:
            split = _split(mp3)
        except ValueError:
            raise LayoutError(f"{task}: mp3_path {mp3!r} does not start with a 0-f folder") from None
        clips.append(Clip(clip_key(mp3), full, labs, split))
    return TaskData(task, "mtat-top50", clips, classes, True, root).check()


@TASKS.register("mtat_top50")
class MtatTop50Task(TaskSpec):
    family = "magnatagatune"
    domain = "music"
    protocol = "mtat-top50"
    description = "MagnaTagATune top-50 tags (multi-label, mAP); folders 0-b train, c valid, d-f test"
    layout = "ROOT/annotations_final.csv (tab-separated), ROOT/mp3/<0-f>/*.mp3"
    markers = ("annotations_final.csv",)
    default_dirs = ("magnatagatune", "MagnaTagATune", "mtat")
    multilabel = True
    window = Window("sliding", 96, "mean")
    reference = "Wang et al. 2022 Table 1 / App. A"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root)
