"""VoxCeleb1 speaker identification (Nagrani et al. 2017): 1,251 speakers, official identification split.

Official layout::

    ROOT/iden_split.txt            "<1|2|3> id10001/1zcIwhmdeo4/00001.wav"  (1 train, 2 valid, 3 test)
    ROOT/wav/<id>/<video>/<n>.wav  (or ROOT/vox1_dev_wav/wav/... and ROOT/vox1_test_wav/wav/...)

Protocol ``vox1-iden``: the identification split of ``iden_split.txt``.
"""
from __future__ import annotations

import os

from .base import Clip, LayoutError, TaskData, TaskSpec, Window, clip_key, require
from .registry import TASKS

WAV_DIRS = ("wav", "vox1_dev_wav/wav", "vox1_test_wav/wav")
SPLIT = {"1": "train", "2": "valid", "3": "test"}


def load(root: str, task: str = "voxceleb1_id") -> TaskData:
    lst = require(root, "iden_split.txt", task)
    dirs = [os.path.join(root, d) for d in WAV_DIRS if os.path.isdir(os.path.join(root, d))]
    if not dirs:
        require(root, "wav", task, "audio folder of VoxCeleb1")
    clips = []
    with open(lst, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            if len(parts) != 2 or parts[0] not in SPLIT:
                raise LayoutError(f"{task}: {lst}:{n}: expected '<1|2|3> id/video/file.wav', got {line.strip()!r}")
            rel = os.path.normpath(parts[1])
            path = next((os.path.join(d, rel) for d in dirs if os.path.isfile(os.path.join(d, rel))), None)
            if path is None:
                raise LayoutError(f"{task}: audio file {os.path.join(dirs[0], rel)} listed in {lst} is missing")
            spk = rel.split(os.sep)[0]
            clips.append(Clip(clip_key(rel), path, (spk,), SPLIT[parts[0]], group=rel.split(os.sep)[1] if os.sep in rel else None))
    return TaskData(task, "vox1-iden", clips, sorted({c.labels[0] for c in clips}), False, root).check()


@TASKS.register("voxceleb1_id")
class Voxceleb1IdTask(TaskSpec):
    family = "voxceleb"
    domain = "speech"
    protocol = "vox1-iden"
    description = "VoxCeleb1 speaker identification (1,251 speakers), official iden_split.txt"
    layout = "ROOT/iden_split.txt, ROOT/wav/<id>/<video>/<n>.wav"
    markers = ("iden_split.txt",)
    default_dirs = ("voxceleb1", "VoxCeleb1", "vox1")
    window = Window("sliding", 96, "mean")
    reference = "Ghosh et al. 2022 Sec. IV-A3; Wang et al. 2022 Table 1"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root)
