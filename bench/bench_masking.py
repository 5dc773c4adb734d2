"""Cost of the masked-modeling and BYOL-A v2 sampler stages in the DataLoader worker.

Side by side, in alternating rounds on the same shards: ``crop`` vs ``crop+patch_mask`` (M2D's 608-frame
crop, ratio 0.7) and ``views`` vs ``views_v2`` (random linear fader), examples per second of one worker's
thread CPU time (the least disturbed round counts, as in ``bench_pipeline.py``), and the ratio.

    python bench/bench_masking.py [--data DIR_WITH_pretrain] [--batch 256] [--rounds 8]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

PAIRS = [("crop", "crop+patch_mask", {"n_frames": 608}, {"n_frames": 608, "mask_ratio": 0.7}),
         ("views", "views_v2", {}, {})]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="data/bench_pipeline/shards", help="directory holding pretrain/ shards")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--out", default="bench/results/masking.json")
    a = ap.parse_args(argv)
    from pipeline import build_loader

    shards = os.path.join(a.data, "pretrain")
    res = {}
    for base, new, kb, kn in PAIRS:
        its = {n: iter(build_loader([shards], n, a.batch, mode="train", seed=0, num_workers=0, sampler_kwargs=k)[0])
               for n, k in ((base, kb), (new, kn))}
        for it in its.values():  # warm-up: shuffle buffer, mixup memory
            for _ in range(3):
                next(it)
        best = {base: float("inf"), new: float("inf")}
        for _ in range(a.rounds):
            for n, it in its.items():
                t0 = time.thread_time()
                next(it)
                best[n] = min(best[n], time.thread_time() - t0)
        eps = {n: a.batch / t for n, t in best.items()}
        res[new] = {"examples_per_s": round(eps[new], 1), base: round(eps[base], 1), "ratio": round(eps[new] / eps[base], 3)}
        print(f"{base:>6}: {eps[base]:8.0f} ex/s   {new:>16}: {eps[new]:8.0f} ex/s   ratio {eps[new] / eps[base]:.3f}",
              flush=True)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(res, f, indent=2)
    return res


if __name__ == "__main__":
    main()
