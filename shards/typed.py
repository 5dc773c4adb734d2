"""Values from outside converted to declared types (dataclass fields, constructor signatures).

Generated from the type hints, not one ``if`` per field: a value is converted to the type of the
dataclass field or constructor parameter it is for, or refused with one line naming the field, the
expected type and what was given (:class:`ConfigError`).  Used for YAML configs and ``--hp`` /
``--encoder-arg`` / ``--sampler-arg`` values (``train/validate.py``) and for ``encoder.json`` kwargs
(``models.export.load_run``); part of ``shards`` so every package may use it.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import reprlib
import types
import typing
from collections.abc import Callable
from typing import Any


class ConfigError(ValueError):
    """A configuration value from outside is unusable; ``str(err)`` is the one-line reason."""


class _NotFinite(ConfigError):
    """nan / inf where a finite float is expected (kept through ``X | None`` as the better message)."""


# field -> (lowest, strictly greater?) or (lowest, strictly greater?, highest) or (..., highest, why): the
# bounds of TrainConfig and HParams fields; ``why`` ends the message of a value above ``highest``
Bound = tuple[Any, ...]

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 3, 6, 6, 6, 6
_REPR.maxstring, _REPR.maxother, _REPR.maxlong = 120, 120, 40


def short_repr(value: Any) -> str:
    """``repr(value)`` built with bounds (depth, items, string length): a value from outside may be a
    huge or deeply shared structure whose full ``repr`` would take gigabytes before it could be cut."""
    return _REPR.repr(value)


# constructor arguments that are sizes (frames, bins, widths, pools) must be >= 1 whatever the class:
# a negative one fails only later, deep in a worker (the sampler) or as "negative dimension" (a layer)
POSITIVE_KWARGS = ("n_frames", "n_mels", "d", "width", "head_dim", "features", "pool_size", "n_side",
                   "memory_size", "frames_per_chunk")
# ... and each has a ceiling: a width of 10**9 would allocate its weights before anything could refuse it
_SIZE_WHY = "a size this large would exhaust memory; docs/sharing.md"
KWARG_CEILINGS: dict[str, int] = {"n_frames": 100_000, "n_mels": 1024, "d": 65_536, "width": 65_536,
                                  "head_dim": 65_536, "features": 65_536, "pool_size": 4096, "n_side": 4096,
                                  "memory_size": 1 << 22, "frames_per_chunk": 100_000}
KWARG_BOUNDS: dict[str, Bound] = {n: (1, False, KWARG_CEILINGS.get(n), _SIZE_WHY) for n in POSITIVE_KWARGS}


def _type_name(t: Any) -> str:
    if t is type(None):
        return "null"
    if isinstance(t, type):
        return t.__name__
    return str(t).replace("typing.", "")


def coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` converted to ``hint`` (int, float, bool, str, ``X | None``, ``tuple[...]``, ``list[X]``,
    ``dict[str, X]``, ``Any``), or :class:`ConfigError` "<where>: expected <type>, got <value>"."""
    def bad() -> ConfigError:
        return ConfigError(f"{where}: expected {_type_name(hint)}, got {short_repr(value)}"[:300])

    if hint is Any or hint is inspect.Parameter.empty:
        return value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return coerce(value, a, where)
            except _NotFinite:
                raise
            except ConfigError:
                pass
        raise bad()
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise bad()
    if hint is int:
        if isinstance(value, bool):
            raise bad()
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise bad()
    if hint is float:  # finite only: nan / inf are refused wherever a float comes from outside
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise bad()
        try:
            number = float(value)
        except (ValueError, OverflowError):
            raise bad() from None
        if not math.isfinite(number):
            raise _NotFinite(f"{where}: expected a finite number, got {short_repr(value)}")
        return number
    if hint is str:
        if isinstance(value, str):
            return value
        raise bad()
    if origin in (tuple, list) or hint in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise bad()
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise bad()
            return tuple(coerce(v, a, where) for v, a in zip(value, args))
        item = args[0] if args else Any
        out = [coerce(v, item, where) for v in value]
        return tuple(out) if (origin or hint) is tuple else out
    if origin is dict or hint is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise bad()
        item = args[1] if len(args) == 2 else Any
        return {k: coerce(v, item, f"{where}.{k}") for k, v in value.items()}
    if isinstance(hint, type):
        if isinstance(value, hint):
            return value
        raise bad()
    return value  # an annotation we cannot check (a Protocol, a string we could not resolve)


def _check_bound(name: str, value: Any, bounds: dict[str, Bound], where: str) -> None:
    if name in bounds and isinstance(value, (int, float)) and not isinstance(value, bool):
        lo, strict, *upper = bounds[name]
        if value < lo or (strict and value == lo):
            raise ConfigError(f"{where}: must be {'>' if strict else '>='} {lo}, got {short_repr(value)}")
        hi = upper[0] if upper else None
        if hi is not None and value > hi:
            why = f" ({upper[1]})" if len(upper) > 1 and upper[1] else ""
            raise ConfigError(f"{where}: must be <= {hi}{why}, got {short_repr(value)}")


def check_fields(cls: type, values: dict[str, Any], where: Callable[[str], str],
                 bounds: dict[str, Bound] | None = None,
                 choices: dict[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    """``values`` for the dataclass ``cls``, each converted to its field's type and checked against
    ``bounds`` (lowest, and optionally highest: see :data:`Bound`) and ``choices``; ``where(name)`` names
    a field in messages (``"--hp lr"``, ``"cfg.yaml: steps"``).
    Unknown names are refused with the list of the known ones."""
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    out = {}
    for k, v in values.items():
        if k not in known:
            raise ConfigError(f"{where(k)}: unknown field; valid: {', '.join(known)}")
        out[k] = coerce(v, hints.get(k, Any), where(k))
        _check_bound(k, out[k], bounds or {}, where(k))
        if choices and k in choices and out[k] not in choices[k]:
            raise ConfigError(f"{where(k)}: must be one of {', '.join(choices[k])}, got {short_repr(out[k])}")
    return out


def signature_params(fn: Callable) -> dict[str, tuple[Any, Any]]:
    """``name -> (type hint, default)`` of the keyword arguments ``fn`` (a class or function) takes."""
    target: Callable = getattr(fn, "__init__") if isinstance(fn, type) else fn  # noqa: B009
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - an unresolvable annotation: fall back to the defaults' types
        hints = {}
    out = {}
    for p in list(inspect.signature(target).parameters.values()):
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        hint = hints.get(p.name, inspect.Parameter.empty)
        if hint is inspect.Parameter.empty and p.default not in (inspect.Parameter.empty, None):
            hint = type(p.default)
        out[p.name] = (hint, p.default)
    return out


def _kv(kwargs: dict[str, Any]) -> str:
    return " ".join(f"{k}={short_repr(v)}" if isinstance(v, str) else f"{k}={_short_str(v)}"
                    for k, v in list(kwargs.items())[:20])


def _short_str(v: Any) -> str:
    """``str(v)`` for scalars and (cut) strings, a bounded repr for anything else (lists, mappings)."""
    if isinstance(v, str):
        return v if len(v) <= 120 else v[:117] + "..."
    return str(v) if isinstance(v, (int, float, bool)) or v is None else short_repr(v)


def coerce_kwargs(ctors: list[Callable], kwargs: dict[str, Any], what: str, name: str) -> dict[str, Any]:
    """Keyword arguments for the constructors ``ctors`` (one encoder, or the parts of a composed
    sampler), converted to their parameter types; an unknown name is refused with the valid ones."""
    valid: dict[str, tuple[Any, Any]] = {}
    for c in ctors:
        valid.update(signature_params(c))
    out = {}
    for k, v in kwargs.items():
        if k not in valid:
            if len(ctors) > 1 and isinstance(v, dict):  # per-part options of a composed sampler
                out[k] = v
                continue
            raise ConfigError(f"{what} {k}={_short_str(v)}: {name} takes no argument {short_repr(k)}; "
                              f"valid: {', '.join(valid) or 'none'}")
        try:
            out[k] = coerce(v, valid[k][0], k)
            _check_bound(k, out[k], KWARG_BOUNDS, k)
        except ConfigError as e:
            raise ConfigError(f"{what} {k}={_short_str(v)}: {e}") from None
    return out


def build_checked(build: Callable[..., Any], name: str, kwargs: dict[str, Any], what: str,
                  shown: dict[str, Any] | None = None) -> Any:
    """``build(name, **kwargs)``, a constructor failure turned into one line ``"<what> d=-1: <why>"``
    (``shown``: the arguments to name, by default all of them)."""
    try:
        return build(name, **kwargs)
    except (TypeError, ValueError, RuntimeError, AssertionError, ZeroDivisionError, KeyError) as e:
        why = str(e.args[0] if isinstance(e, KeyError) and e.args else e).strip()
        why = why.splitlines()[0][:200] if why else type(e).__name__
        args = _kv(kwargs if shown is None else shown)
        raise ConfigError(f"{what} {args or '(defaults)'}: {why}") from None
