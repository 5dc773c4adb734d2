"""Exporting trained encoders into run directories (format: ``shards/rundir.py``, docs/contracts.md),
loading outside weights (``--init``, official checkpoints).

Reading a run dir back is ``models.export.load_run`` (re-exported here as :func:`load_encoder`).
"""
from __future__ import annotations

import os
from typing import Any

import torch

from models import build_encoder
from models.export import load_run as load_encoder
from shards.norm import apply_input_norm
from shards.rundir import FORMAT_VERSION, META, WEIGHTS, make_meta, read_meta, read_safetensors, write_run
from shards.typed import build_checked

__all__ = ["FORMAT_VERSION", "META", "WEIGHTS", "save_encoder", "load_weights", "import_weights", "read_meta",
           "load_encoder", "normalise_input"]


def save_encoder(run_dir: str, encoder: torch.nn.Module, name: str, kwargs: dict[str, Any], frontend: dict[str, Any],
                 method: str, step: int, input_norm: dict[str, Any] | None) -> str:
    """Write the encoder's weights and its rebuild recipe atomically into ``run_dir``."""
    meta = make_meta(name, kwargs, frontend, input_norm, method, step, int(getattr(encoder, "embedding_dim", 0)))
    return write_run(run_dir, encoder.state_dict(), meta)


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


def import_weights(out: str, encoder_name: str, kwargs: dict[str, Any], weights: str, frontend: dict[str, Any],
                   input_norm: dict[str, Any] | None, method: str = "imported") -> str:
    """Turn outside weights (an official checkpoint) into a run directory that evaluation, the HEAR
    wrapper and ``--init`` load like any trained melstream encoder."""
    enc = build_checked(build_encoder, encoder_name, kwargs, "bad --encoder-arg")
    load_weights(enc, weights)
    os.makedirs(out, exist_ok=True)
    return save_encoder(out, enc, encoder_name, kwargs, frontend, method, 0, input_norm)


def normalise_input(x: torch.Tensor, meta: dict[str, Any]) -> torch.Tensor:
    """Apply the training-time input normalisation recorded in ``encoder.json`` (if any)."""
    return apply_input_norm(x, meta.get("input_norm"))
