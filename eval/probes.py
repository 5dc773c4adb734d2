"""Probes on frozen embeddings: linear, MLP, kNN; splits, validation carving, aggregation.

* ``linear`` -- BYOL-A's linear evaluation protocol (Niizumi et al. 2021 Sec. IV-A5): one linear layer on
  standardised features, Adam lr 1e-3, at most 200 epochs, early stopping with patience 10 on the
  validation split (best validation metric, ties broken by validation loss), repeated over seeds;
  mean and 95 % CI reported.  Minibatches of 256 (smaller on small tasks, so that an epoch is at
  least 8 steps).
* ``mlp`` -- one hidden layer of 512 ReLU units, otherwise the same (HARES' AudioSet protocol, Wang et al.
  2022 Sec. 2.1 / App. A "one hidden layer with 512 hidden units").
* ``logreg`` -- L2 logistic regression solved to convergence, C chosen on the validation split
  (CLIP's linear probe, Radford et al. 2021 App. A.3; ``eval/logreg.py``).
* ``knn`` -- k = 10 nearest neighbours, Euclidean, directly in the embedding space (Tagliasacchi et al.
  2019 Sec. 4, Table 3); deterministic, so its CI is the test-set interval.

Validation: the task's own validation split; else carved from train (10 %, stratified by class, keeping
groups -- speaker, location, source recording -- whole, fixed seed so every model sees the same carve).
k-fold tasks: test on fold i, validate on fold i+1 (cyclic; HEAR's convention), train on the rest; the
test fold is never used for any choice.  The reported value is the mean over folds.

Aggregation: ``mean`` averages the window embeddings of a clip (scene embedding) before the probe;
``naive_bayes`` trains on windows (each with its clip's label) and sums per-window log-probabilities per
clip (Tagliasacchi et al. 2019 Sec. 4; for multi-label tasks the per-class log-odds are summed).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from torch import nn

from . import metrics as M
from .tasks.base import TaskData

PROBES = ("linear", "logreg", "knn", "mlp", "finetune", "layerwise")
PROBE_HELP = {
    "linear": "linear layer on standardised frozen features, Adam 1e-3, <=200 epochs, patience 10, over seeds (BYOL-A)",
    "logreg": "L2 logistic regression solved to convergence (L-BFGS), C swept on validation, refit on train+valid (CLIP)",
    "knn": "k=10 nearest neighbours, Euclidean, raw embedding space (Tagliasacchi et al. 2019 Table 3)",
    "mlp": "one hidden layer (512 ReLU) on standardised frozen features, else as linear (HARES AudioSet protocol)",
    "finetune": "encoder + linear head trained end to end (DeLoRes transfer setup)",
    "layerwise": "a linear probe on each mean-pooled blocks() output (DeLoRes Table X)",
}


@dataclass
class ProbeConfig:
    lr: float = 1e-3
    max_epochs: int = 200
    patience: int = 10
    batch_size: int = 256
    min_steps_per_epoch: int = 8   # small tasks: smaller batches, so 200 epochs are enough steps
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    hidden: int = 512
    k: int = 10
    valid_fraction: float = 0.1
    weight_decay: float = 0.0
    logreg_max_iter: int = 1000    # L-BFGS iterations per fit of the ``logreg`` probe (eval/logreg.py)


@dataclass
class Fold:
    name: str
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


@dataclass
class ProbeInput:
    """What a probe sees: per-clip window features and labels in a fixed clip order."""

    X: list[np.ndarray]             # [W_i, d] per clip
    y: np.ndarray                   # int [N] (single-label) or float {0,1} [N, C] (multi-label)
    multilabel: bool
    classes: list[str]
    folds: list[Fold]
    aggregate: str = "mean"
    slots: Optional[list[str]] = None


# -- labels and splits ----------------------------------------------------------------------------------

def label_array(td: TaskData, keys: Sequence[str]) -> np.ndarray:
    idx = {c: i for i, c in enumerate(td.classes)}
    by_key = {c.key: c for c in td.clips}
    if td.multilabel:
        y = np.zeros((len(keys), len(td.classes)), dtype=np.float32)
        for r, k in enumerate(keys):
            for lab in by_key[k].labels:
                y[r, idx[lab]] = 1.0
        return y
    return np.array([idx[by_key[k].labels[0]] for k in keys], dtype=np.int64)


def carve_valid(idx: np.ndarray, labels: Sequence[str], groups: Sequence[Optional[str]], frac: float = 0.1,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split ``idx`` into (train, valid): ~``frac`` of the groups of each class go to valid.

    A class with fewer than two groups stays entirely in train.  Groups default to single clips.
    """
    rng = np.random.default_rng(seed)
    units: dict[str, list[int]] = {}
    for i in idx:
        g = groups[i] if groups[i] is not None else f"__clip{i}"
        units.setdefault(g, []).append(int(i))
    by_class: dict[str, list[str]] = {}
    for g, members in units.items():
        by_class.setdefault(labels[members[0]], []).append(g)
    valid: list[int] = []
    for cls in sorted(by_class):
        gs = sorted(by_class[cls])
        if len(gs) < 2:
            continue
        rng.shuffle(gs)
        take = max(1, int(round(frac * len(gs))))
        for g in gs[:min(take, len(gs) - 1)]:
            valid.extend(units[g])
    vs = set(valid)
    return np.array([i for i in idx if i not in vs], dtype=np.int64), np.array(sorted(vs), dtype=np.int64)


def make_folds(td: TaskData, keys: Sequence[str], valid_fraction: float = 0.1) -> list[Fold]:
    """Train/valid/test index sets over ``keys`` (see module docstring); test data never selects anything."""
    by_key = {c.key: c for c in td.clips}
    clips = [by_key[k] for k in keys]
    strat = ["|".join(c.labels) if not td.multilabel else "all" for c in clips]
    groups = [c.group for c in clips]
    if td.kfold:
        folds = list(td.folds)
        out = []
        fold_of = np.array([c.fold for c in clips])
        for i, f in enumerate(folds):
            test = np.where(fold_of == f)[0]
            if len(folds) >= 3:
                vf = folds[(i + 1) % len(folds)]
                valid = np.where(fold_of == vf)[0]
                train = np.where((fold_of != f) & (fold_of != vf))[0]
            else:
                train, valid = carve_valid(np.where(fold_of != f)[0], strat, groups, valid_fraction)
            out.append(Fold(f"fold{f}", train, valid, test))
        return out
    split = np.array([c.split for c in clips])
    train, valid, test = (np.where(split == s)[0] for s in ("train", "valid", "test"))
    if len(valid) == 0:
        train, valid = carve_valid(train, strat, groups, valid_fraction)
    return [Fold("test", train, valid, test)]


# -- feature assembly and aggregation ------------------------------------------------------------------

def rows(X: list[np.ndarray], idx: np.ndarray, aggregate: str) -> tuple[np.ndarray, np.ndarray]:
    """Features of the clips ``idx`` and, per row, the position of its clip in ``idx``."""
    if len(idx) == 0:
        d = X[0].shape[1] if X else 0
        return np.zeros((0, d), np.float32), np.zeros(0, np.int64)
    if aggregate == "mean":
        return np.stack([X[i].mean(axis=0) for i in idx]).astype(np.float32), np.arange(len(idx))
    feats = np.concatenate([X[i] for i in idx]).astype(np.float32)
    return feats, np.repeat(np.arange(len(idx)), [X[i].shape[0] for i in idx])


def aggregate_logits(logits: torch.Tensor, clip_of_row: np.ndarray, n_clips: int, multilabel: bool,
                     aggregate: str) -> torch.Tensor:
    if aggregate == "mean":
        return logits
    lp = logits if multilabel else torch.log_softmax(logits, dim=1)
    out = torch.zeros(n_clips, logits.shape[1], dtype=lp.dtype)
    return out.index_add_(0, torch.as_tensor(clip_of_row, dtype=torch.long), lp)


# -- trained heads (linear / MLP) -----------------------------------------------------------------------

class few_threads:
    """Run small torch workloads on one thread: on a busy machine, OpenMP workers that spin-wait for
    a descheduled sibling make a tiny linear layer 100x slower than a single thread."""

    def __init__(self, work: int, limit: int = 20_000_000):
        self.on = work < limit

    def __enter__(self):
        self.n = torch.get_num_threads()
        if self.on:
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        torch.set_num_threads(self.n)
        return False


class Standardiser:
    def __init__(self, X: np.ndarray):
        self.mean = X.mean(axis=0, keepdims=True)
        self.std = X.std(axis=0, keepdims=True) + 1e-6

    def __call__(self, X: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((X - self.mean) / self.std).astype(np.float32))


def head_loss(multilabel: bool) -> nn.Module:
    """The classification loss of every head: BCE on multi-hot targets (multi-label tasks), cross-entropy
    on class indices otherwise."""
    return nn.BCEWithLogitsLoss() if multilabel else nn.CrossEntropyLoss()


def head_targets(y: np.ndarray, multilabel: bool) -> torch.Tensor:
    """Targets for :func:`head_loss`: float multi-hot rows, or long class indices."""
    return torch.as_tensor(y, dtype=torch.float32 if multilabel else torch.long)


class EarlyStopping:
    """Keeps the state with the best validation metric (ties: the lower validation loss) and says when
    ``patience`` epochs in a row brought no improvement (BYOL-A's linear evaluation, Niizumi et al. 2021)."""

    def __init__(self, module: nn.Module, patience: int) -> None:
        self.patience, self.bad = patience, 0
        self.best = (-math.inf, math.inf)
        self.state = copy.deepcopy(module.state_dict())

    def update(self, module: nn.Module, metric: float, loss: float) -> bool:
        """Record one epoch's validation result; True when training should stop."""
        if metric > self.best[0] + 1e-9 or (abs(metric - self.best[0]) <= 1e-9 and loss < self.best[1] - 1e-9):
            self.best, self.state, self.bad = (metric, loss), copy.deepcopy(module.state_dict()), 0
            return False
        self.bad += 1
        return self.bad >= self.patience

    def restore(self, module: nn.Module) -> None:
        module.load_state_dict(self.state)


def train_head(Xtr: np.ndarray, ytr: np.ndarray, val: Callable[[nn.Module], tuple[float, float]], d: int, n_out: int,
               multilabel: bool, seed: int, cfg: ProbeConfig, hidden: Optional[int] = None) -> tuple[nn.Module, int]:
    """Adam on minibatches; keeps the state with the best validation metric (ties: lower loss)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    head = nn.Linear(d, n_out) if not hidden else nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, n_out))
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    X = torch.as_tensor(Xtr)
    Y = head_targets(ytr, multilabel)
    loss_fn = head_loss(multilabel)
    bs = max(8, min(cfg.batch_size, -(-len(X) // cfg.min_steps_per_epoch)))
    stop, epochs = EarlyStopping(head, cfg.patience), 0
    for epoch in range(cfg.max_epochs):
        head.train()
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), bs):
            b = perm[i:i + bs]
            opt.zero_grad(set_to_none=True)
            loss_fn(head(X[b]), Y[b]).backward()
            opt.step()
        epochs = epoch + 1
        head.eval()
        if stop.update(head, *val(head)):
            break
    stop.restore(head)
    return head.eval(), epochs


def head_fold_scores(pi: ProbeInput, fold: Fold, seed: int, cfg: ProbeConfig, hidden: Optional[int] = None
                     ) -> tuple[np.ndarray, int]:
    """Train a head on ``fold.train`` (early stopping on ``fold.valid``); clip scores on ``fold.test``."""
    Xtr, ctr = rows(pi.X, fold.train, pi.aggregate)
    Xva, cva = rows(pi.X, fold.valid, pi.aggregate)
    Xte, cte = rows(pi.X, fold.test, pi.aggregate)
    std = Standardiser(Xtr)
    ytr = pi.y[fold.train][ctr]
    yva = pi.y[fold.valid]
    Tva = std(Xva)
    loss_fn = head_loss(pi.multilabel)
    yva_rows = head_targets(yva[cva], pi.multilabel)

    def val(head: nn.Module) -> tuple[float, float]:
        if len(fold.valid) == 0:
            return 0.0, 0.0
        with torch.no_grad():
            z = head(Tva)
            s = aggregate_logits(z, cva, len(fold.valid), pi.multilabel, pi.aggregate).numpy()
            return M.primary(yva, s, pi.multilabel), float(loss_fn(z, yva_rows))

    with few_threads(Xtr.size * (hidden or len(pi.classes))):
        head, epochs = train_head(std(Xtr).numpy(), ytr, val, Xtr.shape[1], len(pi.classes), pi.multilabel, seed, cfg,
                                  hidden)
        with torch.no_grad():
            s = aggregate_logits(head(std(Xte)), cte, len(fold.test), pi.multilabel, pi.aggregate).numpy()
    return s, epochs


# -- kNN ------------------------------------------------------------------------------------------------

def knn_votes(Xtr: np.ndarray, Ytr: np.ndarray, Xte: np.ndarray, k: int, chunk: int = 1024) -> np.ndarray:
    """Fraction of the ``k`` Euclidean nearest training rows carrying each class ([n_te, C]).

    Ties in the vote are broken towards the nearer neighbours (a 1e-3 bonus decreasing with rank).
    """
    tr = torch.as_tensor(Xtr, dtype=torch.float32)
    Y = torch.as_tensor(Ytr, dtype=torch.float32)
    k = min(k, len(tr))
    w = 1.0 + 1e-3 * torch.linspace(1.0, 0.0, k)
    out = []
    for i in range(0, len(Xte), chunk):
        te = torch.as_tensor(Xte[i:i + chunk], dtype=torch.float32)
        dist = torch.cdist(te, tr)
        nn_idx = dist.topk(k, dim=1, largest=False).indices
        out.append(((Y[nn_idx] * w[None, :, None]).sum(1) / k).numpy())
    return np.concatenate(out) if out else np.zeros((0, Y.shape[1]), np.float32)


def knn_fold_scores(pi: ProbeInput, fold: Fold, k: int) -> np.ndarray:
    Xtr, ctr = rows(pi.X, fold.train, pi.aggregate)
    Xte, cte = rows(pi.X, fold.test, pi.aggregate)
    ytr = pi.y[fold.train][ctr]
    C = len(pi.classes)
    Ytr = ytr if pi.multilabel else np.eye(C, dtype=np.float32)[ytr]
    with few_threads(len(Xtr) * len(Xte)):
        votes = knn_votes(Xtr, Ytr, Xte, k)
    if pi.aggregate == "mean":
        return votes
    kk = min(k, len(Xtr))
    if pi.multilabel:  # Laplace-smoothed per-class probability -> summed log-odds
        p = (votes * kk + 1.0) / (kk + 2.0)
        lp = np.log(p) - np.log1p(-p)
    else:
        lp = np.log((votes * kk + 1.0) / (kk + C))
    out = np.zeros((len(fold.test), C), np.float64)
    np.add.at(out, cte, lp)
    return out


# -- running a probe over folds and seeds ---------------------------------------------------------------

def _pooled(pi: ProbeInput, folds: list[Fold], scores: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    y = np.concatenate([pi.y[f.test] for f in folds])
    return y, np.concatenate(scores)


def summarise(pi: ProbeInput, per_seed_scores: list[list[np.ndarray]], probe: str, extra: Optional[dict] = None) -> dict:
    """Metrics per seed (mean over folds), then mean and 95 % CI over seeds (or the test-set CI)."""
    folds = pi.folds
    per_seed: dict[str, list[float]] = {}
    for scores in per_seed_scores:
        fold_vals: dict[str, list[float]] = {}
        for f, s in zip(folds, scores):
            for name, v in M.all_metrics(pi.y[f.test], s, pi.multilabel, pi.classes, pi.slots).items():
                fold_vals.setdefault(name, []).append(v)
        for name, vs in fold_vals.items():
            per_seed.setdefault(name, []).append(float(np.nanmean(vs)))
    metric = "mAP" if pi.multilabel else "accuracy"
    mean, ci = M.t_ci95(per_seed[metric])
    ci_kind = f"t over {len(per_seed_scores)} seeds"
    paired: dict = {}
    if ci is None:
        y, s = _pooled(pi, folds, per_seed_scores[0])
        ci, ci_kind = M.test_set_ci95(y, s, pi.multilabel), "test set"
        if not pi.multilabel:  # a deterministic probe: what a paired comparison of two models needs
            order = np.concatenate([f.test for f in folds])
            paired = {"correct": M.correct_clips(y, s), "test_key": M.test_key(y, order)}
    secondary = {}
    for name, vals in per_seed.items():
        if name != metric:
            m2, c2 = M.t_ci95(vals)
            secondary[name] = {"mean": m2, "ci95": c2}
    out = {
        "probe": probe, "metric": metric, "mean": mean, "ci95": ci, "ci": ci_kind, "per_seed": per_seed[metric],
        "secondary": secondary, "aggregate": pi.aggregate, "folds": len(folds) if len(folds) > 1 else None,
        "n_train": int(sum(len(f.train) for f in folds) / len(folds)),
        "n_valid": int(sum(len(f.valid) for f in folds) / len(folds)),
        "n_test": int(sum(len(f.test) for f in folds)),
    }
    out.update(paired)
    out.update(extra or {})
    return out


def run_head_probe(pi: ProbeInput, cfg: ProbeConfig, probe: str = "linear", progress: bool = False,
                   desc: str = "") -> dict:
    from tqdm import tqdm

    hidden = cfg.hidden if probe == "mlp" else None
    all_scores, epochs = [], []
    with tqdm(total=len(cfg.seeds) * len(pi.folds), desc=desc or probe, disable=not progress, leave=False) as bar:
        for seed in cfg.seeds:
            sc = []
            for f in pi.folds:
                s, ep = head_fold_scores(pi, f, seed, cfg, hidden)
                sc.append(s)
                epochs.append(ep)
                bar.update(1)
            all_scores.append(sc)
    return summarise(pi, all_scores, probe, {"epochs": float(np.mean(epochs)), "seeds": list(cfg.seeds)})


def run_knn_probe(pi: ProbeInput, cfg: ProbeConfig) -> dict:
    return summarise(pi, [[knn_fold_scores(pi, f, cfg.k) for f in pi.folds]], "knn", {"k": cfg.k})
