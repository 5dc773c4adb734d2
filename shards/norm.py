"""Encoder input normalisation, the meaning of ``encoder.json`` ``input_norm`` (docs/contracts.md).

* ``{"mean": m, "std": s}``: ``(x - m) / max(s, 1e-8)`` with dataset statistics from the manifests;
* ``{"type": "per_example"}``: :func:`standardize`, each example by its own statistics;
* ``null``: the encoder sees log-mels as they are.

One formula for per-example standardisation everywhere (samplers, objectives, evaluation, export):
``(x - mean) / sqrt(var + eps)``, population variance over every value of the example, ``eps = 1e-5``
(Wang et al. 2022, App. C: "we standardize each input spectrogram by its mean and standard deviation";
the paper gives no eps, ours keeps silent inputs finite).  docs/objectives.md.
"""
from __future__ import annotations

from typing import Any, TypeVar

import numpy as np
import torch

EPS = 1e-5
A = TypeVar("A", np.ndarray, torch.Tensor)

__all__ = ["EPS", "standardize", "apply_input_norm", "check_input_norm"]


def standardize(x: A, eps: float = EPS, batched: bool = True) -> A:
    """Per-example standardisation. A tensor (or, with ``batched=True``, an array) holds one example
    per index of axis 0; a numpy array with ``batched=False`` is one example."""
    if isinstance(x, torch.Tensor):
        dims = tuple(range(1, x.dim()))
        var, mean = torch.var_mean(x, dim=dims, keepdim=True, correction=0)
        return (x - mean) * torch.rsqrt(var + eps)
    axes = tuple(range(1, x.ndim)) if batched else None
    m = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    v = x.var(axis=axes, keepdims=True, dtype=np.float64)
    return ((x - m) / np.sqrt(v + eps)).astype(np.float32, copy=False)


def check_input_norm(norm: Any) -> bool:
    """True for the three valid ``input_norm`` forms."""
    return norm is None or (isinstance(norm, dict) and (
        norm.get("type") == "per_example" or all(isinstance(norm.get(k), (int, float)) for k in ("mean", "std"))))


def apply_input_norm(x: torch.Tensor, norm: dict[str, Any] | None) -> torch.Tensor:
    """Apply a run's ``input_norm`` to a batch ``[B, ...]``."""
    if not norm:
        return x
    if norm.get("type") == "per_example":
        return standardize(x)
    return (x - float(norm["mean"])) / max(float(norm["std"]), 1e-8)
