"""The labelled tasks of the third-party audio corpus (``bench/real_corpus.py``, ``make bench-real``;
docs/bench-real.md).

``--data-root``: the corpus folder (``data/real_audio``, holding ``corpus.json`` and ``tasks/<task>.csv``)
or a folder above it.  Each CSV row is ``path,label,split,source``; ``source`` is the voice, language,
GM program or drum kit the clip came from.  Protocol ``real-source-disjoint``: the corpus' train/test
splits, whose sources are disjoint (checked at load: a shared source is a layout error); validation is
carved from train keeping sources whole.

Tasks: ``real_instrument`` (GM instrument family, 10 classes; held-out programs), ``real_pitch`` (pitch
class of GM notes, 12 classes; held-out programs), ``real_drum`` (kick/snare/hihat/tom/cymbal; held-out
kits), ``real_language`` (10 espeak-ng languages; held-out voices), ``real_keyword`` (10 words; held-out
voices), ``real_speaker`` (espeak-ng voice variant, 12 classes; held-out languages).
"""
from __future__ import annotations

import os

from .base import Clip, LayoutError, TaskData, TaskSpec, Window, audio_file, clip_key, read_dict_csv, require
from .registry import TASKS

PROTOCOL = "real-source-disjoint"
HINT = "`make bench-real` or `python bench/real_corpus.py`"


def load_real(root: str, task: str) -> TaskData:
    """``root/tasks/<task>.csv`` as a task; refuses a source in both train and test."""
    path = require(root, os.path.join("tasks", f"{task}.csv"), task, f"build the corpus with {HINT}")
    base = os.path.dirname(path)
    clips = []
    sources: dict[str, set[str]] = {"train": set(), "test": set()}
    for n, r in enumerate(read_dict_csv(path, ["path", "label", "split", "source"], task), 2):
        if r["split"] not in sources:
            raise LayoutError(f"{task}: {path}:{n}: split must be train or test, got {r['split']!r}")
        if not r["label"] or not r["source"]:
            raise LayoutError(f"{task}: {path}:{n}: empty label or source")
        rel = os.path.normpath(r["path"])
        sources[r["split"]].add(r["source"])
        clips.append(Clip(clip_key(rel), audio_file(base, rel, task), (r["label"],), r["split"], group=r["source"]))
    shared = sorted(sources["train"] & sources["test"])
    if shared:
        raise LayoutError(f"{task}: {path}: sources in both train and test: {', '.join(shared[:3])}")
    return TaskData(task, PROTOCOL, clips, sorted({c.labels[0] for c in clips}), False, root).check()


class _Real(TaskSpec):
    family = "real"
    protocol = PROTOCOL
    layout = "ROOT/corpus.json + ROOT/tasks/<task>.csv (path,label,split,source; paths relative to tasks/)"
    markers = ("corpus.json",)
    default_dirs = ("real_audio",)
    window = Window("sliding", 96, "mean")
    reference = "bench/real_corpus.py"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load_real(root, cls.name)


@TASKS.register("real_instrument")
class RealInstrumentTask(_Real):
    domain = "music"
    description = "third-party audio: General-MIDI instrument family (10); test programs held out"


@TASKS.register("real_pitch")
class RealPitchTask(_Real):
    domain = "music"
    description = "third-party audio: pitch class of General-MIDI notes (12); test programs held out"


@TASKS.register("real_drum")
class RealDrumTask(_Real):
    domain = "music"
    description = "third-party audio: drum type of Hydrogen / GM kit hits (5); test kits held out"


@TASKS.register("real_language")
class RealLanguageTask(_Real):
    domain = "speech"
    description = "third-party audio: spoken language of espeak-ng number strings (10); test voices held out"


@TASKS.register("real_keyword")
class RealKeywordTask(_Real):
    domain = "speech"
    description = "third-party audio: one of 10 English words spoken by espeak-ng; test voices held out"


@TASKS.register("real_speaker")
class RealSpeakerTask(_Real):
    domain = "speech"
    description = "third-party audio: espeak-ng voice variant (12); test languages held out"
