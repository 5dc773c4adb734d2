"""VoxForge spoken language identification: 6 languages (de, en, es, fr, it, ru).

Layout (the per-language VoxForge archives extracted as published, one folder per language)::

    ROOT/<lang>/<user>-<date>-<id>/wav/*.wav      lang in de en es fr it ru

VoxForge has no official split.  Protocol ``voxforge-user-hash``: every *speaker* (the ``<user>`` part
of the session folder) goes to train/valid/test by a hash of its name (80/10/10), so no speaker is in
two splits.  If ``ROOT/{train,valid,test}_list.txt`` exist (relative paths, one per line) they define
the split instead and the protocol is ``voxforge-lists``.
"""
from __future__ import annotations

import os

from .base import Clip, LayoutError, TaskData, TaskSpec, Window, clip_key, hash_split, scan_audio
from .registry import TASKS

LANGS = ("de", "en", "es", "fr", "it", "ru")


def _user(session: str) -> str:
    parts = session.rsplit("-", 2)
    return parts[0] if len(parts) == 3 else session


def load(root: str, task: str = "voxforge_lid") -> TaskData:
    present = [lang for lang in LANGS if os.path.isdir(os.path.join(root, lang))]
    if not present:
        raise LayoutError(f"{task}: expected one folder per language under {root}: missing {os.path.join(root, 'en')} "
                          f"(and {', '.join(LANGS)})")
    lists = {s: os.path.join(root, f"{s}_list.txt") for s in ("train", "valid", "test")}
    use_lists = all(os.path.isfile(p) for p in lists.values())
    where = {}
    if use_lists:
        for s, p in lists.items():
            with open(p, encoding="utf-8") as f:
                where.update({os.path.normpath(x.strip()): s for x in f if x.strip()})
    clips = []
    for lang in present:
        for rel in scan_audio(os.path.join(root, lang)):
            session = rel.split(os.sep)[0]
            full_rel = os.path.join(lang, rel)
            split = where.get(full_rel) if use_lists else hash_split(_user(session))
            if split is None:
                continue
            clips.append(Clip(clip_key(full_rel), os.path.join(root, full_rel), (lang,), split, group=_user(session)))
    proto = "voxforge-lists" if use_lists else "voxforge-user-hash"
    return TaskData(task, proto, clips, sorted(present), False, root).check()


@TASKS.register("voxforge_lid")
class VoxforgeLidTask(TaskSpec):
    family = "voxforge"
    domain = "speech"
    protocol = "voxforge-user-hash"
    description = "VoxForge language ID (6 languages); speaker-disjoint 80/10/10 hash split (no official split)"
    layout = "ROOT/<lang>/<user>-<date>-<id>/wav/*.wav for lang in de en es fr it ru"
    markers = ()
    default_dirs = ("voxforge", "VoxForge")
    window = Window("sliding", 96, "naive_bayes")
    reference = "Tagliasacchi et al. 2019 Sec. 4 (LID); Ghosh et al. 2022 Sec. IV-A3; Wang et al. 2022 Table 1"

    @classmethod
    def load(cls, root: str) -> TaskData:
        return load(root)
