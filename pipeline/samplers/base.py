"""Sampler protocol, registry and composition.

A sampler turns one clip's log-mel into training examples::

    out = sampler(mel, meta, rng)   # mel: np.float32 [F, T] or a lazy tario.Clip; rng: np.random.Generator
    # out: dict of np arrays (one example), a list of them, or None (nothing yet: triplet waits for a
    # second clip to draw a negative from)

Per-example arrays have no batch axis: inputs are ``[1, F, N]``, targets scalars.  Optional hooks:

* ``bind(facts)`` -- gets the merged manifest facts (frontend, mean/std, vocabulary) before use;
* ``flush(rng)`` -- end of a finite stream (evaluation): emit what is still held back;
* ``collate(batch, rng)`` -- batch-level transform on the stacked numpy batch, run in the DataLoader
  worker right after collation (post-normalisation of ``views``, example mixing of ``mix_views``);
* ``augment(example, clip, rng)`` -- add-ons (``pitch_shift``) that compose onto another sampler with
  ``build_sampler('clip_pair+pitch_shift')``;
* ``device_transform()`` -- a torch module the trainer applies on its device, when the sampler was
  asked to leave its augmentations to the device (``views`` with ``augment_on='device'``); samplers
  that can (``device_augment = True``) take ``augment_on='auto'``, which the trainer settles with
  :func:`resolve_augment_on`.

State (mixup memory, triplet pool) lives in the sampler object, i.e. per DataLoader worker.
"""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from shards.registry import Registry

SAMPLERS: Registry[type["Sampler"]] = Registry("sampler", package="pipeline.samplers")


def take(mel: Any, start: int, n: int) -> np.ndarray:
    """Frames ``[start, start + n)`` of ``mel`` as float32 ``[F, n]``; frames outside the clip are zero."""
    total = int(mel.shape[1])
    a, b = max(start, 0), min(start + n, total)
    if a == start and b == start + n:
        if isinstance(mel, np.ndarray):
            return np.array(mel[:, a:b], dtype=np.float32, order="C")  # a copy: never a view of the clip
        return mel[:, a:b]
    out = np.zeros((int(mel.shape[0]), n), dtype=np.float32)
    if b > a:
        out[:, a - start:b - start] = mel[:, a:b]
    return out


def random_start(total: int, n: int, rng: np.random.Generator) -> int:
    """Uniform start of an ``n``-frame crop; a shorter clip is centred (zero-padded head and tail,
    as Niizumi et al. 2021 Sec. IV-A1 pad short clips)."""
    if total <= n:
        return -((n - total) // 2)
    return int(rng.integers(0, total - n + 1))


class Sampler:
    """Base class; subclasses get ``name`` from ``@SAMPLERS.register("name")`` and ``keys`` (the batch keys)."""

    name = ""
    keys: tuple[str, ...] = ()
    n_frames = 96
    device_augment = False  # True: takes augment_on='auto' | 'worker' | 'device' (resolve_augment_on)
    stateful = False  # True: examples depend on earlier clips of the same worker (mixup memory, triplet pool)

    @property
    def provides(self) -> tuple[str, ...]:
        """Batch keys the model finally sees: ``keys``, or what ``device_transform`` turns them into."""
        return tuple(getattr(self, "device_keys", None) or self.keys) if self.device_transform() is not None \
            else tuple(self.keys)

    def __init__(self, normalize: bool = False):
        self.normalize = bool(normalize)
        self.mean, self.std = 0.0, 1.0
        self.frontend: dict[str, Any] = {}
        self.vocabulary: list[str] = []

    def bind(self, facts: Any) -> None:
        self.mean, self.std = float(facts.mean), float(facts.std)
        self.frontend = dict(facts.frontend)
        self.vocabulary = list(facts.vocabulary)

    def norm(self, x: np.ndarray) -> np.ndarray:
        if not self.normalize:
            return x
        return ((x - np.float32(self.mean)) * np.float32(1.0 / max(self.std, 1e-8))).astype(np.float32, copy=False)

    def crop(self, mel: Any, rng: np.random.Generator, n: int | None = None) -> np.ndarray:
        n = self.n_frames if n is None else n
        return take(mel, random_start(int(mel.shape[1]), n, rng), n)

    @property
    def min_frames(self) -> int:
        return self.n_frames

    @property
    def input_norm(self) -> dict[str, Any] | None:
        """What the encoder input went through, for ``encoder.json`` ``input_norm`` at export."""
        return {"mean": self.mean, "std": self.std} if self.normalize else None

    def __call__(self, mel: Any, meta: dict, rng: np.random.Generator):
        raise NotImplementedError

    def flush(self, rng: np.random.Generator) -> list[dict]:
        return []

    def collate(self, batch: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
        return batch

    def device_transform(self):
        return None

    def config(self) -> dict[str, Any]:
        sig = inspect.signature(type(self).__init__)
        return {k: getattr(self, k) for k in sig.parameters if k != "self" and hasattr(self, k)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config()})"


class Composed(Sampler):
    """``base + add-ons``: the base sampler makes the example, each add-on's ``augment`` adds keys."""

    def __init__(self, base: Sampler, addons: list[Sampler]):
        self.base = base
        self.addons = addons
        self.name = "+".join([base.name] + [a.name for a in addons])
        self.keys = tuple(base.keys) + tuple(k for a in addons for k in a.addon_keys)
        self.n_frames = base.n_frames
        for a in addons:
            if not hasattr(a, "augment"):
                raise ValueError(f"sampler {a.name!r} cannot be composed onto another one")

    def bind(self, facts: Any) -> None:
        self.base.bind(facts)
        for a in self.addons:
            a.bind(facts)

    @property
    def min_frames(self) -> int:
        return self.base.min_frames

    @property
    def stateful(self) -> bool:  # type: ignore[override]
        return bool(self.base.stateful)

    @property
    def input_norm(self):
        return self.base.input_norm

    def _augment(self, ex, mel, rng):
        if ex is None:
            return None
        if isinstance(ex, list):
            return [self._augment(e, mel, rng) for e in ex]
        for a in self.addons:
            ex = a.augment(ex, mel, rng)
        return ex

    def __call__(self, mel, meta, rng):
        return self._augment(self.base(mel, meta, rng), mel, rng)

    def flush(self, rng):
        return [self._augment(e, None, rng) for e in self.base.flush(rng)]

    def collate(self, batch, rng):
        batch = self.base.collate(batch, rng)
        for a in self.addons:
            batch = a.collate_addon(batch, rng) if hasattr(a, "collate_addon") else batch
        return batch

    def device_transform(self):
        return self.base.device_transform()

    def config(self) -> dict[str, Any]:
        return {self.base.name: self.base.config(), **{a.name: a.config() for a in self.addons}}

    def __repr__(self) -> str:
        return f"Composed({self.name}, {self.config()})"


def _accepts(cls: type, key: str) -> bool:
    params = inspect.signature(cls.__init__).parameters
    return key in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def resolve_augment_on(name: str, kw: dict[str, Any], device_type: str) -> dict[str, Any]:
    """``kw`` with ``augment_on='auto'`` (given or the sampler's default) settled for a training device:
    ``'device'`` on CUDA, where the GPU runs the batched augmentations for next to nothing and each
    DataLoader worker only reads, crops and pre-normalises (``make bench-pipeline``: about twice the
    examples per worker for ``views``), ``'worker'`` elsewhere, where the workers run them in parallel
    beside the training process.  Samplers without ``device_augment`` and explicit values pass unchanged."""
    base = str(name).split("+")[0].strip()
    if not getattr(SAMPLERS.get(base), "device_augment", False) or kw.get("augment_on", "auto") != "auto":
        return kw
    return {**kw, "augment_on": "device" if device_type == "cuda" else "worker"}


def build_sampler(name: str, **kw: Any) -> Sampler:
    """``build_sampler('crop', n_frames=96)``; compose with ``'+'``: ``build_sampler('clip_pair+pitch_shift')``.

    For a composition, ``kw`` may hold per-part dicts keyed by part name (``pitch_shift={'low': 0.9}``);
    other keys go to every part that accepts them (``n_frames=96`` to both) and must fit at least one.
    """
    parts = [p.strip() for p in str(name).split("+") if p.strip()]
    if not parts:
        raise ValueError("empty sampler name")
    for p in parts:
        SAMPLERS.get(p)  # UnknownNameError (a ValueError) naming the known samplers
    if len(parts) == 1:
        return SAMPLERS[parts[0]](**kw)
    per_part = {p: dict(kw.pop(p)) for p in parts if isinstance(kw.get(p), dict)}
    for k in kw:
        if not any(_accepts(SAMPLERS[p], k) for p in parts):
            raise TypeError(f"no part of {name!r} takes the option {k!r}")
    objs = []
    for p in parts:
        args = {k: v for k, v in kw.items() if _accepts(SAMPLERS[p], k)}
        args.update(per_part.get(p, {}))
        objs.append(SAMPLERS[p](**args))
    return Composed(objs[0], objs[1:])
