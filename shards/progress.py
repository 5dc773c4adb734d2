"""Progress bars of long jobs (ingest, training, embedding, fine-tuning): one rule for when they show.

A bar is shown on the main process when it is asked for (``--no-progress`` not given) and stderr is a
terminal; ``MELSTREAM_PROGRESS=1`` shows it anyway (logs of batch jobs), ``MELSTREAM_PROGRESS=0`` never.
Every bar is a ``tqdm`` with a total, so it shows the rate and an ETA; callers update it at least per
clip, batch or step, so that it moves at least every few seconds.  Every package may use this module
(``shards`` imports nothing else of ours).
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

from tqdm import tqdm

PROGRESS_ENV = "MELSTREAM_PROGRESS"

__all__ = ["PROGRESS_ENV", "progress_enabled", "progress_bar", "show_status"]
STATUS_EVERY_S = 0.5  # a status line is redrawn at most this often on a terminal
LOG_EVERY_S = 5.0  # and in a log file (MELSTREAM_PROGRESS=1 without a terminal)


def progress_enabled(requested: bool = True, main_process: bool = True) -> bool:
    """Whether to draw a bar: asked for, on the main process, and stderr a tty (or ``MELSTREAM_PROGRESS``)."""
    if not (requested and main_process):
        return False
    env = os.environ.get(PROGRESS_ENV, "").strip()
    if env in ("0", "1"):
        return env == "1"
    return _tty()


def progress_bar(total: float | None, desc: str, unit: str, enabled: bool = True, main_process: bool = True,
                 **kwargs: Any) -> Any:
    """A ``tqdm`` bar (disabled, i.e. a no-op, unless :func:`progress_enabled`); ``kwargs`` go to tqdm."""
    on = progress_enabled(enabled, main_process)
    kwargs.setdefault("mininterval", 0.1 if _tty() else LOG_EVERY_S)  # a log file gets a line every few seconds
    return tqdm(total=total, desc=desc, unit=unit, disable=not on, dynamic_ncols=True, **kwargs)


def _tty() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def show_status(bar: Any, text: str, force: bool = False) -> None:
    """``text`` after ``bar``'s counts, drawn at most every ``STATUS_EVERY_S`` seconds unless ``force``: cheap
    enough to call per step, so that a bar whose count moves slowly (epochs) still shows work going on."""
    bar.set_postfix_str(text, refresh=False)
    now = time.monotonic()
    if force or now - getattr(bar, "_status_drawn", 0.0) >= max(STATUS_EVERY_S, getattr(bar, "mininterval", 0.0)):
        bar._status_drawn = now
        bar.refresh()
