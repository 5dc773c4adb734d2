"""Metrics, confidence intervals and the normalised score.

* accuracy and macro-F1 for single-label tasks, mAP (mean over classes with a positive in the test
  set of the average precision) for multi-label tasks -- the metrics of HARES (Wang et al. 2022 Sec. 2.1)
  and of Tagliasacchi et al. 2019 (accuracy, Tables 2-5);
* 95 % confidence interval: Student's t over seeds when a probe is repeated (BYOL-A, Niizumi et al.
  2021 Sec. IV-A5, "ran each evaluation ten times"), otherwise the test-set interval of Tagliasacchi
  et al. 2019 Sec. 4 ("95 % confidence intervals capturing the uncertainty due to the finite size of
  the evaluation datasets"): normal approximation of the binomial for accuracy, bootstrap for mAP;
* paired interval of a difference between two models scored on the same test clips by a deterministic
  probe: the normal interval of the mean per-clip difference in correctness (McNemar's setting), which
  removes the variance the two models share (the clips' difficulty) from the unpaired interval;
* normalised score (Tagliasacchi et al. 2019 Sec. 4, Tables 2-3): 0 % = Spectrogram, 100 % = Supervised.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np


def accuracy(y: np.ndarray, scores: np.ndarray) -> float:
    return float(np.mean(np.argmax(scores, axis=1) == y)) if len(y) else float("nan")


def macro_f1(y: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, np.argmax(scores, axis=1), average="macro", zero_division=0)) if len(y) else float("nan")


def mean_average_precision(Y: np.ndarray, scores: np.ndarray) -> float:
    """Macro mAP over the classes with at least one positive (the others have no defined AP)."""
    from sklearn.metrics import average_precision_score

    keep = Y.sum(axis=0) > 0
    if not keep.any():
        return float("nan")
    return float(average_precision_score(Y[:, keep], scores[:, keep], average="macro"))


def slot_accuracies(y: np.ndarray, scores: np.ndarray, classes: Sequence[str], slots: Sequence[str]) -> dict[str, float]:
    """Fluent Speech Commands: accuracy of each slot of ``slot=value|slot=value|...`` class names."""
    pred = np.argmax(scores, axis=1)
    split = [dict(p.split("=", 1) for p in c.split("|")) for c in classes]
    return {f"{s}_accuracy": float(np.mean([split[a].get(s) == split[b].get(s) for a, b in zip(pred, y)]))
            for s in slots}


def primary(y: np.ndarray, scores: np.ndarray, multilabel: bool) -> float:
    return mean_average_precision(y, scores) if multilabel else accuracy(y, scores)


def all_metrics(y: np.ndarray, scores: np.ndarray, multilabel: bool, classes: Sequence[str] = (),
                slots: Optional[Sequence[str]] = None) -> dict[str, float]:
    if multilabel:
        return {"mAP": mean_average_precision(y, scores)}
    out = {"accuracy": accuracy(y, scores), "macro_f1": macro_f1(y, scores)}
    if slots:
        out.update(slot_accuracies(y, scores, classes, slots))
    return out


def t_ci95(values: Sequence[float]) -> tuple[float, Optional[float]]:
    """Mean and the half-width of the 95 % Student-t interval (``None`` for a single value)."""
    v = np.asarray([x for x in values if x == x], dtype=np.float64)
    if v.size == 0:
        return float("nan"), None
    if v.size == 1:
        return float(v[0]), None
    from scipy.stats import t

    return float(v.mean()), float(t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))


def binomial_ci95(p: float, n: int) -> Optional[float]:
    return float(1.959964 * math.sqrt(max(p * (1 - p), 0.0) / n)) if n > 0 and p == p else None


def bootstrap_ci95(y: np.ndarray, scores: np.ndarray, multilabel: bool, n_boot: int = 200, seed: int = 0,
                   max_cells: int = 5_000_000) -> Optional[float]:
    """Half-width of the 95 % percentile bootstrap interval over test clips (``None`` if too large)."""
    n = len(y)
    if n < 2 or n * max(scores.shape[1], 1) * n_boot > max_cells * 50:
        return None
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        v = primary(y[idx], scores[idx], multilabel)
        if v == v:
            vals.append(v)
    if len(vals) < 10:
        return None
    lo, hi = np.percentile(vals, [2.5, 97.5])
    return float((hi - lo) / 2)


def test_set_ci95(y: np.ndarray, scores: np.ndarray, multilabel: bool) -> Optional[float]:
    if multilabel:
        return bootstrap_ci95(y, scores, multilabel)
    return binomial_ci95(accuracy(y, scores), len(y))


def correct_clips(y: np.ndarray, scores: np.ndarray) -> str:
    """Per test clip, ``1`` where the top score is the label, else ``0`` (single-label), in clip order."""
    return "".join("1" if ok else "0" for ok in (np.argmax(scores, axis=1) == y))


def test_key(y: np.ndarray, order: np.ndarray) -> str:
    """Identifies a test set (clip order and labels): two results pair only when their keys are equal."""
    import hashlib

    h = hashlib.sha256(np.ascontiguousarray(order, dtype=np.int64).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()[:16]


def paired_ci95(a: str, b: str) -> Optional[float]:
    """Half-width of the 95 % normal interval of ``acc(a) - acc(b)`` from per-clip correctness strings
    (``correct_clips``) of the same test clips: 1.96 times the standard error of the mean difference."""
    if len(a) != len(b) or len(a) < 2 or set(a + b) - {"0", "1"}:
        return None
    d = (np.frombuffer(a.encode(), np.uint8).astype(np.float64) - np.frombuffer(b.encode(), np.uint8))
    return float(1.959964 * d.std(ddof=1) / math.sqrt(d.size))


def normalised(value: float, spectrogram: float, supervised: float) -> Optional[float]:
    """Percent of the way from the Spectrogram baseline (0 %) to the Supervised model (100 %)."""
    if any(v is None or v != v for v in (value, spectrogram, supervised)) or abs(supervised - spectrogram) < 1e-12:
        return None
    return 100.0 * (value - spectrogram) / (supervised - spectrogram)
