"""The CLI boundary: every exception that reaches a command's ``main`` becomes one line on stderr.

``error: <what>: <why>`` and exit status 2, whatever the exception (bad YAML, a truncated file, a
wrong-typed flag, a bug), with secrets (URL userinfo, signed-URL tokens) redacted.  ``MELSTREAM_DEBUG=1`` re-raises instead, for the full traceback.
``SystemExit`` with a number (argparse, ``--help``) passes through; with a message
(``raise SystemExit("error: ...")``) it is printed once and gives 2.  Ctrl-C gives 130.

Every package may use this module (``shards`` imports nothing else of ours)::

    @cli_main("python -m ingest")
    def main(argv=None, prog="python -m ingest") -> int: ...

A ``prog=`` keyword (``melstream ingest`` calls ``main(argv, prog="melstream ingest")``) names the
command in its error lines instead of ``what``.
"""
from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

from .redact import redact

DEBUG_ENV = "MELSTREAM_DEBUG"
EXIT_USAGE = 2
_MAX = 400


def debug() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _first_line(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= _MAX else line[:_MAX - 3] + "..."


def error_line(exc: BaseException, what: str) -> str:
    """``error: <what>: <why>`` for ``exc``; ``what`` is the command unless the exception names a file
    (``OSError.filename``) or its message already starts with the thing it is about (``x: why``)."""
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"error: {exc.filename}: {exc.strerror or _first_line(str(exc))}"
    msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    why = _first_line(str(msg))
    why = why.removeprefix("error: ")
    if not isinstance(exc, (ValueError, LookupError, OSError)):  # not a message written for users: name its type
        why = f"{type(exc).__name__}: {why}" if why else type(exc).__name__
    elif ": " in why[:160]:  # already "<what>: <why>"
        return f"error: {why}"
    return f"error: {what}: {why or type(exc).__name__}"


def run_main(fn: Callable[..., int], argv: list[str] | None, what: str, **kwargs: Any) -> int:
    """Call ``fn(argv, **kwargs)`` behind the boundary (see the module docstring)."""
    try:
        return fn(argv, **kwargs)
    except SystemExit as e:
        if isinstance(e.code, str):
            if debug():
                raise
            print(redact(error_line(ValueError(e.code), what)), file=sys.stderr)
            return EXIT_USAGE
        raise
    except KeyboardInterrupt:
        if debug():
            raise
        print(f"error: {what}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the one place that turns any failure into one line
        if debug():
            raise
        print(redact(error_line(e, what)), file=sys.stderr)
        return EXIT_USAGE


def cli_main(what: str) -> Callable[[Callable[..., int]], Callable[..., int]]:
    """Decorator for a command's ``main(argv=None) -> int``: runs it behind :func:`run_main`."""

    def deco(fn: Callable[..., int]) -> Callable[..., int]:
        @functools.wraps(fn)
        def wrapper(argv: list[str] | None = None, **kwargs: Any) -> int:
            return run_main(fn, argv, kwargs.get("prog") or what, **kwargs)  # a `prog=` names the command

        wrapper.unwrapped = fn  # type: ignore[attr-defined]
        return wrapper

    return deco
