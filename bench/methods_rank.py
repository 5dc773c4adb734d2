"""Effective rank of the clip embeddings behind a `make bench-methods` table, trained vs untrained.

A method that lowers its encoder's linear-probe score below the untrained one can do so by a defect (a
wrong sign, a detached branch) or by what early training does to a random network: pulling the
embeddings of every clip towards a few directions (dimensional collapse) before it spreads them by
content.  The second shows as a much lower effective rank of the trained embeddings.  Effective rank
(Roy & Vetterli 2007): ``exp(H(p))`` with ``p`` the singular values of the centred, per-dimension
standardised embedding matrix normalised to sum 1 (standardised as the linear probe sees them).

Also the level share: the mean over embedding dimensions of the squared correlation (standardised,
as the probe sees them) with the clip's level, the mean log-mel of the same crop (from the cached
spectrogram baseline): how much of the representation is loudness plus noise floor.

Reads the embeddings `make bench-methods` cached (``runs/bench_methods/eval_cache``), no encoder runs:
``python bench/methods_rank.py [--results bench/results/methods_varied.json] [--task demo_varied_family]``.
Writes ``rank`` into each row of the results file (trained, untrained) and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
from _common import RESULTS, ROOT


def effective_rank(x: np.ndarray) -> float:
    """``exp`` of the entropy of the normalised singular values of ``x`` [n, d], columns standardised."""
    x = x - x.mean(0)
    sd = x.std(0)
    x = x[:, sd > 1e-8] / sd[sd > 1e-8]
    s = np.linalg.svd(x, compute_uv=False)
    p = s / s.sum()
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def level_share(x: np.ndarray, level: np.ndarray) -> float:
    """Mean over the (standardised) columns of ``x`` [n, d] of their squared correlation with ``level`` [n]."""
    x = x - x.mean(0)
    sd = x.std(0)
    x = x[:, sd > 1e-8] / sd[sd > 1e-8]
    lv = (level - level.mean()) / level.std()
    return float(((x * lv[:, None]).mean(0) ** 2).mean())


def _level(cache: str, task: str) -> np.ndarray | None:
    """Per-clip mean log-mel of the evaluated crop (the spectrogram baseline's flattened window)."""
    root = os.path.join(cache, "emb")
    spec = [h for h in sorted(os.listdir(root)) if h.startswith("spectrogram-")] if os.path.isdir(root) else []
    x = _embeddings(cache, spec[0], task) if spec else None
    return None if x is None else x.mean(1)


def _embeddings(cache: str, model_hash: str, task: str) -> np.ndarray | None:
    from eval.cache import read_embeddings

    d = os.path.join(cache, "emb", model_hash, task)
    if not os.path.isdir(d):
        return None
    for sub in sorted(os.listdir(d)):
        kind = os.path.join(d, sub, "clip")
        if os.path.isfile(os.path.join(kind, "manifest.json")):
            emb = read_embeddings(kind)
            return np.stack([v.mean(0) for _, v in sorted(emb.items())])
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=os.path.join(RESULTS, "methods_varied.json"))
    ap.add_argument("--task", default="demo_varied_family")
    ap.add_argument("--cache", default=os.path.join(ROOT, "runs", "bench_methods", "eval_cache"))
    a = ap.parse_args(argv)
    sys.path.insert(0, ROOT)
    from eval.runner import resolve_models

    with open(a.results) as f:
        doc = json.load(f)
    print("| method | encoder | Δ linear | rank trained | rank untrained | ratio | level share trained | untrained |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- |")
    level = _level(a.cache, a.task)
    for key, r in sorted(doc["rows"].items()):
        if "linear" not in r:
            continue
        run = os.path.join(ROOT, r["run"])
        if not os.path.isdir(run):
            print(f"| {r['method']} | {r['encoder_label']} | run folder {r['run']} is gone |")
            continue
        trained = _embeddings(a.cache, resolve_models([run])[0].frozen.model_hash(), a.task)
        untrained = _embeddings(a.cache, r["untrained_hash"], a.task)
        if trained is None or untrained is None:
            print(f"| {r['method']} | {r['encoder_label']} | no cached embeddings for {a.task} |")
            continue
        rt, ru = effective_rank(trained), effective_rank(untrained)
        r["rank"] = {"task": a.task, "trained": round(rt, 2), "untrained": round(ru, 2)}
        lt, lu = (level_share(trained, level), level_share(untrained, level)) if level is not None else (None, None)
        if lt is not None:
            r["level_share"] = {"task": a.task, "trained": round(lt, 3), "untrained": round(lu, 3)}
        ls = f"{lt:.3f} | {lu:.3f}" if lt is not None else "- | -"
        print(f"| {r['method']} | {r['encoder_label']} | {r['linear']['delta_untrained']['mean']:+.3f} "
              f"| {rt:.1f} | {ru:.1f} | {rt / ru:.2f} | {ls} |")
    from shards.atomic import atomic_write_json

    atomic_write_json(a.results, doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
