"""NSynth (Engel et al. 2017): 4-s musical notes; instrument family (11) and pitch.

Official layout (the three extracted archives ``nsynth-{train,valid,test}.jsonwav.tar.gz``)::

    ROOT/nsynth-train/examples.json    {note_str: {"instrument_family_str": ..., "pitch": ..., ...}}
    ROOT/nsynth-train/audio/<note_str>.wav
    ROOT/nsynth-valid/...   ROOT/nsynth-test/...

Protocols: ``nsynth-instrument`` (11 families) and ``nsynth-pitch`` (MIDI pitch, the values present in
the data; HARES Table 1 counts 128), both on the official train/valid/test splits.  Instrument uses
the whole 4-s note (400 frames, BYOL-A Sec. IV-A1); pitch uses 1-s windows (HARES App. A).
"""
from __future__ import annotations

import json
import os

from .base import Clip, LayoutError, TaskData, TaskSpec, Window, clip_key, require
from .registry import TASKS

SPLITS = (("train", "nsynth-train"), ("valid", "nsynth-valid"), ("test", "nsynth-test"))


def load(root: str, target: str, task: str) -> TaskData:
    clips = []
    for split, d in SPLITS:
        if split == "valid" and not os.path.exists(os.path.join(root, d)):
            continue  # the validation archive is optional: carved from train when absent
        path = require(root, f"{d}/examples.json", task)
        try:
            with open(path, encoding="utf-8") as f:
                meta = json.load(f)
        except json.JSONDecodeError as e:
            raise LayoutError(f"{task}: {path} is not valid JSON ({e})") from None
        adir = require(root, f"{d}/audio", task)
        for note, m in sorted(meta.items()):
            if target == "instrument":
                if "instrument_family_str" not in m:
                    raise LayoutError(f"{task}: {path}: note {note} lacks 'instrument_family_str'")
                lab = m["instrument_family_str"]
            else:
                if "pitch" not in m:
                    raise LayoutError(f"{task}: {path}: note {note} lacks 'pitch'")
                lab = str(int(m["pitch"]))
            wav = os.path.join(adir, note + ".wav")
            if not os.path.isfile(wav):
                raise LayoutError(f"{task}: audio file {wav} listed in {path} is missing")
            clips.append(Clip(clip_key(f"{d}/{note}"), wav, (lab,), split, group=m.get("instrument_str")))
    labs = {c.labels[0] for c in clips}
    classes = sorted(labs, key=int) if target == "pitch" else sorted(labs)
    return TaskData(task, f"nsynth-{target}", clips, classes, False, root).check()


_LAYOUT = "ROOT/nsynth-{train,valid,test}/examples.json + ROOT/nsynth-*/audio/<note_str>.wav"


@TASKS.register("nsynth_instrument")
class NsynthInstrumentTask(TaskSpec):
    family = "nsynth"
    domain = "music"
    protocol = "nsynth-instrument"
    description = "NSynth instrument family (11 classes), official train/valid/test"
    layout = _LAYOUT
    markers = ("nsynth-train/examples.json",)
    default_dirs = ("nsynth",)
    window = Window("crop", 400, "mean")
    reference = "Niizumi et al. 2021 Sec. IV-A; Wang et al. 2022 Table 1"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root, "instrument", "nsynth_instrument")


@TASKS.register("nsynth_pitch")
class NsynthPitchTask(TaskSpec):
    family = "nsynth"
    domain = "music"
    protocol = "nsynth-pitch"
    description = "NSynth pitch (MIDI note number), official train/valid/test"
    layout = _LAYOUT
    markers = ("nsynth-train/examples.json",)
    default_dirs = ("nsynth",)
    window = Window("sliding", 100, "naive_bayes")
    reference = "Wang et al. 2022 Table 1 / App. A; Kuroyanagi & Komatsu 2022 Table 2"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root, "pitch", "nsynth_pitch")
