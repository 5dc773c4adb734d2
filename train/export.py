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


def load_weights(encoder: torch.nn.Module, path: str, what: str = "weights") -> None:
    """Load encoder weights from safetensors or a plain-tensor ``.pth`` (``torch.load(weights_only=True)``:
    no pickled code runs), e.g. the official BYOL-A ``AudioNTT2020-BYOLA-64x96d2048.pth``.  Missing keys
    are an error, extra keys (heads of the pretraining method) a warning."""
    import logging

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path}: no such file")
    if path.endswith(".safetensors"):
        state = read_safetensors(path, what)
    else:
        with open(path, "rb") as f:
            magic = f.read(4)
        if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):  # a zip archive or a legacy pickle
            raise ValueError(f"{what} {path}: not a PyTorch checkpoint (neither the zip format of torch.save nor a "
                             f"legacy pickle; starts with {magic!r})")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - pickled objects, truncated files: one line for the user
            raise ValueError(f"{what} {path}: not a plain tensor checkpoint ({str(e).splitlines()[0][:160]})") from None
        if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
            state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{what} {path}: expected a mapping of parameter names to tensors")
    try:
        missing, unexpected = encoder.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatch: another size of the same encoder
        raise ValueError(f"{what} {path}: {str(e).splitlines()[-1].strip()[:200]}") from None
    if missing:
        raise ValueError(f"{what} {path}: missing keys for this encoder, e.g. {missing[:4]}")
    if unexpected:
        logging.getLogger("melstream.train").warning("%s %s: ignoring %d keys not in the encoder (e.g. %s)",
                                                     what, path, len(unexpected), unexpected[:3])


def read_safetensors(path: str, what: str = "weights") -> dict[str, torch.Tensor]:
    """Every tensor of a ``.safetensors`` file, or ``ValueError`` naming the file (truncated, not safetensors)."""
    from safetensors.torch import load_file

    try:
        return load_file(path, device="cpu")
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path}: no such file") from None
    except Exception as e:  # noqa: BLE001 - SafetensorError (truncated, garbage header), OSError: one line
        why = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ValueError(f"{what} {path}: not a readable safetensors file ({why})") from None


def import_weights(out: str, encoder_name: str, kwargs: dict[str, Any], weights: str, frontend: dict[str, Any],
                   input_norm: dict[str, Any] | None, method: str = "imported") -> str:
    """Turn outside weights (an official checkpoint) into a run directory that evaluation, the HEAR
    wrapper and ``--init`` load like any trained melstream encoder."""
    from models import build_encoder

    enc = build_encoder(encoder_name, **kwargs)
    load_weights(enc, weights)
    os.makedirs(out, exist_ok=True)
    return save_encoder(out, enc, encoder_name, kwargs, frontend, method, 0, input_norm)


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
    from models import ENCODERS, build_encoder

    meta = read_meta(run_dir)
    if meta["encoder"] not in ENCODERS:
        raise ValueError(f"{run_dir}: unknown encoder {meta['encoder']!r}; known: {sorted(ENCODERS)}")
    from .validate import build_checked, coerce_kwargs

    what = f"{os.path.join(run_dir, META)}: bad kwargs"  # the JSON is outside input: typed and checked first
    kwargs = coerce_kwargs([ENCODERS[meta["encoder"]]], meta["kwargs"], what, meta["encoder"])
    enc = build_checked(build_encoder, meta["encoder"], kwargs, what)
    state = read_safetensors(os.path.join(run_dir, WEIGHTS), "encoder weights")
    try:
        missing, unexpected = enc.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shapes of another size of this encoder
        raise ValueError(f"{run_dir}: weights do not match {meta['encoder']} {kwargs}: "
                         f"{str(e).strip().splitlines()[-1].strip()[:200]}") from None
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
