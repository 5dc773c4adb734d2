"""Caches: task log-mels as melstream shards, frozen-encoder embeddings as WebDataset shards.

Layout under ``--cache-dir`` (default ``$MELSTREAM_EVAL_CACHE`` or ``data/eval_cache``)::

    mels/<task>/<fingerprint>-<frontend name>-<frontend hash>/all/      melstream shards + manifest.json
    emb/<model hash>/<task>/<fingerprint>-<window>/<kind>/             embedding shards + manifest.json
    locks/<mels or emb>/<...entry path...>/.melstream.lock              one writer per entry

* ``fingerprint`` hashes the task's clip list (root, protocol, keys, labels, splits, folds), so two
  ``folder`` tasks on different data never share a cache entry and a ``--limit`` run is its own entry.
* Log-mels are written by :func:`ingest.decode_to_mels` through the **model's** frontend
  (``encoder.json``), never another one; an interrupted run resumes shard by shard.
* Embedding shards hold per clip ``<key>.emb.npy`` (float32 ``[windows, dim]``, plain ``.npy`` so
  ``webdataset``'s default decoder reads it) and ``<key>.json`` (labels, split, fold); the manifest
  follows the shard manifest conventions (``format``, ``format_version``, ``shards`` with sample counts,
  bytes and sha256, ``totals``, ``labels``, ``tool``, ``command``, ``created``) with
  ``format = "melstream-embeddings"`` and the model hash, task, protocol and window.  A kind is
  complete when its ``manifest.json`` exists (written last, atomically).
* Every entry is checked against its manifest before use and rebuilt where it does not match
  (``eval/cache_check.py``; docs/evaluation.md "Caches").
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import shutil
import sys
import tarfile
import time
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import numpy as np

import shards
from ingest import Item, SkipItem, decode_to_mels
from ingest.decode import decode_audio
from shards import shard_name
from shards.atomic import atomic_write_json
from shards.format import FAILURES, MANIFEST, PARTS_DIR, check_shard_name
from shards.frontend import FrontendConfig
from shards.reader import MAX_JSON_BYTES, MAX_MEMBER_BYTES
from shards.writer import sha256_file

from .cache_check import CacheCorrupt, check_file, entry_lock, read_json_bounded, remove_quietly
from .tasks.base import Clip, TaskData

log = logging.getLogger("melstream.eval")

EMB_FORMAT = "melstream-embeddings"
EMB_FORMAT_VERSION = 1
MEL_SPLIT = "all"
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def default_cache_dir() -> str:
    return os.environ.get("MELSTREAM_EVAL_CACHE", os.path.join("data", "eval_cache"))


def slug(s: str) -> str:
    return _SAFE.sub("-", s).strip("-")[:80] or "x"


def fingerprint(td: TaskData) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([os.path.abspath(td.root), td.protocol, td.multilabel], sort_keys=True).encode())
    for c in sorted(td.clips, key=lambda c: c.key):
        h.update(json.dumps([c.key, c.path, list(c.labels), c.split, c.fold, c.start, c.duration]).encode())
    return h.hexdigest()[:12]


# -- log-mels --------------------------------------------------------------------------------------------

@dataclass
class TaskSource:
    """An ingest ``Source`` over the clips of a task (picklable for worker processes)."""

    dataset: str
    clips: list[Clip]
    max_seconds: Optional[float] = None

    def items(self) -> list[Item]:
        out = []
        for c in self.clips:
            end = (c.start or 0.0) + c.duration if c.duration is not None else None
            out.append(Item(key=c.key, source_id=c.path, origin=c.path, split=MEL_SPLIT, labels=list(c.labels),
                            start=c.start if c.duration is not None else None, end=end,
                            extra={"eval_split": c.split, "fold": c.fold}))
        return out

    def load(self, item: Item, sample_rate: int) -> np.ndarray:
        if not os.path.isfile(item.origin):
            raise SkipItem("missing", f"no file {item.origin}")
        if item.end is not None:
            return decode_audio(item.origin, sample_rate, start=item.start, duration=item.end - (item.start or 0.0))
        return decode_audio(item.origin, sample_rate, duration=self.max_seconds)


def mel_entry(cache_dir: str, td: TaskData, fe: FrontendConfig) -> str:
    """The log-mel cache entry of ``td`` through ``fe`` (its shards are in ``<entry>/all/``)."""
    return os.path.join(cache_dir, "mels", td.name, f"{fingerprint(td)}-{slug(fe.name)}-{fe.hash()}")


def check_mels(split_dir: str, frontend_hash: str) -> list[CacheCorrupt]:
    """What in a log-mel cache dir does not match its manifest (``[]``: all of it does)."""
    mp = os.path.join(split_dir, MANIFEST)
    try:
        m = shards.validate_manifest(read_json_bounded(mp), mp)
    except CacheCorrupt as e:
        return [e]
    except shards.ManifestError as e:
        return [CacheCorrupt(mp, str(e).removeprefix(mp + ": "))]
    if m.get("frontend_hash") != frontend_hash:
        return [CacheCorrupt(mp, f"frontend hash {m.get('frontend_hash')!r}, expected {frontend_hash!r}")]
    bad: list[CacheCorrupt] = []
    for s in m["shards"]:
        path = os.path.join(split_dir, s["name"])
        try:
            check_file(path, s)
            n = sum(1 for _ in shards.iter_tar_index(path))
            if n != s["samples"]:
                raise CacheCorrupt(path, f"{n} samples, manifest says {s['samples']}")
        except CacheCorrupt as e:
            bad.append(e)
        except (tarfile.TarError, OSError, ValueError) as e:
            bad.append(CacheCorrupt(path, f"unreadable tar ({e})"))
    total = sum(s["samples"] for s in m["shards"])
    if not bad and (m.get("totals") or {}).get("clips") != total:
        bad.append(CacheCorrupt(mp, f"totals say {(m.get('totals') or {}).get('clips')} clips, shards hold {total}"))
    return bad


def discard_mels(split_dir: str, bad: list[CacheCorrupt]) -> None:
    """Remove the manifest and every bad shard (with its ``.parts`` record) so that ingest redoes them."""
    remove_quietly(os.path.join(split_dir, MANIFEST))
    remove_quietly(os.path.join(split_dir, FAILURES))
    for e in bad:
        name = os.path.basename(e.path)
        if os.path.dirname(os.path.abspath(e.path)) == os.path.abspath(split_dir) and name != MANIFEST:
            remove_quietly(e.path)
            remove_quietly(os.path.join(split_dir, PARTS_DIR, name + ".json"))


def ensure_mels(td: TaskData, fe: FrontendConfig, cache_dir: str, max_seconds: Optional[float] = None,
                workers: int = 1, progress: bool = True, per_shard: int = 500) -> list[str]:
    """Shard dirs holding the log-mels of every clip of ``td`` through frontend ``fe`` (built if needed).

    A cached entry is checked against its manifest first; what does not match is named in a warning,
    discarded and rebuilt.  One process at a time builds an entry; others wait for it."""
    if td.mel_dirs and td.mel_frontend_hash == fe.hash():
        return list(td.mel_dirs)
    out = mel_entry(cache_dir, td, fe)
    split_dir = os.path.join(out, MEL_SPLIT)
    with entry_lock(cache_dir, out, "log-mel cache entry"):
        for attempt in range(3):  # a bad manifest, then shards that do not match their records
            if os.path.lexists(os.path.join(split_dir, MANIFEST)):
                bad = check_mels(split_dir, fe.hash())
                if not bad:
                    return [split_dir]
                if attempt == 2:
                    raise bad[0]
                for e in bad:
                    log.warning("log-mel cache: %s; discarded, rebuilding it", e)
                discard_mels(split_dir, bad)
            _build_mels(td, fe, out, max_seconds, workers, progress, per_shard)
    raise CacheCorrupt(split_dir, "could not be rebuilt")  # pragma: no cover - the loop returns or raises


def _build_mels(td: TaskData, fe: FrontendConfig, out: str, max_seconds: Optional[float], workers: int,
                progress: bool, per_shard: int) -> None:
    missing = [c.path for c in td.clips if not os.path.isfile(c.path)]
    if missing:
        raise FileNotFoundError(f"{td.name}: {len(missing)} audio files are missing, e.g. {missing[0]}")
    summary = decode_to_mels(TaskSource(td.name, td.clips, max_seconds), out, fe, workers=workers, progress=progress,
                             shard_size=str(per_shard), level=3,
                             command=["python", "-m", "eval", "(task log-mels)", td.name],
                             extra_manifest={"eval": {"task": td.name, "protocol": td.protocol,
                                                      "fingerprint": fingerprint(td)}})
    failed = summary["failures_by_reason"].get(MEL_SPLIT, {})
    if failed:
        log.warning("%s: %d clips could not be decoded (%s); they are left out", td.name, sum(failed.values()), failed)


def iter_mels(dirs: list[str], keys: Optional[set] = None) -> Iterator[tuple[str, np.ndarray]]:
    """``(key, log-mel [F, T])`` of the samples in ``dirs`` (only ``keys`` when given); a shard that
    cannot be read or decoded is a :class:`CacheCorrupt` naming it."""
    for d in dirs:
        mp = os.path.join(d, MANIFEST)
        try:
            m = shards.validate_manifest(read_json_bounded(mp), mp)
        except shards.ManifestError as e:
            raise CacheCorrupt(mp, str(e).removeprefix(mp + ": ")) from None
        n_mels = m["frontend"]["n_mels"]
        for s in m["shards"]:
            path = os.path.join(d, s["name"])
            try:
                for key, members in shards.iter_tar_samples(path):
                    if keys is not None and key not in keys:
                        continue
                    mel, _ = shards.decode_members(key, members)
                    if mel.shape[0] != n_mels:
                        raise ValueError(f"sample {key}: {mel.shape[0]} mel bands, the manifest says {n_mels}")
                    yield key, mel
            except (tarfile.TarError, OSError, EOFError, ValueError) as e:
                raise CacheCorrupt(path, f"unreadable ({e})") from None


# -- embeddings ------------------------------------------------------------------------------------------

def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = size, 0, 0o644, 0, 0, "", ""
    return ti


class EmbeddingWriter:
    """Writes ``<task>-<kind>-%06d.tar`` shards of per-clip embeddings, then ``manifest.json``."""

    def __init__(self, out_dir: str, task: str, kind: str, per_shard: int = 1000):
        self.out_dir, self.task, self.kind, self.per_shard = out_dir, task, kind, per_shard
        self._name = lambda i: shard_name(task, kind, i)
        os.makedirs(out_dir, exist_ok=True)
        self.shards: list[dict] = []
        self.labels: dict[str, int] = {}
        self.dim: Optional[int] = None
        self.clips = 0
        self._tar = None
        self._n = 0

    def _open(self) -> None:
        name = self._name(len(self.shards))
        self._tmp = os.path.join(self.out_dir, name + f".{os.getpid()}.tmp")
        self._tar = tarfile.open(self._tmp, "w", format=tarfile.USTAR_FORMAT)
        self._n = 0

    def _close_shard(self) -> None:
        if self._tar is None:
            return
        self._tar.close()
        name = self._name(len(self.shards))
        path = os.path.join(self.out_dir, name)
        with open(self._tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self._tmp, path)
        self.shards.append({"name": name, "samples": self._n, "bytes": os.path.getsize(path), "sha256": sha256_file(path)})
        self._tar = None

    def add(self, key: str, emb: np.ndarray, meta: dict[str, Any]) -> None:
        if self._tar is None:
            self._open()
        arr = np.ascontiguousarray(emb, dtype=np.float32)
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=False)
        data = buf.getvalue()
        js = json.dumps({"key": key, **meta, "windows": int(arr.shape[0]), "dim": int(arr.shape[1])}, sort_keys=True).encode()
        self._tar.addfile(_tarinfo(f"{key}.json", len(js)), io.BytesIO(js))
        self._tar.addfile(_tarinfo(f"{key}.emb.npy", len(data)), io.BytesIO(data))
        for lab in meta.get("labels", []):
            self.labels[lab] = self.labels.get(lab, 0) + 1
        self.dim = int(arr.shape[1])
        self.clips += 1
        self._n += 1
        if self._n >= self.per_shard:
            self._close_shard()

    def close(self, extra: dict[str, Any]) -> dict[str, Any]:
        self._close_shard()
        m = {
            "format": EMB_FORMAT, "format_version": EMB_FORMAT_VERSION, "dataset": self.task, "split": self.kind,
            "kind": self.kind, "dim": self.dim, "shards": self.shards,
            "totals": {"clips": self.clips, "shards": len(self.shards), "bytes": sum(s["bytes"] for s in self.shards)},
            "labels": {"vocabulary": sorted(self.labels), "counts": dict(sorted(self.labels.items()))},
            "tool": {"name": "melstream", "version": "0.1.0"}, "command": list(sys.argv),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **extra,
        }
        atomic_write_json(os.path.join(self.out_dir, "manifest.json"), m)
        return m

    def abort(self) -> None:
        if self._tar is not None:
            self._tar.close()
            if os.path.exists(self._tmp):
                os.unlink(self._tmp)


def read_emb_manifest(kind_dir: str) -> dict[str, Any]:
    """The checked manifest of an embedding cache kind (size-bounded read; fields the reader trusts)."""
    mp = os.path.join(kind_dir, MANIFEST)
    m = read_json_bounded(mp)
    if not isinstance(m, dict) or m.get("format") != EMB_FORMAT or m.get("format_version") != EMB_FORMAT_VERSION:
        raise CacheCorrupt(mp, "not a melstream embedding cache manifest")
    sh, dim, totals = m.get("shards"), m.get("dim"), m.get("totals")
    if not isinstance(sh, list) or not isinstance(dim, int) or dim < 1 or not isinstance(totals, dict):
        raise CacheCorrupt(mp, "no shard list, dim or totals")
    for s in sh:
        try:
            check_shard_name(s.get("name") if isinstance(s, dict) else None)
        except ValueError as e:
            raise CacheCorrupt(mp, str(e)) from None
        if not isinstance(s.get("samples"), int) or s["samples"] < 0:
            raise CacheCorrupt(mp, f"bad sample count for {s['name']}")
    if totals.get("clips") != sum(s["samples"] for s in sh):
        raise CacheCorrupt(mp, f"totals say {totals.get('clips')} clips, the shards {sum(s['samples'] for s in sh)}")
    return m


def _read_emb_shard(path: str, dim: int, out: dict[str, np.ndarray]) -> int:
    """Add the embeddings of one shard to ``out``, checking members, shapes and keys; the clip count."""
    metas: dict[str, dict] = {}
    n = 0
    with tarfile.open(path, "r:") as tar:
        for ti in tar:
            key, _, ext = ti.name.partition(".")
            limit = MAX_JSON_BYTES if ext == "json" else MAX_MEMBER_BYTES
            if not ti.isfile() or ext not in ("json", "emb.npy") or ti.size > limit:
                raise ValueError(f"unexpected member {ti.name!r} ({ti.size} bytes)")
            data = tar.extractfile(ti).read()  # type: ignore[union-attr]
            if ext == "json":
                metas[key] = json.loads(data)
                if not isinstance(metas[key], dict):
                    raise ValueError(f"sample {key}: JSON is not an object")
                continue
            arr = np.load(io.BytesIO(data), allow_pickle=False)
            meta = metas.pop(key, None)
            if meta is None or key in out:
                raise ValueError(f"sample {key}: no JSON before its embedding, or a key seen twice")
            if arr.dtype != np.float32 or arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] != dim:
                raise ValueError(f"sample {key}: embedding {arr.dtype} {arr.shape}, expected float32 [windows, {dim}]")
            if (meta.get("windows"), meta.get("dim")) != arr.shape or not np.isfinite(arr).all():
                raise ValueError(f"sample {key}: JSON says {meta.get('windows')}x{meta.get('dim')}, array is "
                                 f"{arr.shape} (or non-finite)")
            out[key] = arr
            n += 1
    if metas:
        raise ValueError(f"samples without an embedding: {sorted(metas)[:3]}")
    return n


def read_embeddings(kind_dir: str) -> dict[str, np.ndarray]:
    """``key -> float32 [windows, dim]`` of a complete embedding cache kind (manifest order).

    Every shard is checked against the manifest (size, sha256, sample count) and every array against
    its JSON and the manifest's ``dim``; a mismatch is a :class:`CacheCorrupt` naming the file."""
    m = read_emb_manifest(kind_dir)
    out: dict[str, np.ndarray] = {}
    for s in m["shards"]:
        path = os.path.join(kind_dir, s["name"])
        check_file(path, s)
        try:
            n = _read_emb_shard(path, m["dim"], out)
        except (tarfile.TarError, OSError, EOFError, ValueError) as e:
            raise CacheCorrupt(path, f"unreadable ({e})") from None
        if n != s["samples"]:
            raise CacheCorrupt(path, f"{n} clips, manifest says {s['samples']}")
    return out


def emb_dir(cache_dir: str, model_hash: str, td: TaskData, window_slug: str) -> str:
    return os.path.join(cache_dir, "emb", model_hash, td.name, f"{fingerprint(td)}-{window_slug}")


def complete_kinds(d: str) -> list[str]:
    if not os.path.isdir(d):
        return []
    return sorted(k for k in os.listdir(d) if os.path.isfile(os.path.join(d, k, MANIFEST)))


def discard_embeddings(d: str) -> None:
    """Remove every kind of embedding cache entry ``d`` (manifests first: a half-removed kind is incomplete)."""
    if not os.path.isdir(d):
        return
    kinds = [k for k in os.listdir(d) if os.path.isdir(os.path.join(d, k))]
    for k in kinds:
        remove_quietly(os.path.join(d, k, MANIFEST))
    for k in kinds:
        shutil.rmtree(os.path.join(d, k), ignore_errors=True)
