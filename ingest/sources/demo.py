"""``python -m ingest demo``: write the synthetic corpus as WAV, then ingest it through the folder path."""
from __future__ import annotations

import argparse
import os

from ..demo import SPLITS, write_corpus
from . import register_source
from .folder import FolderSource


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--audio-dir", default="data/demo_audio", help="where the WAV files are written")
    p.add_argument("--seed", type=int, default=0)
    for split, n in SPLITS.items():
        p.add_argument(f"--{split}-clips", type=int, default=n, help=f"clips in split {split} (default {n})")
    p.add_argument("--seconds", type=float, default=10.0, help="clip length (default 10 s)")


class _Spec:
    add_args = staticmethod(add_args)

    @staticmethod
    def run(a: argparse.Namespace) -> FolderSource:
        sizes = {s: getattr(a, f"{s}_clips") for s in SPLITS}
        csv_path = write_corpus(a.audio_dir, seed=a.seed, sizes=sizes, seconds=a.seconds)
        return FolderSource(os.path.abspath(a.audio_dir), dataset="demo", split_from_dir=True, labels=csv_path)


register_source("demo", "the embedded synthetic demo corpus (no network)")(_Spec)
