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

from .base import TaskData, TaskSpec, Window
from .demo import load_kind
from .registry import TASKS

KINDS = {"demo_varied_family": "family", "demo_varied_timbre": "timbre", "demo_varied_pitch": "pitch"}
PROTOCOL = "demo-varied-train-test"


def load(root: str, task: str) -> TaskData:
    return load_kind(root, KINDS[task], task, PROTOCOL, dataset="demo_varied", require="source",
                     hint="`make shards-varied` or `python -m ingest demo --variant varied`")


class _DemoVaried(TaskSpec):
    family = "demo_varied"
    domain = "music"
    protocol = PROTOCOL
    layout = ("demo shards ROOT/{train,test}/manifest.json (dataset demo_varied), or demo audio "
              "ROOT/labels.csv + ROOT/<split>/<family>/*.wav")
    default_dirs = ("demo_varied", "demo_varied_audio")
    window = Window("sliding", 96, "mean")
    reference = "ingest/demo_varied.py"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root, cls.name)


@TASKS.register("demo_varied_family")
class DemoVariedFamilyTask(_DemoVaried):
    domain = "environment"
    description = "varied demo corpus: sound family (6 classes); its source-disjoint train/test splits"


@TASKS.register("demo_varied_timbre")
class DemoVariedTimbreTask(_DemoVaried):
    description = "varied demo corpus: instrument timbre (6 classes); its source-disjoint train/test splits"


@TASKS.register("demo_varied_pitch")
class DemoVariedPitchTask(_DemoVaried):
    description = "varied demo corpus: instrument note C4..B4 (12 classes); its source-disjoint train/test splits"
