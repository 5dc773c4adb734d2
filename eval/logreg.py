"""``logreg``: L2-regularised logistic regression on frozen features, solved to convergence, with the
regularisation chosen on the validation split.

The protocol of CLIP's linear probes (Radford et al. 2021, App. A.3: scikit-learn's L-BFGS logistic
regression, the L2 strength swept on the validation split over 1e-6 .. 1e6), and the classifier of
Tagliasacchi et al. 2019 Sec. 4 ("a simple logistic regression model").  Why it sits beside ``linear``
(BYOL-A's Adam probe with early stopping, Niizumi et al. 2021 Sec. IV-A5), measured on ``make bench-real``
(docs/bench-real.md, "Which linear probe"): on tasks of a few hundred clips, a validation split of 24-132
clips keeps the Adam head of its first few epochs (it stops 10 later, at 12-15), before the head has fitted
the training set, so its accuracy reflects how fast the head moves from its random start as much as what
the features hold.  A solved convex
problem has no such transient: the same features always give the same probe.

Per fold: features standardised on the training split; ``C = 1 / lambda`` swept over ``10^-6 .. 10^6``
(13 decades), then refined at half a decade on either side of the best; the best ``C`` on the validation
metric (ties: the smaller ``C``, the stronger regularisation); refit on train + validation (CLIP's final
fit) and scored on test.  No validation split: ``C = 1`` (scikit-learn's default), recorded.  Multi-label
tasks: one binary problem per class (one-vs-rest).  Deterministic, so the interval is the test-set one.
"""
from __future__ import annotations

import logging
import warnings
from typing import Optional

import numpy as np

from . import metrics as M
from .probes import Fold, ProbeConfig, ProbeInput, Standardiser, aggregate_logits, rows, summarise

log = logging.getLogger("melstream.eval")

COARSE_GRID = tuple(10.0 ** e for e in range(-6, 7))  # C = 1 / lambda, CLIP's range
MAX_ITER = 1000
NO_CLASS = -1e9  # logit of a class absent from the training split


def make_classifier(C: float, multilabel: bool, max_iter: int = MAX_ITER):
    """scikit-learn's L-BFGS logistic regression at its default tolerance (multinomial; one-vs-rest for
    multi-label targets)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    lr = LogisticRegression(C=C, max_iter=max_iter)
    return OneVsRestClassifier(lr) if multilabel else lr


def class_logits(clf, X: np.ndarray, n_classes: int, multilabel: bool) -> np.ndarray:
    """``[N, n_classes]`` logits: the decision function laid out over every class of the task.

    Single-label: classes missing from the training split get ``NO_CLASS``; with two classes present,
    scikit-learn's one score ``d`` becomes the logits ``(0, d)`` (the same softmax).  Multi-label: the
    per-class log-odds (a class constant in training gets its constant estimator's log-odds)."""
    d = np.asarray(clf.decision_function(X), dtype=np.float64)
    if multilabel:
        return d.reshape(len(X), n_classes)
    present = np.asarray(clf.classes_, dtype=np.int64)
    if d.ndim == 1:
        d = np.stack([np.zeros_like(d), d], axis=1)
    out = np.full((len(X), n_classes), NO_CLASS, dtype=np.float64)
    out[:, present] = d
    return out


class Fitter:
    """Fits on one standardised training set at any ``C`` (each fit from zero, so a ``C`` always gives
    the same model), logits for any rows.  A single class in training: every row gets that class."""

    def __init__(self, Xtr: np.ndarray, ytr: np.ndarray, n_classes: int, multilabel: bool, max_iter: int = MAX_ITER):
        self.std = Standardiser(Xtr)
        self.X, self.y = self.z(Xtr), ytr
        self.n, self.multilabel, self.max_iter = n_classes, multilabel, max_iter
        self.single = None if multilabel or len(np.unique(ytr)) > 1 else int(ytr[0])
        self.clf = None

    def z(self, X: np.ndarray) -> np.ndarray:
        return self.std(X).numpy().astype(np.float64)

    def fit(self, C: float) -> "Fitter":
        if self.single is None:
            self.clf = make_classifier(C, self.multilabel, self.max_iter)
            with warnings.catch_warnings():
                # lbfgs at very weak regularisation may stop at max_iter on separable data; the sweep
                # compares the C values on the validation split, which is what chooses one.
                warnings.filterwarnings("ignore", message=".*(converge|Label not|present in all).*")
                self.clf.fit(self.X, self.y)
        return self

    def logits(self, X: np.ndarray) -> np.ndarray:
        if self.single is not None:
            out = np.full((len(X), self.n), NO_CLASS, dtype=np.float64)
            out[:, self.single] = 0.0
            return out
        return class_logits(self.clf, self.z(X), self.n, self.multilabel)


def choose_C(pi: ProbeInput, fold: Fold, max_iter: int = MAX_ITER) -> tuple[float, Optional[float]]:
    """The ``C`` with the best validation metric (coarse decades, then half decades around the best);
    ``(1.0, None)`` without a validation split."""
    if len(fold.valid) == 0:
        return 1.0, None
    Xtr, ctr = rows(pi.X, fold.train, pi.aggregate)
    Xva, cva = rows(pi.X, fold.valid, pi.aggregate)
    yva = pi.y[fold.valid]
    fitter = Fitter(Xtr, pi.y[fold.train][ctr], len(pi.classes), pi.multilabel, max_iter)
    tried: dict[float, float] = {}

    def score(C: float) -> None:
        s = aggregate_logits_np(fitter.fit(C).logits(Xva), cva, len(fold.valid), pi)
        tried[C] = float(M.primary(yva, s, pi.multilabel))

    def best() -> float:
        return max(sorted(tried), key=lambda c: (tried[c], -c))

    for C in COARSE_GRID:
        score(C)
    b = best()
    for C in (b / 10 ** 0.5, b * 10 ** 0.5):
        score(C)
    b = best()
    return b, tried[b]


def aggregate_logits_np(z: np.ndarray, clip_of_row: np.ndarray, n_clips: int, pi: ProbeInput) -> np.ndarray:
    import torch

    return aggregate_logits(torch.from_numpy(z), clip_of_row, n_clips, pi.multilabel, pi.aggregate).numpy()


def logreg_fold_scores(pi: ProbeInput, fold: Fold, max_iter: int = MAX_ITER) -> tuple[np.ndarray, float, Optional[float]]:
    """Clip scores on ``fold.test`` of the probe refit on train + valid at the chosen ``C``;
    also the ``C`` and its validation metric."""
    C, val = choose_C(pi, fold, max_iter)
    fit_idx = np.concatenate([fold.train, fold.valid])
    Xfit, cfit = rows(pi.X, fit_idx, pi.aggregate)
    Xte, cte = rows(pi.X, fold.test, pi.aggregate)
    z = Fitter(Xfit, pi.y[fit_idx][cfit], len(pi.classes), pi.multilabel, max_iter).fit(C).logits(Xte)
    return aggregate_logits_np(z, cte, len(fold.test), pi), C, val


def run_logreg_probe(pi: ProbeInput, cfg: ProbeConfig) -> dict:
    """``logreg`` over the folds (see the module docstring); one deterministic run."""
    scores, Cs, vals = [], [], []
    for f in pi.folds:
        s, C, v = logreg_fold_scores(pi, f, cfg.logreg_max_iter)
        scores.append(s)
        Cs.append(C)
        vals.append(v)
    if any(v is None for v in vals):
        log.info("logreg: a fold has no validation split; C = 1 there")
    return summarise(pi, [scores], "logreg", {"C": Cs, "valid_metric": vals})
