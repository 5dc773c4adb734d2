"""Exported encoders: ``encoder.safetensors`` + ``encoder.json`` (docs/contracts.md).

This is what evaluation, the HEAR wrapper and ``python -m models export`` load.  The JSON is
untrusted input: names and kwargs are checked before anything is built; weights load through
safetensors (no pickle).
"""
from __future__ import annotations

import json
import os
from typing import Any

import torch

from shards.atomic import atomic_write_bytes, atomic_write_json

FORMAT_VERSION = 1
WEIGHTS = "encoder.safetensors"
META = "encoder.json"


def save_encoder(run_dir: str, encoder: torch.nn.Module, name: str, kwargs: dict[str, Any], frontend: dict[str, Any],
                 method: str, step: int, input_norm: dict[str, Any] | None) -> str:
    """Write the encoder's weights and its rebuild recipe atomically into ``run_dir``."""
    from safetensors.torch import save

    state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
    atomic_write_bytes(os.path.join(run_dir, WEIGHTS), save(state))
    meta = {
        "format_version": FORMAT_VERSION, "encoder": name, "kwargs": kwargs, "frontend": frontend,
        "input_norm": input_norm, "method": method, "step": int(step),
        "embedding_dim": int(getattr(encoder, "embedding_dim", 0)),
    }
    atomic_write_json(os.path.join(run_dir, META), meta)
    return os.path.join(run_dir, META)


def read_meta(run_dir: str) -> dict[str, Any]:
    path = os.path.join(run_dir, META)
    try:
        with open(path) as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{run_dir} holds no {META}: not an exported melstream encoder") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported encoder format {meta.get('format_version') if isinstance(meta, dict) else meta!r}")
    if not isinstance(meta.get("encoder"), str) or not isinstance(meta.get("kwargs"), dict):
        raise ValueError(f"{path}: 'encoder' must be a name and 'kwargs' an object")
    if not isinstance(meta.get("frontend"), dict):
        raise ValueError(f"{path}: missing frontend config")
    for k, v in meta["kwargs"].items():
        if not isinstance(v, (int, float, str, bool, type(None), list)):
            raise ValueError(f"{path}: kwarg {k!r} has unsupported type {type(v).__name__}")
    norm = meta.get("input_norm")
    ok = norm is None or (isinstance(norm, dict) and (
        norm.get("type") == "per_example" or all(isinstance(norm.get(k), (int, float)) for k in ("mean", "std"))))
    if not ok:
        raise ValueError(f"{path}: input_norm must be null, {{mean, std}} or {{type: per_example}}")
    return meta


def load_encoder(run_dir: str, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the exported encoder in eval mode; returns ``(encoder, meta)``."""
    from safetensors.torch import load_file

    from models import ENCODERS, build_encoder

    meta = read_meta(run_dir)
    if meta["encoder"] not in ENCODERS:
        raise ValueError(f"{run_dir}: unknown encoder {meta['encoder']!r}; known: {sorted(ENCODERS)}")
    enc = build_encoder(meta["encoder"], **meta["kwargs"])
    state = load_file(os.path.join(run_dir, WEIGHTS), device="cpu")
    missing, unexpected = enc.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{run_dir}: weights do not match {meta['encoder']} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return enc.to(device).eval(), meta


def normalise_input(x: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
    """Apply the training-time input normalisation recorded in ``encoder.json`` (if any)."""
    norm = meta.get("input_norm")
    if not norm:
        return x
    if norm.get("type") == "per_example":  # Wang et al. 2022 Sec. 3: per-example standardisation
        dims = tuple(range(1, x.dim()))
        return (x - x.mean(dims, keepdim=True)) / (x.std(dims, keepdim=True) + 1e-5)
    return (x - float(norm["mean"])) / max(float(norm["std"]), 1e-8)
