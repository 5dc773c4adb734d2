"""Numbers from outside (command-line flags, size specs) parsed by one typed parser with their bounds.

Each parser is a plain function ``text -> value`` that raises :class:`BoundError` (a ``ValueError``)
with a one-line reason, so it serves both as an argparse ``type=`` (argparse then prints
``error: argument --level: must be between 1 and 22, got 99``) and as a check of a value given
through the Python API (:func:`check_int`, :func:`check_float`, naming the flag)::

    p.add_argument("--level", type=bounded_int(1, 22), default=12)
    check_int(cfg.level, 1, 22, "--level")

Floats must be finite unless a bound says otherwise (``nan``, ``inf`` and ``1e999`` are refused).
Sizes accept ``123``, ``64KB``, ``200MB``, ``1.5GB`` (powers of 1000; ``KiB``/``MiB``/``GiB`` are
powers of 1024) and are bounded like any other number (``0MB`` is refused where a shard needs room).
"""
from __future__ import annotations

import argparse
import math
import re
from typing import Any, Callable, NoReturn

__all__ = ["BoundError", "bounded_int", "bounded_float", "size_bytes", "parse_int", "parse_float", "parse_size",
           "check_int", "check_float", "OneLineParser"]


class BoundError(argparse.ArgumentTypeError, ValueError):
    """A number from outside is malformed or out of its bounds; ``str(err)`` is the reason."""


def _range(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"between {lo:g} and {hi:g}" if isinstance(lo, float) or isinstance(hi, float) else f"between {lo} and {hi}"
    if lo is not None:
        return f">= {lo}"
    return f"<= {hi}"


def _prefix(flag: str | None) -> str:
    return f"{flag}: " if flag else ""


def check_int(value: Any, lo: int | None = None, hi: int | None = None, flag: str | None = None) -> int:
    """``value`` if it is an int (not a bool) in ``[lo, hi]``; else :class:`BoundError` naming ``flag``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BoundError(f"{_prefix(flag)}expected an integer, got {value!r}")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise BoundError(f"{_prefix(flag)}must be {_range(lo, hi)}, got {value}")
    return value


def check_float(value: Any, lo: float | None = None, hi: float | None = None, flag: str | None = None,
                allow: tuple[float, ...] = ()) -> float:
    """``value`` as a finite float in ``[lo, hi]`` (or one of ``allow``, e.g. ``0.0`` for "off")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BoundError(f"{_prefix(flag)}expected a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise BoundError(f"{_prefix(flag)}must be a finite number, got {value!r}")
    if v in allow:
        return v
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        extra = "".join(f" (or {a:g})" for a in allow)
        raise BoundError(f"{_prefix(flag)}must be {_range(lo, hi)}{extra}, got {value!r}")
    return v


def parse_int(text: str, lo: int | None = None, hi: int | None = None, flag: str | None = None) -> int:
    """An integer written in decimal (``"12"``, ``"-3"``; not ``"1e3"``, ``"0x10"`` or ``"12.0"``), bounded."""
    s = str(text).strip()
    if not re.fullmatch(r"[+-]?\d{1,19}", s):
        raise BoundError(f"{_prefix(flag)}expected an integer, got {text!r}")
    return check_int(int(s), lo, hi, flag)


def parse_float(text: str, lo: float | None = None, hi: float | None = None, flag: str | None = None,
                allow: tuple[float, ...] = ()) -> float:
    """A finite decimal number, bounded."""
    try:
        v = float(str(text).strip())
    except ValueError:
        raise BoundError(f"{_prefix(flag)}expected a number, got {text!r}") from None
    if not math.isfinite(v):
        raise BoundError(f"{_prefix(flag)}must be a finite number, got {text!r}")
    return check_float(v, lo, hi, flag, allow)


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?)([bB]?)\s*$")
_UNIT = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str, lo: int | None = None, hi: int | None = None, flag: str | None = None) -> int:
    """Bytes of a size: ``"200MB"`` -> 200_000_000, ``"64KiB"`` -> 65536, ``"123"`` -> 123, bounded."""
    m = _SIZE_RE.match(str(text))
    if not m or (m.group(3) and not m.group(2)):
        raise BoundError(f"{_prefix(flag)}expected a size such as 64KB, 200MB or 1GiB, got {text!r}")
    base = 1024 if m.group(3) else 1000
    n = float(m.group(1)) * base ** _UNIT[m.group(2).lower()]
    if not math.isfinite(n):
        raise BoundError(f"{_prefix(flag)}size {text!r} is too large")
    n_int = int(round(n))
    if (lo is not None and n_int < lo) or (hi is not None and n_int > hi):
        raise BoundError(f"{_prefix(flag)}must be {_range_size(lo, hi)}, got {str(text).strip()}")
    return n_int


def _range_size(lo: int | None, hi: int | None) -> str:
    def h(n: int) -> str:
        for unit, p in (("GB", 9), ("MB", 6), ("KB", 3)):
            if n >= 10 ** p and n % 10 ** p == 0:
                return f"{n // 10 ** p}{unit}"
        return f"{n} bytes"
    if lo is not None and hi is not None:
        return f"between {h(lo)} and {h(hi)}"
    return f">= {h(lo)}" if lo is not None else f"<= {h(hi or 0)}"


def _named(fn: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    fn.__name__ = name  # argparse names the type in "invalid <name> value" for other exceptions
    return fn


def bounded_int(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """argparse ``type=``: an integer in ``[lo, hi]``."""
    return _named(lambda s: parse_int(s, lo, hi), "int")


def bounded_float(lo: float | None = None, hi: float | None = None, allow: tuple[float, ...] = ()) -> Callable[[str], float]:
    """argparse ``type=``: a finite float in ``[lo, hi]`` (or one of ``allow``)."""
    return _named(lambda s: parse_float(s, lo, hi, allow=allow), "float")


def size_bytes(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """argparse ``type=``: a size in bytes (``64MB``) in ``[lo, hi]``."""
    return _named(lambda s: parse_size(s, lo, hi), "size")


class OneLineParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, ``error: --flag: why`` (exit status 2), without
    the usage block: the flag, what it must be and what was given say enough (``--help`` has the rest).
    Sub-parsers made with ``add_subparsers`` are of the same class."""

    def error(self, message: str) -> NoReturn:  # type: ignore[override]
        msg = " ".join(str(message).split())
        m = re.match(r"^argument ([^:]+): (.*)$", msg)
        if m:
            flag, why = m.group(1).split("/")[-1].strip(), m.group(2)
            why = why[len(flag) + 1:].lstrip() if why.startswith(flag + " ") or why.startswith(flag + ":") else why
            msg = f"{flag}: {why.lstrip(': ')}"
        self.exit(2, f"error: {msg}\n")
