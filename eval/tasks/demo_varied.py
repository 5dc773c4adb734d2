"""The labeled splits of the varied demo corpus (``python -m ingest demo --variant varied``,
``make shards-varied``; ingest/demo_varied.py).

``--data-root``: the shard folder (``data/demo_varied``, dataset ``demo_varied``) or the audio folder
(``data/demo_varied_audio``), read exactly as the basic demo tasks read theirs (eval/tasks/demo.py);
``data`` finds both.

Tasks: ``demo_varied_family`` (6 families, every clip), ``demo_varied_timbre`` (6 instrument timbres),
``demo_varied_pitch`` (the instrument note, C4..B4: pitch height within one octave, 12 classes).
Protocol ``demo-varied-train-test``: the corpus' train/test splits, whose sources are disjoint (test
speakers, instrument makes, materials, species are never in train); validation carved from train.
"""
from __future__ import annotations

from .base import TaskData, Window
from .demo import load_kind
from .registry import register

KINDS = {"demo_varied_family": "family", "demo_varied_timbre": "timbre", "demo_varied_pitch": "pitch"}
PROTOCOL = "demo-varied-train-test"
_DOC = {"demo_varied_family": "sound family (6 classes)", "demo_varied_timbre": "instrument timbre (6 classes)",
        "demo_varied_pitch": "instrument note C4..B4 (12 classes)"}


def load(root: str, task: str) -> TaskData:
    return load_kind(root, KINDS[task], task, PROTOCOL, dataset="demo_varied", require="source",
                     hint="`make shards-varied` or `python -m ingest demo --variant varied`")


for _t in KINDS:
    register(name=_t, family="demo_varied", domain="environment" if _t == "demo_varied_family" else "music",
             protocol=PROTOCOL, description=f"varied demo corpus: {_DOC[_t]}; its source-disjoint train/test splits",
             layout="demo shards ROOT/{train,test}/manifest.json (dataset demo_varied), or demo audio "
                    "ROOT/labels.csv + ROOT/<split>/<family>/*.wav",
             load=(lambda t: (lambda root: load(root, t)))(_t), default_dirs=("demo_varied", "demo_varied_audio"),
             window=Window("sliding", 96, "mean"), reference="ingest/demo_varied.py")
