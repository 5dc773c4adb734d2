"""The run-directory format: ``encoder.safetensors`` + ``encoder.json`` (docs/contracts.md).

One module writes, reads and validates it; training exports through :func:`write_run`, evaluation, the
HEAR wrapper and ``python -m models export`` read through :func:`read_meta` / :func:`read_weights`.
``encoder.json`` is untrusted input: every field is checked before anything is built; weights load
through safetensors (no pickle).  Rebuilding the encoder needs the registry: ``models.export.load_run``.
"""
from __future__ import annotations

import json
import os
from typing import Any

import torch

from .atomic import atomic_write_bytes, atomic_write_json
from .norm import check_input_norm

FORMAT_VERSION = 1
WEIGHTS = "encoder.safetensors"
META = "encoder.json"
_KWARG_TYPES = (int, float, str, bool, type(None), list)

__all__ = ["FORMAT_VERSION", "WEIGHTS", "META", "is_run_dir", "run_dir_of", "make_meta", "write_run",
           "validate_meta", "read_meta", "read_safetensors", "read_weights"]


def run_dir_of(spec: str) -> str:
    """A run dir given as itself or as the path of its ``encoder.json``."""
    return os.path.dirname(spec) or "." if os.path.basename(spec) == META else spec


def is_run_dir(spec: str) -> bool:
    return os.path.isfile(os.path.join(run_dir_of(spec), META))


def make_meta(encoder: str, kwargs: dict[str, Any], frontend: dict[str, Any], input_norm: dict[str, Any] | None,
              method: str, step: int, embedding_dim: int) -> dict[str, Any]:
    return {"format_version": FORMAT_VERSION, "encoder": encoder, "kwargs": kwargs, "frontend": frontend,
            "input_norm": input_norm, "method": method, "step": int(step), "embedding_dim": int(embedding_dim)}


def validate_meta(meta: Any, where: str) -> dict[str, Any]:
    """``meta`` if it is a valid ``encoder.json`` object, else ``ValueError`` with a one-line reason."""
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        got = meta.get("format_version") if isinstance(meta, dict) else meta
        raise ValueError(f"{where}: unsupported encoder format {got!r} (this version reads {FORMAT_VERSION})")
    if not isinstance(meta.get("encoder"), str) or not isinstance(meta.get("kwargs"), dict):
        raise ValueError(f"{where}: 'encoder' must be a name and 'kwargs' an object")
    if not isinstance(meta.get("frontend"), dict):
        raise ValueError(f"{where}: missing frontend config")
    for k, v in meta["kwargs"].items():
        if not isinstance(v, _KWARG_TYPES):
            raise ValueError(f"{where}: kwarg {k!r} has unsupported type {type(v).__name__}")
    if not check_input_norm(meta.get("input_norm")):
        raise ValueError(f"{where}: input_norm must be null, {{mean, std}} or {{type: per_example}}")
    return meta


def write_run(run_dir: str, state: dict[str, torch.Tensor], meta: dict[str, Any]) -> str:
    """Write weights, then the validated ``encoder.json``, each atomically; returns the JSON's path."""
    from safetensors.torch import save

    path = os.path.join(run_dir, META)
    validate_meta(meta, path)
    os.makedirs(run_dir, exist_ok=True)
    atomic_write_bytes(os.path.join(run_dir, WEIGHTS), save({k: v.detach().cpu().contiguous() for k, v in state.items()}))
    atomic_write_json(path, meta)
    return path


def read_meta(run_dir: str) -> dict[str, Any]:
    """The validated ``encoder.json`` of ``run_dir`` (or of the ``encoder.json`` path given)."""
    path = os.path.join(run_dir_of(run_dir), META)
    try:
        with open(path) as f:
            meta = json.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"{run_dir_of(run_dir)} holds no {META}: not an exported melstream encoder") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: invalid JSON ({e})") from None
    return validate_meta(meta, path)


def read_safetensors(path: str, what: str = "weights") -> dict[str, torch.Tensor]:
    """Every tensor of a ``.safetensors`` file (on CPU), or one-line errors naming the file
    (missing, truncated, not safetensors)."""
    from safetensors.torch import load_file

    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path}: no such file")
    try:
        return load_file(path, device="cpu")
    except Exception as e:  # noqa: BLE001 - SafetensorError (truncated, garbage header), OSError: one line
        why = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ValueError(f"{what} {path}: not a readable safetensors file ({why})") from None


def read_weights(run_dir: str) -> dict[str, torch.Tensor]:
    """The encoder state dict (on CPU); a leading ``encoder.`` on every key (a whole objective's
    encoder saved by hand) is dropped."""
    state = read_safetensors(os.path.join(run_dir_of(run_dir), WEIGHTS), "encoder weights")
    if state and all(k.startswith("encoder.") for k in state):
        state = {k[len("encoder."):]: v for k, v in state.items()}
    return state
