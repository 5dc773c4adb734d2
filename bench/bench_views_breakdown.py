"""Where the time of a ``views`` example goes (docs/pipeline.md): loaders for ``crop``, for ``views`` with
blocks switched off and on, two throwaway samplers (a constant; a constant after reading a random 96-frame
crop) and the WAV path of ``bench_pipeline.py``, one batch of each in turn, thread CPU time per example.

    PYTHONPATH=$PWD python bench/bench_views_breakdown.py --data data/bench_pipeline --rounds 20

Uses the demo shards and WAVs that ``bench_pipeline.py`` makes (run it once first).  Prints a table; writes
nothing.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.bench_pipeline import wav_batches  # noqa: E402
from pipeline import SAMPLERS, build_loader  # noqa: E402
from pipeline.samplers.base import Sampler, random_start, take  # noqa: E402

_ZEROS = np.zeros((1, 64, 96), np.float32)


@SAMPLERS.register("_bench_const")
class _Const(Sampler):
    keys = ("x",)

    def __call__(self, mel, meta, rng):
        return {"x": _ZEROS}


@SAMPLERS.register("_bench_decode")
class _Decode(Sampler):
    keys = ("x",)

    def __call__(self, mel, meta, rng):
        take(mel, random_start(int(mel.shape[1]), 96, rng), 96)
        return {"x": _ZEROS}


VARIANTS = [
    ("`const`: tar headers, shuffle buffer, JSON and chunk index, stacking, collation", "_bench_const", {}),
    ("+ decode a random 96-frame crop (zstd chunks, byte-plane interleave, float32 cast, finiteness check)",
     "_bench_decode", {}),
    ("`crop` (+ the crop itself, labels)", "crop", {}),
    ("`views`, no mixup, no RRC, no post-norm (pre-norm, batch plumbing)", "views",
     {"mixup": False, "rrc": False, "post_norm": False}),
    ("+ post-normalisation", "views", {"mixup": False, "rrc": False}),
    ("+ log-mixup-exp (no RRC)", "views", {"rrc": False}),
    ("+ random resize crop (no mixup, with post-norm)", "views", {"mixup": False}),
    ("all blocks (the default)", "views", {}),
]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="data/bench_pipeline", help="what bench_pipeline.py --data made")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--batch", type=int, default=256)
    a = ap.parse_args(argv)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")  # what a DataLoader worker runs with
    torch.set_num_threads(1)
    shard_dir, audio_dir = os.path.join(a.data, "shards", "pretrain"), os.path.join(a.data, "audio", "pretrain")
    if not os.path.exists(os.path.join(shard_dir, "manifest.json")):
        raise SystemExit(f"no shards in {shard_dir}: run bench/bench_pipeline.py --data {a.data} first")
    steps = []
    for _, name, kw in VARIANTS:
        loader, _ = build_loader([shard_dir], name, a.batch, mode="train", seed=0, sampler_kwargs=kw)
        it = iter(loader)
        steps.append(lambda it=it: next(it))
    steps.append(wav_batches(audio_dir, "views", a.batch))
    labels = [v[0] for v in VARIANTS] + ["the WAV path of the same rounds (`views`)"]
    for step in steps:  # 9 x 256 fills the 2048-entry mixup memory: the steady state
        for _ in range(9):
            step()
    t: list[list[float]] = [[] for _ in steps]
    for r in range(a.rounds):
        for i in (range(len(steps)) if r % 2 == 0 else reversed(range(len(steps)))):
            c0 = time.thread_time()
            steps[i]()
            t[i].append((time.thread_time() - c0) / a.batch * 1e6)
    print(f"us per example, median of {a.rounds} rounds (load average {os.getloadavg()[0]:.1f})")
    for label, ts in zip(labels, t):
        print(f"| {label} | {np.median(ts):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
