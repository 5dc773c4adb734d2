"""Checkpoints: ``accelerator.save_state`` into ``out/checkpoints/step_XXXXXXX``, written atomically.

The state goes to a temp directory that is renamed when complete; ``latest`` (a small text file,
replaced atomically) names the newest finished checkpoint; only the newest ``keep_last`` are kept.
Loading goes through ``accelerator.load_state`` (torch.load with ``weights_only=True`` in
accelerate; model weights as safetensors).  A half-written checkpoint is never named by ``latest``.

``COMPLETE``, written last, is a small index: the step and the size and SHA-256 of every file of the
checkpoint.  ``--resume`` (:func:`load_newest`) checks it and falls back to the previous complete
checkpoint, with a warning, when a file was truncated or changed afterwards (a full disk, a copy cut
short); a checkpoint that is intact but does not load is "unreadable" (then also skipped) or "does not
fit this configuration" (an error: changed method, encoder or optimiser).  Checkpoints written before
the index (``COMPLETE`` holding only the step) are accepted as they are.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from typing import Any

from shards.atomic import atomic_write_bytes

log = logging.getLogger("melstream.train")

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
        with open(p, "rb") as f:
            name = f.read(64).decode("ascii", "replace").strip()
        m = _STEP_RE.match(name)
        if m and os.path.isfile(os.path.join(root, name, "COMPLETE")):
            return int(m.group(1)), os.path.join(root, name)
    found = list_checkpoints(out)
    return found[-1] if found else None


def save_checkpoint(accelerator, out: str, step: int, keep_last: int, extra_json: dict[str, Any] | None = None) -> str:
    """All ranks call this (save_state gathers per-rank RNG states); the main process renames.
    ``extra_json``: ``{file name: object}`` written into the checkpoint (and its index) by the main process."""
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
        for fn, obj in (extra_json or {}).items():
            atomic_write_bytes(os.path.join(tmp, fn), (json.dumps(obj, indent=1) + "\n").encode())
        index = {"step": int(step), "files": _file_index(tmp)}
        atomic_write_bytes(os.path.join(tmp, "COMPLETE"), (json.dumps(index, indent=1) + "\n").encode())
        if os.path.exists(final):
            shutil.rmtree(final)
        os.replace(tmp, final)
        atomic_write_bytes(os.path.join(root, "latest"), (name + "\n").encode())
        for _, path in list_checkpoints(out)[:-keep_last]:
            shutil.rmtree(path, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def _file_index(ckpt: str) -> dict[str, dict[str, Any]]:
    """``relative path -> {bytes, sha256}`` of every file under ``ckpt`` (but ``COMPLETE``)."""
    out = {}
    for dirpath, _, files in os.walk(ckpt):
        for fn in sorted(files):
            p = os.path.join(dirpath, fn)
            rel = os.path.relpath(p, ckpt)
            if rel != "COMPLETE":
                out[rel] = {"bytes": os.path.getsize(p), "sha256": _sha256(p)}
    return dict(sorted(out.items()))


def check_checkpoint(ckpt: str) -> str | None:
    """``None`` when every file the ``COMPLETE`` index lists is there with its size and SHA-256, else
    what is wrong (one line).  A legacy ``COMPLETE`` (just the step) is trusted."""
    try:
        with open(os.path.join(ckpt, "COMPLETE"), encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        return f"no readable COMPLETE marker ({e})"
    if text.strip().isdigit():  # written before the index: trusted as it is
        return None
    try:
        index = json.loads(text)
    except json.JSONDecodeError:
        return "COMPLETE marker is neither an index nor a step"
    files = index.get("files") if isinstance(index, dict) else None
    if not isinstance(files, dict) or not files:
        return "COMPLETE index lists no files"
    for rel, want in files.items():
        p = os.path.join(ckpt, rel)
        if not isinstance(want, dict) or os.path.isabs(rel) or ".." in rel.split(os.sep):
            return f"COMPLETE index entry {rel!r} is invalid"
        if not os.path.isfile(p):
            return f"{rel} is missing"
        size = os.path.getsize(p)
        if size != want.get("bytes"):
            return f"{rel} is {size} bytes, the index says {want.get('bytes')} (truncated or changed)"
        if _sha256(p) != want.get("sha256"):
            return f"{rel} does not match its SHA-256 in the index (changed after it was written)"
    return None


def _unreadable(e: BaseException) -> bool:
    """A load failure that means damaged bytes (not a checkpoint of another configuration)."""
    if isinstance(e, (EOFError, OSError)) or type(e).__name__ in ("SafetensorError", "UnpicklingError"):
        return True
    msg = str(e).lower()
    return any(w in msg for w in ("zip archive", "central directory", "failed reading", "truncat", "invalid load key",
                                  "unexpected end", "header", "incomplete", "corrupt"))


def candidates(out: str) -> list[tuple[int, str]]:
    """Complete checkpoints, newest first (the one ``latest`` names leads)."""
    found = list_checkpoints(out)[::-1]
    first = latest_checkpoint(out)
    if first is not None and first in found:
        found.remove(first)
        found.insert(0, first)
    return found


def load_newest(accelerator, out: str) -> tuple[int, str] | None:
    """Load the newest checkpoint of ``out`` that is intact and readable; ``None`` when there is none.

    A checkpoint whose files do not match its index, or that fails to load as damaged bytes, is skipped
    with a warning and the previous one is tried; one that loads but does not fit the model or
    optimiser is an error (``ValueError``), as falling back would silently train something else."""
    tried = []
    for step, path in candidates(out):
        problem = check_checkpoint(path)
        if problem is None:
            try:
                accelerator.load_state(path)
                return step, path
            except Exception as e:  # noqa: BLE001 - sorted into damaged vs. does-not-fit below
                line = f"{type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e).strip() else ''}"
                if not _unreadable(e):
                    raise ValueError(f"--resume: checkpoint {path} does not fit this configuration (changed method, "
                                     f"encoder, heads or optimiser?): {line}") from None
                problem = f"unreadable ({line})"
        log.warning("--resume: skipping checkpoint %s: %s; trying the previous one", path, problem)
        tried.append(f"{os.path.basename(path)}: {problem}")
    if tried:
        raise ValueError(f"--resume: no intact checkpoint in {ckpt_root(out)} ({'; '.join(tried)[:400]})")
    return None
