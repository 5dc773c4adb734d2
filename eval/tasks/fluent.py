"""Fluent Speech Commands (Lugosch et al. 2019): intent = (action, object, location), 31 intents.

Official layout (``fluent_speech_commands_dataset``)::

    ROOT/data/train_data.csv   ,path,speakerId,transcription,action,object,location
    ROOT/data/valid_data.csv   ROOT/data/test_data.csv
    ROOT/wavs/speakers/<speakerId>/<id>.wav      (``path`` is relative to ROOT)

Protocol ``fsc-intent``: the official splits; the label is the slot triple and a prediction counts only
when all three slots are right (HARES App. A).  Per-slot accuracies are reported alongside.
"""
from __future__ import annotations

from .base import Clip, TaskData, TaskSpec, Window, audio_file, clip_key, read_dict_csv, require
from .registry import TASKS

SLOTS = ["action", "object", "location"]


def load(root: str, task: str = "fluent_intent") -> TaskData:
    clips = []
    for split in ("train", "valid", "test"):
        rows = read_dict_csv(require(root, f"data/{split}_data.csv", task), ["path", "speakerId", *SLOTS], task)
        for r in rows:
            path = audio_file(root, r["path"], task)
            lab = "|".join(f"{s}={r[s]}" for s in SLOTS)
            clips.append(Clip(clip_key(r["path"]), path, (lab,), split, group=r["speakerId"]))
    return TaskData(task, "fsc-intent", clips, sorted({c.labels[0] for c in clips}), False, root, slots=SLOTS).check()


@TASKS.register("fluent_intent")
class FluentIntentTask(TaskSpec):
    family = "fluent"
    domain = "speech"
    protocol = "fsc-intent"
    description = "Fluent Speech Commands intent (all three slots right), official splits"
    layout = "ROOT/data/{train,valid,test}_data.csv, ROOT/wavs/speakers/<spk>/*.wav"
    markers = ("data/train_data.csv",)
    default_dirs = ("fluent_speech_commands_dataset", "fluent")
    window = Window("sliding", 96, "mean")
    reference = "Wang et al. 2022 Table 1 / App. A"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root)
