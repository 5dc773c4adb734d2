"""Speech Commands v1 (v0.01) and v2 (v0.02), Warden 2018: keyword spotting.

Official layout (the extracted ``speech_commands_v0.0X.tar.gz``)::

    ROOT/<word>/<speaker>_nohash_<n>.wav      30 words (v1) or 35 words (v2)
    ROOT/_background_noise_/*.wav             long noise recordings
    ROOT/validation_list.txt                  relative paths of the validation clips
    ROOT/testing_list.txt                     relative paths of the test clips

Every clip not in either list is training data.  Protocols (named so results say which one):

* ``sc-v1-12`` / ``sc-v2-12``: the 12-class setting (DeLoRes Sec. IV-A3 "12 label setting"; HARES
  Table 1 "Speech Comm. v1, 12"): ``yes no up down left right on off stop go`` + ``_unknown_`` (every
  other word) + ``_silence_``, cut from ``_background_noise_`` in 1-s windows at 0.5-s hop.  The
  noise recordings are divided in time (first 80 % train, next 10 % valid, last 10 % test) so no
  window overlaps a window of another split.
* ``sc-v2-35``: all 35 words of v2 (Tagliasacchi et al. 2019 Sec. 4 "35 distinct keywords";
  HARES Table 1), no silence/unknown classes.

Splits from ``validation_list.txt`` / ``testing_list.txt`` in every protocol.
"""
from __future__ import annotations

import os
import wave
from typing import ClassVar

from .base import Clip, LayoutError, TaskData, TaskSpec, Window, clip_key, require
from .registry import TASKS

TEN = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
V2_ONLY = ("backward", "forward", "follow", "learn", "visual")
SILENCE, UNKNOWN = "_silence_", "_unknown_"
NOISE_DIR = "_background_noise_"


def _read_list(path: str) -> set[str]:
    with open(path, encoding="utf-8") as f:
        return {os.path.normpath(line.strip()) for line in f if line.strip()}


def _wav_seconds(path: str) -> float:
    try:
        with wave.open(path, "rb") as w:
            return w.getnframes() / float(w.getframerate())
    except (wave.Error, EOFError) as e:
        raise LayoutError(f"unreadable WAV header in {path}: {e}") from None


def _silence_clips(root: str, task: str) -> list[Clip]:
    ndir = require(root, NOISE_DIR, task, "the _silence_ class is cut from it")
    clips = []
    for fn in sorted(os.listdir(ndir)):
        if not fn.lower().endswith(".wav"):
            continue
        path = os.path.join(ndir, fn)
        dur = _wav_seconds(path)
        bounds = (("train", 0.0, 0.8 * dur), ("valid", 0.8 * dur, 0.9 * dur), ("test", 0.9 * dur, dur))
        for split, a, b in bounds:
            s = a
            while s + 1.0 <= b + 1e-9:
                rel = f"{NOISE_DIR}/{fn}@{s:.1f}"
                clips.append(Clip(clip_key(rel), path, (SILENCE,), split, start=round(s, 3), duration=1.0, group=fn))
                s += 0.5
    if not clips:
        raise LayoutError(f"{task}: no WAV of at least 1 s in {ndir}")
    return clips


def load_speech_commands(root: str, version: int, n_classes: int, task: str) -> TaskData:
    val = _read_list(require(root, "validation_list.txt", task))
    test = _read_list(require(root, "testing_list.txt", task))
    words = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
                   and not d.startswith((".", "_")))
    is_v2 = all(w in words for w in V2_ONLY)
    if version == 2 and not is_v2:
        require(root, V2_ONLY[0], task, "Speech Commands v2 (v0.02) has 35 words; this looks like v1")
    if version == 1 and is_v2:
        raise LayoutError(f"{task}: {root} holds the v2 words {list(V2_ONLY)}; use the speech_commands_v2_* tasks")
    for w in TEN:
        require(root, w, task)
    if n_classes == 35:
        classes = list(words)
        if len(classes) != 35:
            raise LayoutError(f"{task}: expected 35 word folders in {root}, found {len(classes)}")
    else:
        classes = list(TEN) + [UNKNOWN, SILENCE]
    clips = []
    for w in words:
        for fn in sorted(os.listdir(os.path.join(root, w))):
            if not fn.lower().endswith(".wav"):
                continue
            rel = f"{w}/{fn}"
            split = "valid" if rel in val else "test" if rel in test else "train"
            label = w if (n_classes == 35 or w in TEN) else UNKNOWN
            clips.append(Clip(clip_key(rel), os.path.join(root, w, fn), (label,), split, group=fn.split("_nohash_")[0]))
    if n_classes == 12:
        clips += _silence_clips(root, task)
    proto = f"sc-v{version}-{n_classes}"
    return TaskData(task, proto, clips, classes, False, root).check()


_LAYOUT = "ROOT/<word>/*.wav, ROOT/_background_noise_/*.wav, ROOT/validation_list.txt, ROOT/testing_list.txt"
_WIN = Window("crop", 101, "mean")  # the whole 1-s clip (HARES App. A: "entire 1-second audio clips")


def _description(version: int, n_classes: int) -> str:
    what = (" (10 words + _unknown_ + _silence_ from _background_noise_, 1-s windows at 0.5-s hop)"
            if n_classes == 12 else " (all words)")
    return f"Speech Commands v{version}, {n_classes} classes{what}; splits from validation_list.txt/testing_list.txt"


class _SpeechCommands(TaskSpec):
    """The three Speech Commands tasks differ in ``version`` and ``n_classes`` (their registered classes below)."""

    version: ClassVar[int] = 1
    n_classes: ClassVar[int] = 12
    family = "speech_commands"
    domain = "speech"
    layout = _LAYOUT
    markers = ("validation_list.txt", "testing_list.txt")
    window = _WIN
    reference = "Tagliasacchi et al. 2019 Sec. 4; Ghosh et al. 2022 Sec. IV-A3; Wang et al. 2022 Table 1"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load_speech_commands(root, cls.version, cls.n_classes, cls.name)


@TASKS.register("speech_commands_v1_12")
class SpeechCommandsV1_12Task(_SpeechCommands):
    version, n_classes = 1, 12
    protocol = "sc-v1-12"
    description = _description(1, 12)
    default_dirs = ("speech_commands_v0.01", "speech_commands_v1")


@TASKS.register("speech_commands_v2_12")
class SpeechCommandsV2_12Task(_SpeechCommands):
    version, n_classes = 2, 12
    protocol = "sc-v2-12"
    description = _description(2, 12)
    default_dirs = ("speech_commands_v0.02", "speech_commands_v2")


@TASKS.register("speech_commands_v2_35")
class SpeechCommandsV2_35Task(_SpeechCommands):
    version, n_classes = 2, 35
    protocol = "sc-v2-35"
    description = _description(2, 35)
    default_dirs = ("speech_commands_v0.02", "speech_commands_v2")
