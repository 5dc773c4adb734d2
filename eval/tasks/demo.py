"""The labeled splits of the embedded demo corpus (``python -m ingest demo``).

``--data-root`` for demo tasks (checked in this order; ``data`` finds both ``data/demo`` and
``data/demo_audio``):

* the demo **shard** folder (``data/demo``: ``train/`` and ``test/`` with ``manifest.json``): labels and
  splits come from the sample JSON; the shards' log-mels are used directly when the model's frontend
  is the shards' (byol_a), otherwise the WAVs are re-read through the model's frontend -- from each
  sample's ``origin``, or from ``<shard folder>_audio/<source_id>`` when the corpus moved;
* the demo **audio** folder (``data/demo_audio``: ``<split>/<family>/*.wav`` + ``labels.csv``).

Tasks (labels ``family=``, ``pitch=``, ``timbre=``, ``texture=``): ``demo_family`` (4 classes, every
clip), ``demo_pitch`` (pitch class of the instrument clips, 12), ``demo_timbre`` (instrument timbre, 4),
``demo_texture`` (noise texture, 3).  Protocol ``demo-train-test``: the corpus' train/test splits,
validation carved from train; the ``pretrain`` split is never used.
"""
from __future__ import annotations

import json
import os

import shards

from .base import Clip, LayoutError, TaskData, TaskSpec, Window, clip_key, read_csv_rows
from .registry import TASKS

KINDS = {"demo_family": "family", "demo_pitch": "pitch", "demo_timbre": "timbre", "demo_texture": "texture"}
SPLITS = ("train", "test")


def _pick(labels, kind: str):
    for lab in labels:
        if lab.startswith(kind + "="):
            return lab.split("=", 1)[1]
    return None


def _from_shards(root: str, kind: str, task: str, protocol: str, dataset: str) -> TaskData:
    clips, dirs, fe_hash = [], [], None
    for split in SPLITS:
        d = os.path.join(root, split)
        try:
            m = shards.read_manifest(d)
        except shards.ManifestError as e:
            raise LayoutError(f"{task}: {e}") from None
        if m.get("dataset", dataset) != dataset:
            raise LayoutError(f"{task}: {d} holds dataset {m.get('dataset')!r}, expected {dataset!r}")
        fe_hash = fe_hash or m["frontend_hash"]
        dirs.append(d)
        for p in shards.shard_paths(d):
            for key, members in shards.iter_tar_samples(p):
                meta = json.loads(members["json"])
                lab = _pick(meta.get("labels", []), kind)
                if lab is None:
                    continue
                path = meta.get("origin", "")
                if not os.path.isfile(path):
                    alt = os.path.join(root.rstrip("/\\") + "_audio", meta.get("source_id", ""))
                    path = alt if os.path.isfile(alt) else path
                clips.append(Clip(key, path, (lab,), split))
    td = TaskData(task, protocol, clips, sorted({c.labels[0] for c in clips}), False, root,
                  mel_dirs=dirs, mel_frontend_hash=fe_hash)
    return td.check()


def _from_audio(root: str, kind: str, task: str, protocol: str, require: str | None) -> TaskData:
    clips = []
    for row in read_csv_rows(os.path.join(root, "labels.csv")):
        if row[0] == "path":
            continue
        rel = os.path.normpath(row[0])
        split = rel.split(os.sep)[0]
        labs = row[1].split(";") if len(row) > 1 else []
        lab = _pick(labs, kind)
        if split not in SPLITS or lab is None:
            continue
        if require and _pick(labs, require) is None:
            raise LayoutError(f"{task}: {rel} in {root}/labels.csv has no {require}= label: not the corpus this task reads")
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            raise LayoutError(f"{task}: audio file {path} listed in labels.csv is missing")
        clips.append(Clip(clip_key(rel), path, (lab,), split))
    return TaskData(task, protocol, clips, sorted({c.labels[0] for c in clips}), False, root).check()


def load_kind(root: str, kind: str, task: str, protocol: str = "demo-train-test", dataset: str = "demo",
              require: str | None = None, hint: str = "`make shards` or `python -m ingest demo`") -> TaskData:
    """Label ``kind`` of a demo corpus' train/test splits, from its shard folder or its audio folder.
    Shards must hold ``dataset``; audio rows with a ``kind`` label must also carry a ``require`` label."""
    if os.path.isfile(os.path.join(root, "train", "manifest.json")):
        return _from_shards(root, kind, task, protocol, dataset)
    if os.path.isfile(os.path.join(root, "labels.csv")):
        return _from_audio(root, kind, task, protocol, require)
    raise LayoutError(f"{task}: expected demo shards ({os.path.join(root, 'train', 'manifest.json')}) or demo audio "
                      f"({os.path.join(root, 'labels.csv')}) -- missing both; run {hint}")


def load(root: str, task: str) -> TaskData:
    return load_kind(root, KINDS[task], task)


class _Demo(TaskSpec):
    family = "demo"
    domain = "environment"
    protocol = "demo-train-test"
    layout = "demo shards ROOT/{train,test}/manifest.json, or demo audio ROOT/labels.csv + ROOT/<split>/<family>/*.wav"
    default_dirs = ("demo", "demo_audio")
    window = Window("sliding", 96, "mean")
    reference = "ingest/demo.py"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root, cls.name)


@TASKS.register("demo_family")
class DemoFamilyTask(_Demo):
    description = "demo corpus: sound family (4 classes); its train/test splits"


@TASKS.register("demo_pitch")
class DemoPitchTask(_Demo):
    domain = "music"
    description = "demo corpus: pitch class of instrument clips (12 classes); its train/test splits"


@TASKS.register("demo_timbre")
class DemoTimbreTask(_Demo):
    domain = "music"
    description = "demo corpus: instrument timbre (4 classes); its train/test splits"


@TASKS.register("demo_texture")
class DemoTextureTask(_Demo):
    description = "demo corpus: noise texture (3 classes); its train/test splits"
