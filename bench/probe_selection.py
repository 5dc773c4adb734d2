"""What the linear probe measures on small tasks: early stopping and regularisation against a solved
logistic regression, on one run and its untrained encoder (docs/bench-real.md, "Which linear probe").

For each task (the bench-real tasks by default, one centre crop of 288 frames per clip, embeddings from
the bench's cache next to the run), the same standardised clip embeddings go to:

* ``early_stop``: ``eval``'s ``linear`` probe as it is (BYOL-A Sec. IV-A5: Adam 1e-3, at most 200 epochs,
  patience 10 on validation accuracy, ties broken by validation loss, the best state kept);
* ``val_loss``: the same, with validation loss as the stopping criterion;
* ``no_stop``: the same head after all 200 epochs (no early stopping);
* ``logreg``: ``eval``'s ``logreg`` probe (L2, C chosen on validation, refit on train + validation);
* ``logreg_c1``: scikit-learn's logistic regression at its default C = 1 on the training split.

The three Adam heads are averaged over ``--seeds`` probe seeds; the epochs each stopped at are kept.
Results: ``bench/results/probe_selection.json`` under ``--label``::

    python bench/probe_selection.py runs/bench_methods/byol_a_v2__default --label byol_a_v2
"""
from __future__ import annotations

import argparse
import copy
import os
import sys

import numpy as np
import torch
from _common import merge_results

TASKS = [f"real_{t}" for t in ("instrument", "pitch", "drum", "language", "keyword", "speaker")]


def adam_head(Xtr, ytr, Xva, yva, Xte, yte, n_classes: int, seed: int, rule: str) -> tuple[float, int]:
    """Test accuracy and epochs of a linear head trained as ``eval``'s probe, stopped by ``rule``."""
    from torch import nn

    from eval.probes import ProbeConfig

    cfg = ProbeConfig()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    head = nn.Linear(Xtr.shape[1], n_classes)
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    X, Y = torch.as_tensor(Xtr), torch.as_tensor(ytr)
    bs = max(8, min(cfg.batch_size, -(-len(X) // cfg.min_steps_per_epoch)))
    loss_fn = nn.CrossEntropyLoss()
    best, state, bad, epoch = None, None, 0, 0
    for epoch in range(cfg.max_epochs):
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), bs):
            b = perm[i:i + bs]
            opt.zero_grad()
            loss_fn(head(X[b]), Y[b]).backward()
            opt.step()
        with torch.no_grad():
            z = head(torch.as_tensor(Xva))
            acc, loss = float((z.argmax(1).numpy() == yva).mean()), float(loss_fn(z, torch.as_tensor(yva)))
        key = {"early_stop": (acc, -loss), "val_loss": (-loss,), "no_stop": (epoch,)}[rule]
        if best is None or key > best:
            best, state, bad = key, copy.deepcopy(head.state_dict()), 0
        else:
            bad += 1
            if rule != "no_stop" and bad >= cfg.patience:
                break
    head.load_state_dict(state)
    with torch.no_grad():
        return float((head(torch.as_tensor(Xte)).argmax(1).numpy() == yte).mean()), epoch + 1


def score_model(m, td, spec, window, o, seeds: int) -> dict:
    from sklearn.linear_model import LogisticRegression

    from eval.cache import ensure_mels
    from eval.embed import get_embeddings
    from eval.logreg import run_logreg_probe
    from eval.probes import ProbeConfig, ProbeInput, Standardiser, label_array, make_folds, rows

    emb = get_embeddings(m.frozen, td, lambda: ensure_mels(td, m.frontend, o.cache_dir, spec.max_seconds, 1, False),
                         window, o.cache_dir)
    y = label_array(td, emb.keys)
    folds = make_folds(td, emb.keys, 0.1)
    f = folds[0]
    X = emb.kinds["clip"]
    Xtr, Xva, Xte = (rows(X, idx, "mean")[0] for idx in (f.train, f.valid, f.test))
    std = Standardiser(Xtr)
    Xtr, Xva, Xte = (std(a).numpy() for a in (Xtr, Xva, Xte))
    ytr, yva, yte = y[f.train], y[f.valid], y[f.test]
    out: dict = {"sizes": [len(ytr), len(yva), len(yte)]}
    for rule in ("early_stop", "val_loss", "no_stop"):
        res = [adam_head(Xtr, ytr, Xva, yva, Xte, yte, len(td.classes), s, rule) for s in range(seeds)]
        out[rule] = {"accuracy": float(np.mean([a for a, _ in res])), "epochs": [e for _, e in res]}
    lr = run_logreg_probe(ProbeInput(X, y, False, td.classes, folds), ProbeConfig())
    out["logreg"] = {"accuracy": lr["mean"], "C": lr["C"][0]}
    c1 = LogisticRegression(max_iter=1000).fit(Xtr.astype(np.float64), ytr)
    out["logreg_c1"] = {"accuracy": float(c1.score(Xte.astype(np.float64), yte))}
    return out


def main(argv: list[str] | None = None) -> int:
    from eval.runner import RunOptions, load_task, resolve_models, resolve_window

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="a bench run directory (its eval_cache is next to it)")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--data", default="data")
    ap.add_argument("--seeds", type=int, default=3, help="probe seeds of the Adam heads (1-10)")
    ap.add_argument("--label", default=None)
    a = ap.parse_args(argv)
    if not 1 <= a.seeds <= 10:
        print("error: --seeds: must be 1-10", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    run = os.path.abspath(a.run)
    tasks = a.tasks.split(",")
    o = RunOptions(tasks=tasks, data_root=a.data, protocols=("linear",), window_mode="crop", window_frames=288,
                   cache_dir=os.path.join(os.path.dirname(run), "eval_cache"), progress=False)
    models = resolve_models([run, "untrained"])
    out: dict = {"run": run, "tasks": {}}
    for t in tasks:
        spec, td = load_task(t, o)
        window = resolve_window(spec, o)
        out["tasks"][t] = {("trained" if m.kind == "run" else "untrained"): score_model(m, td, spec, window, o, a.seeds)
                           for m in models}
        r = out["tasks"][t]
        print(t, " ".join(f"{k} {100 * r['trained'][k]['accuracy']:.1f}/{100 * r['untrained'][k]['accuracy']:.1f}"
                          for k in ("early_stop", "val_loss", "no_stop", "logreg", "logreg_c1")), flush=True)
    print(merge_results("probe_selection", {a.label or os.path.basename(run): out}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
