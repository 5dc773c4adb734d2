"""Why ``temporal_gap`` stays at ln 2, measured on one CPU thread (issue 26; docs/method-health.md).

Two modes on in-memory log-mels (no shards; the default frontend preset):

* ``train``: the ``temporal_gap`` objective on ``mobile`` with Adam, as ``python -m train`` builds it
  (sampler ``TemporalGap(96)``, raw log-mels, both slices in one encoder pass).  Prints the loss curve, the
  gradient norm per encoder layer at the first and last step, the held-out cross-entropy split into
  overlapping (``D < N``) and disjoint slice pairs, and how far the encoder's weights moved.
* ``oracle``: how much of the target ``d`` simple input features carry at all: a binned predictor of ``d``
  from (a) the distance between the two slices' mean spectra and (b) the best frame-shifted match of the two
  slices (an exact copy exists only when they overlap), fit on 1,500 pairs, scored on 1,500 others.

Corpora: ``chirp`` (a sine sweeping linearly in mel across the clip: the gap is visible in the pitch),
``demo`` and ``demo_varied`` (the project's synthetic corpora), ``demo_splice`` (each clip the head of one
demo clip and the tail of another of a different family, cut at 30-70 %: one scene change).  Examples::

    python bench/temporal_gap_health.py train --corpus chirp --steps 60 --batch 32
    python bench/temporal_gap_health.py oracle --corpus demo
"""
from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np
import torch
from _common import ROOT, merge_results

from models.objectives import build_objective
from models.registry import build_encoder
from pipeline.samplers.temporal_gap import TemporalGap
from shards.frontend import DEFAULT_PRESET, get_preset, logmel

SR = 16000
REAL = ["real", "real_speech", "real_music", "real_drums", "real_mix"]
LN2 = math.log(2)


def _mel(f: float) -> float:
    return 2595 * math.log10(1 + f / 700)


def chirp(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A sine sweeping linearly in mel from 200 Hz to 6 kHz (or back) over the clip, at a random level."""
    t = np.arange(int(seconds * SR)) / SR
    m0, m1 = (_mel(200.0), _mel(6000.0)) if rng.random() < 0.5 else (_mel(6000.0), _mel(200.0))
    f = 700 * (10 ** ((m0 + (m1 - m0) * t / seconds) / 2595) - 1)
    x = np.sin(2 * np.pi * np.cumsum(f) / SR) * 10 ** (rng.uniform(-26, -3) / 20) + 1e-3 * rng.standard_normal(t.size)
    return x.astype(np.float32)


def real_clips(kind: str, n: int, seed: int, root: str) -> list[np.ndarray]:
    """``n`` pretraining clips of ``make bench-real`` (``real``: every kind; ``real_speech`` etc.: one),
    drawn evenly over the kinds in a seeded order, as log-mels of the default frontend."""
    import glob

    import soundfile as sf

    kinds = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))) if kind == "real" \
        else [kind.split("_", 1)[1]]
    rng = np.random.default_rng(seed)
    files = {k: [str(f) for f in rng.permutation(sorted(glob.glob(os.path.join(root, k, "*.wav"))))] for k in kinds}
    if not any(files.values()):
        raise SystemExit(f"error: {root}: no pretraining clips of {kinds} (run `make bench-real`)")
    picked = [f for group in zip(*[files[k] for k in kinds if files[k]]) for f in group][:n]
    return [logmel(sf.read(f, dtype="float32")[0], get_preset(DEFAULT_PRESET)).astype(np.float32) for f in picked]


def corpus(kind: str, n: int, seconds: float, seed: int, root: str = "") -> list[np.ndarray]:
    if kind.startswith("real"):
        return real_clips(kind, n, seed, root)
    cfg, rng, out = get_preset(DEFAULT_PRESET), np.random.default_rng(seed), []
    for i in range(n):
        if kind == "chirp":
            x = chirp(rng, seconds)
        elif kind == "demo_splice":
            from ingest.demo import make_clip  # generator imports scipy: only this corpus

            a, b = make_clip(seed, "train", 2 * i, seconds)[0], make_clip(seed, "train", 2 * i + 1, seconds)[0]
            cut = int(rng.uniform(0.3, 0.7) * a.size)  # one scene change: clips i, i+1 are of different families
            x = np.concatenate([a[:cut], b[cut:]])
        elif kind == "demo_varied":
            from ingest.demo_varied import make_clip as varied_clip  # generator imports scipy: only this corpus

            x, _ = varied_clip(seed, "train", i, seconds)
        else:
            from ingest.demo import make_clip  # generator imports scipy: only this corpus

            x, _ = make_clip(seed, "train", i, seconds)
        out.append(logmel(x, cfg).astype(np.float32))
    return out


def batch(mels: list[np.ndarray], smp: TemporalGap, b: int, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    ex = [smp(mels[int(rng.integers(len(mels)))], {}, rng) for _ in range(b)]
    return {k: torch.from_numpy(np.stack([e[k] for e in ex])) for k in ex[0]}


def _ce(d: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(np.mean(-(d * np.log(p) + (1 - d) * np.log(1 - p))))


def layer_grads(obj: torch.nn.Module) -> dict[str, float]:
    """Gradient norm of each encoder layer's / the head's weights, one number per block."""
    acc: dict[str, float] = {}
    for name, p in obj.named_parameters():
        if p.grad is None:
            continue
        key = ".".join(name.split(".")[:3]) if name.startswith("encoder.layers") else ".".join(name.split(".")[:2])
        acc[key] = acc.get(key, 0.0) + float(p.grad.square().sum())
    return {k: round(math.sqrt(v), 5) for k, v in acc.items()}


def train(a: argparse.Namespace, mels: list[np.ndarray]) -> dict:
    torch.manual_seed(a.seed)
    smp = TemporalGap(96)
    obj = build_objective("temporal_gap", build_encoder("mobile"))
    w0 = {n: p.detach().clone() for n, p in obj.encoder.named_parameters()}
    opt = torch.optim.Adam(obj.parameters(), lr=a.lr)
    rng, curve, losses, grads = np.random.default_rng(a.seed + 1), [], [], {}
    t0 = time.time()
    for s in range(1, a.steps + 1):
        out = obj(batch(mels, smp, a.batch, rng))
        opt.zero_grad()
        out["loss"].backward()
        if s in (1, a.steps):
            grads[s] = layer_grads(obj)
        opt.step()
        losses.append(float(out["loss"].detach()))
        if s % a.every == 0:
            curve.append([s, round(float(np.mean(losses)), 4)])
            print(f"step {s} loss {curve[-1][1]:.4f} ({time.time() - t0:.0f}s)", flush=True)
            losses = []
    obj.eval()
    held, d, p = np.random.default_rng(999), [], []
    with torch.no_grad():
        for _ in range(8):
            b = batch(mels, smp, 64, held)
            z = obj.encoder(torch.cat([b["x1"], b["x2"]]))
            p.append(torch.sigmoid(obj.head(torch.cat([z[:64], z[64:]], 1)).squeeze(-1)).numpy())
            d.append(b["target"].numpy())
    dd, pp = np.concatenate(d), np.concatenate(p)
    ov = dd < 96 / (mels[0].shape[1] - 96)
    drift = {n: round(float((q.detach() - w0[n]).norm() / (w0[n].norm() + 1e-12)), 4)
             for n, q in obj.encoder.named_parameters() if n.endswith("weight") and q.ndim > 1}
    res = {"curve": curve, "grad_norms_first": grads[1], "grad_norms_last": grads[a.steps],
           "heldout_ce": round(_ce(dd, pp), 4), "heldout_mae": round(float(np.abs(dd - pp).mean()), 4),
           "heldout_ce_overlap": round(_ce(dd[ov], pp[ov]), 4), "const_ce_overlap": round(_ce(dd[ov], np.full(ov.sum(), .5)), 4),
           "heldout_ce_disjoint": round(_ce(dd[~ov], pp[~ov]), 4),
           "const_ce_disjoint": round(_ce(dd[~ov], np.full((~ov).sum(), .5)), 4),
           "pred_std": round(float(pp.std()), 4), "weight_drift_rel": {k: drift[k] for k in list(drift)[::4]},
           "seconds": round(time.time() - t0, 1)}
    print({k: v for k, v in res.items() if k != "curve"})
    return res


def _pair_features(x1: np.ndarray, x2: np.ndarray) -> tuple[float, float]:
    spec = float(np.sqrt(((x1.mean(1) - x2.mean(1)) ** 2).mean()))
    n = x1.shape[1]
    best = min(float(np.abs(u[:, s:] - v[:, :n - s]).mean()) for u, v in ((x1, x2), (x2, x1)) for s in range(0, n, 2))
    return spec, best


def oracle(a: argparse.Namespace, mels: list[np.ndarray]) -> dict:
    smp, rng, f, d = TemporalGap(96), np.random.default_rng(a.seed + 5), [], []
    for _ in range(3000):
        e = smp(mels[int(rng.integers(len(mels)))], {}, rng)
        f.append(_pair_features(e["x1"][0], e["x2"][0]))
        d.append(float(e["target"]))
    F, D = np.array(f), np.array(d)
    tr, te = slice(0, 1500), slice(1500, None)
    res = {"const_ce": round(_ce(D[te], np.full(1500, .5)), 4), "floor_ce": round(_ce(D[te], D[te]), 4),
           "frac_overlap": round(float((D < 96 / (mels[0].shape[1] - 96)).mean()), 3)}
    for name, cols in (("spectral_distance", [0]), ("overlap_match", [1]), ("both", [0, 1])):
        nb = 16 if len(cols) == 1 else 6
        ktr, kte = np.zeros(1500, int), np.zeros(1500, int)
        for c in cols:
            q = np.quantile(F[tr, c], np.linspace(0, 1, nb + 1)[1:-1])
            ktr, kte = ktr * nb + np.digitize(F[tr, c], q), kte * nb + np.digitize(F[te, c], q)
        means = {k: float(D[tr][ktr == k].mean()) for k in np.unique(ktr)}
        pred = np.array([means.get(k, .5) for k in kte])
        res[name] = {"ce": round(_ce(D[te], pred), 4), "corr": [round(float(np.corrcoef(F[:, c], D)[0, 1]), 3) for c in cols]}
    print(res)
    return res


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=["train", "oracle"])
    p.add_argument("--corpus", choices=["chirp", "demo", "demo_splice", "demo_varied", *REAL], default="chirp",
                   help="real, real_speech, ...: the pretraining clips of `make bench-real` (under --real-dir)")
    p.add_argument("--real-dir", default=os.path.join(ROOT, "data", "real_audio", "pretrain"))
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--save", default="", help="key under which to merge the result into bench/results/temporal_gap_health.json")
    a = p.parse_args()
    if not (1 <= a.clips <= 1000 and 2.0 <= a.seconds <= 60.0 and 1 <= a.steps <= 100_000 and 1 <= a.batch <= 1024):
        raise SystemExit("error: arguments: clips 1-1000, seconds 2-60, steps 1-100000, batch 1-1024")
    torch.set_num_threads(1)
    mels = corpus(a.corpus, a.clips, a.seconds, a.seed, a.real_dir)
    res = train(a, mels) if a.mode == "train" else oracle(a, mels)
    if a.save:
        print("saved", merge_results("temporal_gap_health", {a.save: {"args": vars(a), **res}}))


if __name__ == "__main__":
    main()
