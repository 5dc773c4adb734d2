"""Checkpoints: ``accelerator.save_state`` into ``out/checkpoints/step_XXXXXXX``, written atomically.

The state goes to a temp directory that is renamed when complete; ``latest`` (a small text file,
replaced atomically) names the newest finished checkpoint; only the newest ``keep_last`` are kept.
Loading goes through ``accelerator.load_state`` (torch.load with ``weights_only=True`` in
accelerate; model weights as safetensors).  A half-written checkpoint is never named by ``latest``.
"""
from __future__ import annotations

import os
import re
import shutil

from shards.atomic import atomic_write_bytes

_STEP_RE = re.compile(r"^step_(\d{7,})$")


def ckpt_root(out: str) -> str:
    return os.path.join(out, "checkpoints")


def list_checkpoints(out: str) -> list[tuple[int, str]]:
    root = ckpt_root(out)
    if not os.path.isdir(root):
        return []
    found = []
    for name in os.listdir(root):
        m = _STEP_RE.match(name)
        if m and os.path.isfile(os.path.join(root, name, "COMPLETE")):
            found.append((int(m.group(1)), os.path.join(root, name)))
    return sorted(found)


def latest_checkpoint(out: str) -> tuple[int, str] | None:
    root = ckpt_root(out)
    p = os.path.join(root, "latest")
    if os.path.isfile(p):
        name = open(p).read().strip()
        m = _STEP_RE.match(name)
        if m and os.path.isfile(os.path.join(root, name, "COMPLETE")):
            return int(m.group(1)), os.path.join(root, name)
    found = list_checkpoints(out)
    return found[-1] if found else None


def save_checkpoint(accelerator, out: str, step: int, keep_last: int) -> str:
    """All ranks call this (save_state gathers per-rank RNG states); the main process renames."""
    root = ckpt_root(out)
    name = f"step_{step:07d}"
    final = os.path.join(root, name)
    tmp = os.path.join(root, f".{name}.tmp")
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(tmp, safe_serialization=True)
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_bytes(os.path.join(tmp, "COMPLETE"), f"{step}\n".encode())
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
        atomic_write_bytes(os.path.join(root, "latest"), (name + "\n").encode())
        for _, path in list_checkpoints(out)[:-keep_last]:
            shutil.rmtree(path, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final
