"""``make bench-models``: forward and forward+backward examples/s of every encoder on this CPU.

Batch 64 at each encoder's paper input size (mel bins x frames):

* ``mobile`` 64 x 96 (Tagliasacchi et al. 2019, Sec. 4), ``audio_ntt`` 64 x 96 (Niizumi et al. 2021,
  Sec. IV-A), ``efficientnet_b0`` 64 x 96 (Kuroyanagi & Komatsu 2022, Sec. 3.2);
* ``resnet50``, ``nfnet_f0``, ``slowfast_nfnet_f0`` 80 x 300 (Wang et al. 2022, Sec. 3: 80 mels, 3 s crops);
* ``audio_ntt2022`` 64 x 96 (BYOL-A v2); ``vit_tiny`` / ``vit_small`` / ``vit_base`` 80 x 608 (M2D, Sec. 4.1:
  190 patches, all visible, as at evaluation; masked pre-training encodes 30 % of them).  The MAC counter sees
  ``nn.Linear`` / ``nn.Conv2d`` only, so the attention products (2 N^2 D per layer, 4 % of ViT-Base at 190
  tokens) are left out.

Next to the throughput it prints the multiply-adds per example and the achieved GMAC/s (forward:
MACs x examples/s; forward+backward: 3 x MACs x examples/s, the backward pass costing about twice
the forward): a low GMAC/s on a small model means it is overhead-bound (per-op dispatch, memory
traffic of BatchNorm/ReLU/pooling), a high one that it is compute-bound.

Results go to ``bench/results/models.json`` keyed by encoder.  ``--quick`` shrinks batch and time
budget for a smoke run.

``--layouts contiguous,channels_last`` (``make bench-memory-format``) times each encoder in both memory
layouts of ``train --memory-format`` in one run and prints the forward+backward ratio next to them
(results keyed ``encoder@layout``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models  # noqa: E402
from models import memory_format  # noqa: E402
from models.summary import count_macs, count_params  # noqa: E402

PAPER_INPUT = {  # name: (kwargs, n_mels, n_frames)
    "mobile": ({}, 64, 96),
    "audio_ntt": ({"d": 2048}, 64, 96),
    "efficientnet_b0": ({}, 64, 96),
    "resnet50": ({"n_mels": 80}, 80, 300),
    "nfnet_f0": ({"n_mels": 80}, 80, 300),
    "slowfast_nfnet_f0": ({}, 80, 300),
    "audio_ntt2022": ({"d": 2048}, 64, 96),
    "vit_tiny": ({"n_mels": 80, "n_frames": 608}, 80, 608),
    "vit_small": ({"n_mels": 80, "n_frames": 608}, 80, 608),
    "vit_base": ({"n_mels": 80, "n_frames": 608}, 80, 608),
}


def _timed(step, budget_s: float, max_iters: int) -> float:
    """Fastest call's seconds over >= 1 call (stopping once ``budget_s`` has elapsed).

    The minimum, not the mean: on a shared machine other jobs only ever slow a call down.
    """
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_iters and (not times or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_one(name: str, batch: int, budget_s: float, max_iters: int, layout: str = "contiguous") -> dict:
    kwargs, n_mels, n_frames = PAPER_INPUT[name]
    torch.manual_seed(0)
    enc = models.build_encoder(name, **kwargs)
    macs = count_macs(enc, torch.zeros(1, 1, n_mels, n_frames))
    memory_format.apply(enc, layout)
    x = torch.randn(batch, 1, n_mels, n_frames)
    warm = x[: max(2, batch // 8)]

    enc.eval()
    with torch.no_grad():
        enc(warm)
        fwd_s = _timed(lambda: enc(x), budget_s, max_iters)

    enc.train()

    def fwd_bwd(inp: torch.Tensor = x) -> None:
        enc.zero_grad(set_to_none=True)
        enc(inp).pow(2).mean().backward()

    fwd_bwd(warm)
    fwd_bwd_s = _timed(fwd_bwd, budget_s, max_iters)
    fwd_eps, fb_eps = batch / fwd_s, batch / fwd_bwd_s
    return {
        "params": count_params(enc), "macs": macs, "layout": layout, "input": [batch, 1, n_mels, n_frames], "kwargs": enc.config(),
        "fwd_examples_per_s": round(fwd_eps, 2), "fwd_bwd_examples_per_s": round(fb_eps, 2),
        "fwd_gmacs_per_s": round(macs * fwd_eps / 1e9, 2), "fwd_bwd_gmacs_per_s": round(3 * macs * fb_eps / 1e9, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--budget", type=float, default=5.0, help="seconds of timed iterations per measurement")
    p.add_argument("--max-iters", type=int, default=20)
    p.add_argument("--encoders", nargs="+", default=list(PAPER_INPUT))
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "models.json"))
    p.add_argument("--quick", action="store_true", help="batch 8, 0.5 s budget (smoke run)")
    p.add_argument("--layouts", default="contiguous",
                   help="comma-separated memory layouts to time (contiguous, channels_last); several: a ratio column")
    a = p.parse_args(argv)
    if a.quick:
        a.batch, a.budget = 8, 0.5
    torch.set_num_threads(a.threads)
    layouts = [x.strip() for x in a.layouts.split(",") if x.strip()]
    bad = [x for x in layouts if x not in ("contiguous", "channels_last")]
    if bad or not layouts:
        raise SystemExit(f"error: --layouts: expected contiguous and/or channels_last, got {a.layouts!r}")
    results: dict = {}
    hdr = f"{'encoder':<18} {'layout':<13} {'input':>10} {'params':>12} {'MACs/ex':>9} {'fwd ex/s':>9} " \
          f"{'fwd+bwd ex/s':>12} {'fwd GMAC/s':>10} {'f+b GMAC/s':>10} {'f+b ratio':>9}"
    print(hdr)
    print("-" * len(hdr))
    for name in a.encoders:
        first = None
        for layout in layouts:
            t0 = time.perf_counter()
            r = bench_one(name, a.batch, a.budget, a.max_iters, layout)
            results[name if len(layouts) == 1 else f"{name}@{layout}"] = r
            first = first or r
            ratio = r["fwd_bwd_examples_per_s"] / first["fwd_bwd_examples_per_s"]
            print(f"{name:<18} {layout:<13} {r['input'][2]:>4}x{r['input'][3]:<5} {r['params']:>12,} "
                  f"{r['macs'] / 1e6:>8.1f}M {r['fwd_examples_per_s']:>9.1f} {r['fwd_bwd_examples_per_s']:>12.1f} "
                  f"{r['fwd_gmacs_per_s']:>10.1f} {r['fwd_bwd_gmacs_per_s']:>10.1f} {ratio:>8.2f}x"
                  f"   ({time.perf_counter() - t0:.0f} s)", flush=True)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"threads": a.threads, "torch": torch.__version__, "cpu": platform.processor() or platform.machine()}
    previous = json.loads(out.read_text()) if out.exists() else {}
    previous.update({k: {**v, **meta} for k, v in results.items()})
    out.write_text(json.dumps(previous, indent=2) + "\n")
    print(f"\nwrote {out}")
    return results


if __name__ == "__main__":
    main()
