"""AudioSet (Gemmeke et al. 2017): 527 classes, multi-label (mAP); balanced train + eval segments.

Official metadata plus the audio the user downloaded (clips disappear from YouTube: missing clips are
skipped and counted, HARES App. A notes the same attrition)::

    ROOT/balanced_train_segments.csv   "# ..." header lines, then YTID, start_seconds, end_seconds, "m1,m2"
    ROOT/eval_segments.csv
    ROOT/class_labels_indices.csv      index,mid,display_name
    ROOT/audio/balanced_train/<YTID>*.<ext>   ROOT/audio/eval/<YTID>*.<ext>
    (a file may be named <YTID>.wav, Y<YTID>.wav or <YTID>_<start>..., any audio extension)

Protocol ``audioset-balanced``: train on balanced_train (validation carved from it), test on eval,
scored with the one-hidden-layer MLP of HARES (Wang et al. 2022 Sec. 2.1) as well as the linear probe.
The CSVs are read by ingest's parsers (``ingest.sources.audioset``: YTID, time and MID checks; bad rows
are counted in ``notes``); labels are MIDs with the display names of class_labels_indices.csv.
"""
from __future__ import annotations

import os

from ingest.sources.audioset import parse_segments, read_class_labels

from .base import Clip, LayoutError, TaskData, TaskSpec, Window, clip_key, require, scan_audio
from .registry import TASKS


def _index_audio(adir: str) -> dict[str, str]:
    out = {}
    for rel in scan_audio(adir):
        stem = os.path.basename(os.path.splitext(rel)[0])
        for cand in ((stem[1:12],) if stem.startswith("Y") and len(stem) >= 12 else ()) + (stem[:11],):
            out.setdefault(cand, os.path.join(adir, rel))
    return out


def load(root: str, task: str = "audioset") -> TaskData:
    names = read_class_labels(require(root, "class_labels_indices.csv", task))
    clips, missing, rejected = [], 0, 0
    for split, csv_name, sub in (("train", "balanced_train_segments.csv", "balanced_train"),
                                 ("test", "eval_segments.csv", "eval")):
        parsed = parse_segments(require(root, csv_name, task))
        rejected += sum(parsed.rejected.values())
        files = _index_audio(require(root, f"audio/{sub}", task))
        for seg in parsed.segments:
            path = files.get(seg.ytid)
            if path is None:
                missing += 1
                continue
            clips.append(Clip(clip_key(f"{sub}/{seg.ytid}"), path, tuple(sorted(set(seg.labels))), split))
    if not clips:
        raise LayoutError(f"{task}: none of the listed segments has audio under {root}/audio/{{balanced_train,eval}}")
    td = TaskData(task, "audioset-balanced", clips, list(names), True, root, display_names=names)
    if missing:
        td.notes.append(f"{missing} listed segments have no audio file (skipped)")
    if rejected:
        td.notes.append(f"{rejected} rows of the segment CSVs are not valid segments (skipped)")
    return td.check()


@TASKS.register("audioset")
class AudiosetTask(TaskSpec):
    family = "audioset"
    domain = "environment"
    protocol = "audioset-balanced"
    description = "AudioSet (527 classes, multi-label, mAP); balanced_train / eval; MLP protocol of HARES"
    layout = ("ROOT/{balanced_train,eval}_segments.csv, ROOT/class_labels_indices.csv, "
              "ROOT/audio/{balanced_train,eval}/<YTID>*.<ext>")
    markers = ("eval_segments.csv",)
    default_dirs = ("audioset", "AudioSet")
    multilabel = True
    window = Window("sliding", 96, "mean")
    max_seconds = 10.0
    reference = "Wang et al. 2022 Sec. 2.1, App. A"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root)
