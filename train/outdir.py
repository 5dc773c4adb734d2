"""The run directory (``--out``): one writer at a time, finished work never replaced by accident.

* **One writer.** The main process holds ``shards.lock.DirLock(out, "run directory")`` from the first
  write to the end of the run; a second trainer on the same ``--out`` is refused with one line naming
  the holder (pid, host).  A lock left by a killed trainer is taken over (``flock`` dies with its
  process).  Other ranks never take it; they learn the main process's decision by a broadcast.
* **No silent overwrite.** A ``--out`` that holds a run (checkpoints, exported weights, config,
  metrics) is refused unless ``--resume`` (continue it) or ``--overwrite`` (delete the run's own files,
  never following a symlink out of the directory, and start afresh) is given.
* **Resume only the same run.** ``--resume`` compares the method, encoder, encoder arguments and
  frontend with the run's ``config.yaml`` (or ``encoder.json``) and refuses with one line saying what
  differs (``method differs: run has byol_a, asked for m2d``); hyperparameters may change.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from typing import Any, Callable

from shards.bounded import load_json_bounded, load_yaml_bounded
from shards.cli import error_line
from shards.lock import DirLock, LockHeld, read_holder

from .checkpoint import latest_checkpoint

log = logging.getLogger("melstream.train")

# what a training run writes into --out (tensorboard logs go to <out>/melstream: Accelerate's project dir)
RUN_ENTRIES = ("checkpoints", "encoder.safetensors", "encoder.json", "config.yaml", "metrics.jsonl",
               "run_summary.json", "budget.json", "melstream")
_TRASH = ".melstream-overwritten"


class RunDirRefused(ValueError):
    """The run directory may not be used as asked; ``str(err)`` is the one-line reason.  ``echo`` is
    False on the ranks that only repeat the main process's refusal (it prints it once)."""

    def __init__(self, msg: str, echo: bool = True) -> None:
        super().__init__(msg)
        self.echo = echo


def present(out: str) -> list[str]:
    """The entries of :data:`RUN_ENTRIES` that exist in ``out`` (symlinks included, not followed)."""
    return [n for n in RUN_ENTRIES if os.path.lexists(os.path.join(out, n))]


def saved_config(out: str) -> dict[str, Any]:
    """What the run in ``out`` was: ``method``, ``encoder``, ``encoder_kwargs``, ``frontend`` from its
    ``config.yaml``, else from ``encoder.json``; ``{}`` when neither is readable (read with bounds)."""
    for name, read in (("config.yaml", load_yaml_bounded), ("encoder.json", load_json_bounded)):
        path = os.path.join(out, name)
        if not os.path.isfile(path):
            continue
        try:
            data = read(path)
        except (OSError, ValueError) as e:
            log.warning("%s: unreadable (%s)", path, str(e).splitlines()[0][:200] if str(e) else type(e).__name__)
            continue
        if not isinstance(data, dict):
            continue
        kwargs = data.get("encoder_kwargs", data.get("kwargs"))
        return {k: v for k, v in (("method", data.get("method")), ("encoder", data.get("encoder")),
                                  ("encoder_kwargs", kwargs), ("frontend", data.get("frontend"))) if v is not None}
    return {}


def describe_run(out: str) -> str | None:
    """``None`` when ``out`` holds no run; else e.g. ``a temporal_gap run at step 300 (checkpoints,
    encoder.safetensors)``: only what is really there."""
    there = present(out)
    if not there:
        return None
    method = saved_config(out).get("method")
    what = f"a {method} run" if isinstance(method, str) and method else "a run"
    found = latest_checkpoint(out) if "checkpoints" in there else None
    step: Any = found[0] if found else None
    if step is None and "encoder.json" in there:
        try:
            meta = load_json_bounded(os.path.join(out, "encoder.json"))
            step = meta.get("step") if isinstance(meta, dict) and isinstance(meta.get("step"), int) else None
        except (OSError, ValueError):
            step = None
    at = f" at step {step}" if step is not None else " with no checkpoint yet"
    return f"{what}{at} ({', '.join(there)})"


def _norm(v: Any) -> Any:
    """JSON-equal form (tuples as lists) for comparing what was saved with what is asked."""
    return json.loads(json.dumps(v, sort_keys=True, default=str))


def _frontend_text(fe: Any) -> str:
    if not isinstance(fe, dict):
        return repr(fe)[:80]
    return f"{fe.get('name', '?')} ({fe.get('n_mels', '?')} mels)"


def resume_differences(saved: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """``"<what> differs: run has X, asked for Y"`` for each of method, encoder, encoder_kwargs and
    frontend that ``asked`` names and the saved run disagrees with."""
    diffs = []
    for key in ("method", "encoder", "encoder_kwargs", "frontend"):
        if key not in asked or key not in saved or _norm(saved[key]) == _norm(asked[key]):
            continue
        have, want = saved[key], asked[key]
        if key == "frontend":
            ks = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k)) \
                if isinstance(have, dict) and isinstance(want, dict) else []
            detail = f"; differing: {', '.join(ks[:4])}" if ks else ""
            diffs.append(f"frontend differs: run has {_frontend_text(have)}, the shards have {_frontend_text(want)}{detail}")
        elif key == "encoder_kwargs" and isinstance(have, dict) and isinstance(want, dict):
            ks = sorted(k for k in set(have) | set(want) if _norm(have.get(k)) != _norm(want.get(k)))
            pairs = ", ".join(f"{k}={have.get(k, '(default)')!r} vs {want.get(k, '(default)')!r}" for k in ks[:4])
            diffs.append(f"encoder arguments differ: {pairs} (run vs asked)")
        else:
            diffs.append(f"{key} differs: run has {have}, asked for {want}")
    return diffs


def check_resume(out: str, asked: dict[str, Any]) -> None:
    """:class:`RunDirRefused` when the run in ``out`` is not the one ``asked`` describes."""
    diffs = resume_differences(saved_config(out), asked)
    if diffs:
        raise RunDirRefused(f"--resume {out}: {'; '.join(diffs)}; resume with the run's own settings, "
                            f"or train into another --out")


def clear_run(out: str) -> list[str]:
    """Delete the run's own entries (:data:`RUN_ENTRIES`) from ``out``; other files stay.  Each entry is
    first renamed into a trash folder inside ``out`` (a rename moves a symlink, never its target), then
    the folder is removed with ``shutil.rmtree``, which unlinks symlinks without following them."""
    there = present(out)
    trash = os.path.join(out, f"{_TRASH}.{os.getpid()}")
    os.makedirs(trash, exist_ok=True)
    for name in there:
        os.replace(os.path.join(out, name), os.path.join(trash, name))
    for name in os.listdir(out):  # trash of an earlier --overwrite that was killed half-way
        p = os.path.join(out, name)
        if name.startswith(_TRASH) and not os.path.islink(p) and os.path.isdir(p):
            shutil.rmtree(p)
    return there


def claim(out: str, resume: bool, overwrite: bool, asked: dict[str, Any]) -> DirLock:
    """Take the run directory for this process (main process only): the lock, then what is there.

    Returns the held lock; raises :class:`RunDirRefused` (the lock released) when another trainer holds
    it, when ``out`` holds a run and neither ``resume`` nor ``overwrite`` is given, or when a resumed run
    does not match ``asked``.  With ``overwrite``, the old run's entries are deleted."""
    lock = DirLock(out, "run directory", hint="wait for it to finish, or pass another --out")
    try:
        lock.acquire()
    except LockHeld as e:
        rec = read_holder(lock.path)
        if rec.get("host") == socket.gethostname() and isinstance(rec.get("pid"), int) and not _alive(rec["pid"]):
            # flock is shared with forked children: a killed trainer's DataLoader workers hold it a little longer
            raise RunDirRefused(f"--out {out}: run directory {out} was held by pid {rec['pid']} on host {rec['host']}, "
                                f"which is no longer running; processes it started (DataLoader workers exit within "
                                f"seconds of their parent) still hold the lock: try again shortly") from None
        raise RunDirRefused(f"--out {out}: {e}") from None
    try:
        held = describe_run(out)
        if resume:
            check_resume(out, asked)
        elif held and not overwrite:
            raise RunDirRefused(f"--out {out}: holds {held}; pass --resume to continue it or --overwrite to "
                                f"replace it")
        elif held:
            clear_run(out)
            log.warning("--overwrite: deleted %s from %s", held, out)
    except BaseException:
        lock.release()
        raise
    return lock


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, another user's
        return True
    return True


def main_decides(acc: Any, decide: Callable[[], Any]) -> Any:
    """``decide()`` on the main process; a :class:`RunDirRefused` there is raised on every rank (the
    others with ``echo=False``), so no rank waits for a peer that has stopped.  Returns what
    ``decide`` returned on the main process (``None`` elsewhere)."""
    result, refusal = None, None
    if acc.is_main_process:
        try:
            result = decide()
        except RunDirRefused as e:
            refusal = str(e)
        except Exception as e:  # noqa: BLE001 - any failure here must reach the other ranks too
            refusal = error_line(e, "run directory").removeprefix("error: ")
    if acc.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        box = [refusal]
        broadcast_object_list(box, from_process=0)
        refusal = box[0]
    if refusal is not None:
        raise RunDirRefused(refusal, echo=acc.is_main_process)
    return result
