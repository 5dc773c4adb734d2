"""Bird Audio Detection, DCASE 2018 Task 3 (Stowell et al.): does a 10-s clip contain a bird?

Official layout (the three development sets as published)::

    ROOT/ff1010bird_metadata_2018.csv           itemid,datasetid,hasbird
    ROOT/warblrb10k_public_metadata_2018.csv    itemid,datasetid,hasbird
    ROOT/BirdVoxDCASE20k_csvpublic.csv          itemid,datasetid,hasbird
    ROOT/ff1010bird_wav/wav/<itemid>.wav   ROOT/warblrb10k_public_wav/wav/<itemid>.wav
    ROOT/BirdVox-DCASE-20k/wav/<itemid>.wav     (the inner ``wav/`` level is optional)

The challenge's test labels are not public.  Protocol ``bad18-dataset-3fold``: 3-fold cross-validation
where each fold is one development set (train on two recording campaigns, test on the third: the
cross-condition generalisation the challenge asks for), validation on the next fold.
"""
from __future__ import annotations

import os

from .base import Clip, LayoutError, TaskData, TaskSpec, Window, clip_key, read_dict_csv, require
from .registry import TASKS

SETS = (
    ("ff1010bird_metadata_2018.csv", "ff1010bird_wav"),
    ("warblrb10k_public_metadata_2018.csv", "warblrb10k_public_wav"),
    ("BirdVoxDCASE20k_csvpublic.csv", "BirdVox-DCASE-20k"),
)


def load(root: str, task: str = "bird_audio_detection") -> TaskData:
    clips = []
    for fold, (csv_name, adir) in enumerate(SETS, 1):
        rows = read_dict_csv(require(root, csv_name, task), ("itemid", "datasetid", "hasbird"), task)
        base = require(root, adir, task)
        wdir = os.path.join(base, "wav") if os.path.isdir(os.path.join(base, "wav")) else base
        for r in rows:
            path = os.path.join(wdir, r["itemid"] + ".wav")
            if not os.path.isfile(path):
                raise LayoutError(f"{task}: audio file {path} listed in {csv_name} is missing")
            if r["hasbird"] not in ("0", "1"):
                raise LayoutError(f"{task}: {csv_name}: hasbird must be 0 or 1, got {r['hasbird']!r}")
            lab = "bird" if r["hasbird"] == "1" else "no_bird"
            clips.append(Clip(clip_key(f"{adir}/{r['itemid']}"), path, (lab,), fold=fold))
    return TaskData(task, "bad18-dataset-3fold", clips, ["bird", "no_bird"], False, root, folds=[1, 2, 3]).check()


@TASKS.register("bird_audio_detection")
class BirdAudioDetectionTask(TaskSpec):
    family = "bird"
    domain = "environment"
    protocol = "bad18-dataset-3fold"
    description = "DCASE 2018 Bird Audio Detection (2 classes); 3-fold CV, one development set per fold"
    layout = ("ROOT/<set metadata>.csv (itemid,datasetid,hasbird) + ROOT/<set audio>/wav/<itemid>.wav for "
              "ff1010bird, warblrb10k, BirdVox-DCASE-20k")
    markers = ("ff1010bird_metadata_2018.csv",)
    default_dirs = ("bird_audio_detection", "bad2018")
    window = Window("sliding", 96, "naive_bayes")
    reference = "Tagliasacchi et al. 2019 Sec. 4; Ghosh et al. 2022 Sec. IV-A3; Wang et al. 2022 Table 1"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root)
