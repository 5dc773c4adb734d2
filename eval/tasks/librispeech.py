"""LibriSpeech train-clean-100 speaker identification (251 speakers), Tagliasacchi et al. 2019 Sec. 4.

Official layout::

    ROOT/train-clean-100/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac
    ROOT/train-clean-100/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt

(ROOT may be the ``LibriSpeech`` folder of the archive.)  There is no official speaker-ID split;
protocol ``ls100-utt-hash``: each utterance goes to train/valid/test by a hash of its id (80/10/10),
so every speaker appears in every split.
"""
from __future__ import annotations

import os

from .base import Clip, LayoutError, TaskData, TaskSpec, Window, clip_key, hash_split, require
from .registry import TASKS


def load(root: str, task: str = "librispeech100_spk") -> TaskData:
    base = require(root, "train-clean-100", task)
    clips = []
    for spk in sorted(os.listdir(base)):
        sdir = os.path.join(base, spk)
        if not os.path.isdir(sdir) or spk.startswith("."):
            continue
        for chap in sorted(os.listdir(sdir)):
            cdir = os.path.join(sdir, chap)
            if not os.path.isdir(cdir):
                continue
            trans = os.path.join(cdir, f"{spk}-{chap}.trans.txt")
            if not os.path.isfile(trans):
                raise LayoutError(f"{task}: expected {trans} -- missing file (is this a LibriSpeech chapter folder?)")
            for fn in sorted(os.listdir(cdir)):
                if fn.endswith(".flac"):
                    utt = fn[:-5]
                    clips.append(Clip(clip_key(f"{spk}/{chap}/{utt}"), os.path.join(cdir, fn), (spk,),
                                      hash_split(utt), group=chap))
    if not clips:
        raise LayoutError(f"{task}: no .flac files under {base}")
    return TaskData(task, "ls100-utt-hash", clips, sorted({c.labels[0] for c in clips}, key=lambda s: (len(s), s)),
                    False, root).check()


@TASKS.register("librispeech100_spk")
class Librispeech100SpkTask(TaskSpec):
    family = "librispeech"
    domain = "speech"
    protocol = "ls100-utt-hash"
    description = "LibriSpeech train-clean-100 speaker ID (251 speakers); utterance-hash 80/10/10 split"
    layout = "ROOT/train-clean-100/<speaker>/<chapter>/*.flac + <speaker>-<chapter>.trans.txt"
    markers = ("train-clean-100",)
    default_dirs = ("LibriSpeech", "librispeech")
    window = Window("sliding", 96, "naive_bayes")
    max_seconds = 20.0
    reference = "Tagliasacchi et al. 2019 Sec. 4; Ghosh et al. 2022 Sec. IV-A3"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root)
