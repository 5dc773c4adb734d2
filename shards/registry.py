"""One name -> object registry for every pluggable kind (encoders, decoders, objectives, samplers,
eval tasks, ingest sources).

    ENCODERS = Registry("encoder", package="models.encoders")

    @ENCODERS.register("mobile")
    class Mobile(Encoder): ...

    ENCODERS.get("mobile")     # the class; unknown names raise UnknownNameError listing the known ones
    ENCODERS.names()           # sorted names
    Mobile.name                # "mobile": a registered class learns its name

This decorator is the one way to register, for all six kinds; what else a kind needs (a source's
``help``, a task's ``family``) is a class attribute of the decorated class.  ``register`` refuses a
name twice.  With ``package=``, the first lookup imports every module of that
package's folder (auto-discovery), so adding an implementation is adding one file.  A ``Registry`` is a
read-only mapping (``name in R``, ``R[name]``, ``sorted(R)``, ``R.items()``).  It lives in ``shards``, the
bottom of the import graph, because every package uses it; it imports nothing else of ours.
"""
from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator, Mapping
from typing import Callable, Generic, TypeVar

T = TypeVar("T")
O = TypeVar("O")

__all__ = ["Registry", "UnknownNameError", "DuplicateNameError"]


class UnknownNameError(KeyError, ValueError):
    """An unknown registry name (a ``KeyError`` and a ``ValueError``, so either ``except`` catches it)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(ValueError):
    """A name registered twice."""


class Registry(Mapping[str, T], Generic[T]):
    """Name -> implementation for one ``kind``; ``package`` (dotted) is imported module by module on
    first lookup, which registers what its modules define."""

    def __init__(self, kind: str, package: str | None = None) -> None:
        self.kind, self.package = kind, package
        self._items: dict[str, T] = {}
        self._discovered = package is None

    # ------------------------------------------------------------------ registration
    def add(self, name: str, obj: T) -> T:
        """The lower level of :meth:`register` (no ``name`` set): for a test's temporary entry, with :meth:`remove`."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if name in self._items:
            raise DuplicateNameError(f"{self.kind} {name!r} registered twice")
        self._items[name] = obj
        return obj

    def register(self, name: str) -> Callable[[O], O]:
        """Decorator: ``@R.register("name")`` adds the decorated object under ``name``.  A class also gets
        ``cls.name = name``; a class whose own body sets another ``name`` is refused (one name, one place)."""

        def deco(obj: O) -> O:
            if isinstance(obj, type):
                own = obj.__dict__.get("name")
                if isinstance(own, str) and own and own != name:
                    raise ValueError(f"{self.kind} {obj.__name__} sets name={own!r} but is registered as {name!r}")
            self.add(name, obj)  # type: ignore[arg-type]
            if isinstance(obj, type):
                setattr(obj, "name", name)
            return obj

        return deco

    def remove(self, name: str) -> None:
        """Drop ``name`` (tests that register a temporary implementation)."""
        self._items.pop(name, None)

    # ------------------------------------------------------------------ lookup
    def discover(self) -> None:
        """Import every module of ``package`` (names starting with ``_`` are skipped)."""
        if self._discovered:
            return
        self._discovered = True
        assert self.package is not None
        pkg = importlib.import_module(self.package)
        for mod in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{self.package}.{mod.name}")

    def get(self, name: str) -> T:  # type: ignore[override]
        """The implementation registered as ``name``; :class:`UnknownNameError` (one line) otherwise."""
        self.discover()
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._items))}") from None

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._items)

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        self.discover()
        return iter(list(self._items))

    def __len__(self) -> int:
        self.discover()
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._items)})"
