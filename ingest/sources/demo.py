"""``python -m ingest demo [--variant basic|varied]``: write a synthetic corpus as WAV, then ingest it
through the folder path.  ``basic``: ingest/demo.py (4 clean families); ``varied``: ingest/demo_varied.py
(6 families, parametric sources disjoint between train and test, noise/reverb/level nuisances)."""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field

from shards.cli_types import bounded_float, bounded_int

from .. import demo, demo_varied
from . import SOURCES, SourceSpec
from .folder import FolderSource

VARIANTS = {"basic": (demo.SPLITS, "data/demo_audio"), "varied": (demo_varied.SPLITS, "data/demo_varied_audio")}


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variant", choices=sorted(VARIANTS), default="basic",
                   help="basic: 4 clean families (make shards); varied: 6 families with nuisances and "
                        "source-disjoint train/test (make shards-varied; use --out data/demo_varied)")
    p.add_argument("--audio-dir", default=None,
                   help="where the WAV files are written (default data/demo_audio, varied: data/demo_varied_audio)")
    p.add_argument("--seed", type=bounded_int(0, 2**32 - 1), default=0)
    for split in demo.SPLITS:
        p.add_argument(f"--{split}-clips", type=bounded_int(0, 1_000_000), default=None,
                       help=f"clips in split {split} (default basic {demo.SPLITS[split]}, varied {demo_varied.SPLITS[split]})")
    p.add_argument("--seconds", type=bounded_float(0.1, 3600.0), default=10.0, help="clip length (default 10 s)")


@dataclass
class DemoSource(FolderSource):
    """The folder source over a written demo corpus; its manifests record how it was generated."""

    corpus: dict = field(default_factory=dict)

    def manifest_extra(self) -> dict:
        return {"demo_corpus": self.corpus}


@SOURCES.register("demo")
class DemoSpec(SourceSpec):
    help = "the embedded synthetic demo corpus (no network): --variant basic|varied"
    add_args = staticmethod(add_args)

    @staticmethod
    def run(a: argparse.Namespace) -> FolderSource:
        defaults, audio_default = VARIANTS[a.variant]
        sizes = {s: (n if (n := getattr(a, f"{s}_clips")) is not None else defaults[s]) for s in defaults}
        if any(n < 0 for n in sizes.values()) or not a.seconds > 0:
            raise ValueError(f"demo: clip counts must be >= 0 and --seconds > 0 (got {sizes}, {a.seconds})")
        audio_dir = a.audio_dir or audio_default
        write = demo.write_corpus if a.variant == "basic" else demo_varied.write_varied_corpus
        csv_path = write(audio_dir, seed=a.seed, sizes=sizes, seconds=a.seconds)
        corpus = {"variant": a.variant, "seed": a.seed, "sizes": sizes, "seconds": a.seconds}
        if a.variant == "varied":
            corpus.update(sources={s: list(v) for s, v in demo_varied.SOURCES.items()}, snr_db=list(demo_varied.SNR_DB),
                          peak_db=list(demo_varied.PEAK_DB), reverb_p=demo_varied.REVERB_P)
        return DemoSource(os.path.abspath(audio_dir), dataset="demo" if a.variant == "basic" else "demo_varied",
                          split_from_dir=True, labels=csv_path, corpus=corpus)
