"""Caches: task log-mels as melstream shards, frozen-encoder embeddings as WebDataset shards.

Layout under ``--cache-dir`` (default ``$MELSTREAM_EVAL_CACHE`` or ``data/eval_cache``)::

    mels/<task>/<fingerprint>-<frontend name>-<frontend hash>/all/      melstream shards + manifest.json
    emb/<model hash>/<task>/<fingerprint>-<window>/<kind>/             embedding shards + manifest.json

* ``fingerprint`` hashes the task's clip list (root, protocol, keys, labels, splits, folds), so two
  ``folder`` tasks on different data never share a cache entry and a ``--limit`` run is its own entry.
* Log-mels are written by the ingest machinery (``ingest.engine.plan`` / ``write_shard`` /
  ``shards.build_manifest``) through the **model's** frontend (``encoder.json``), never another one;
  an interrupted run resumes shard by shard.
* Embedding shards hold per clip ``<key>.emb.npy`` (float32 ``[windows, dim]``, plain ``.npy`` so
  ``webdataset``'s default decoder reads it) and ``<key>.json`` (labels, split, fold); the manifest
  follows the shard manifest conventions (``format``, ``format_version``, ``shards`` with sample counts,
  bytes and sha256, ``totals``, ``labels``, ``tool``, ``command``, ``created``) with
  ``format = "melstream-embeddings"`` and the model hash, task, protocol and window.  A kind is
  complete when its ``manifest.json`` exists (written last, atomically).
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import re
import sys
import tarfile
import time
from dataclasses import dataclass
from typing import Any, Iterator, Optional

import numpy as np

from shards.atomic import atomic_write_json
from shards.frontend import FrontendConfig
from shards.writer import sha256_file

from .tasks.base import Clip, TaskData

log = logging.getLogger("melstream.eval")

EMB_FORMAT = "melstream-embeddings"
EMB_FORMAT_VERSION = 1
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

    def items(self):
        from ingest.engine import Item

        out = []
        for c in self.clips:
            end = (c.start or 0.0) + c.duration if c.duration is not None else None
            out.append(Item(key=c.key, source_id=c.path, origin=c.path, split="all", labels=list(c.labels),
                            start=c.start if c.duration is not None else None, end=end,
                            extra={"eval_split": c.split, "fold": c.fold}))
        return out

    def load(self, item, sample_rate: int) -> np.ndarray:
        from ingest.decode import decode_audio
        from ingest.engine import SkipItem

        if not os.path.isfile(item.origin):
            raise SkipItem("missing", f"no file {item.origin}")
        if item.end is not None:
            return decode_audio(item.origin, sample_rate, start=item.start, duration=item.end - (item.start or 0.0))
        return decode_audio(item.origin, sample_rate, duration=self.max_seconds)


def _run_shard(args: tuple) -> dict:
    from ingest.engine import write_shard

    source, task, cfg, fe, common = args
    rec = write_shard(source, task, cfg, fe, common)
    return {"samples": rec["samples"], "failed": len(rec["failures"])}


def ensure_mels(td: TaskData, fe: FrontendConfig, cache_dir: str, max_seconds: Optional[float] = None,
                workers: int = 1, progress: bool = True, per_shard: int = 500) -> list[str]:
    """Shard dirs holding the log-mels of every clip of ``td`` through frontend ``fe`` (built if needed)."""
    if td.mel_dirs and td.mel_frontend_hash == fe.hash():
        return list(td.mel_dirs)
    from ingest.engine import IngestConfig, _worker_init, is_finished, plan  # one worker set-up for both pools
    from shards import build_manifest

    out = os.path.join(cache_dir, "mels", td.name, f"{fingerprint(td)}-{slug(fe.name)}-{fe.hash()}")
    split_dir = os.path.join(out, "all")
    if os.path.isfile(os.path.join(split_dir, "manifest.json")):
        return [split_dir]
    missing = [c.path for c in td.clips if not os.path.isfile(c.path)]
    if missing:
        raise FileNotFoundError(f"{td.name}: {len(missing)} audio files are missing, e.g. {missing[0]}")
    source = TaskSource(td.name, td.clips, max_seconds)
    cfg = IngestConfig(out=out, preset=fe.name, level=3, progress=progress)
    tasks = plan(source.items(), td.name, per_shard)
    todo = [t for t in tasks if not is_finished(out, t, fe.hash(), True)]
    common = {"dataset": td.name, "frontend": fe.to_dict(), "frontend_hash": fe.hash(), "split": "all"}
    args = [(source, t, cfg, fe, common) for t in todo]
    bar = None
    if progress and todo:
        from tqdm import tqdm
        bar = tqdm(total=sum(len(t.items) for t in todo), desc=f"log-mels {td.name}", unit="clip", leave=False)
    failed = 0

    def done(r: dict) -> None:
        nonlocal failed
        failed += r["failed"]
        if bar is not None:
            bar.update(r["samples"] + r["failed"])

    if workers <= 1 or len(args) <= 1:
        for a in args:
            done(_run_shard(a))
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(min(workers, len(args)), initializer=_worker_init) as pool:
            for r in pool.imap_unordered(_run_shard, args):
                done(r)
    if bar is not None:
        bar.close()
    m = build_manifest(split_dir, command=["python", "-m", "eval", "(task log-mels)", td.name],
                       extra={"eval": {"task": td.name, "protocol": td.protocol, "fingerprint": fingerprint(td)}})
    if m["failures"]["count"]:
        log.warning("%s: %d clips could not be decoded (%s); they are left out", td.name, m["failures"]["count"],
                    m["failures"]["by_reason"])
    return [split_dir]


def iter_mels(dirs: list[str], keys: Optional[set] = None) -> Iterator[tuple[str, np.ndarray]]:
    """``(key, log-mel [F, T])`` of the samples in ``dirs`` (only ``keys`` when given)."""
    import shards

    for d in dirs:
        for p in shards.shard_paths(d):
            for key, members in shards.iter_tar_samples(p):
                if keys is not None and key not in keys:
                    continue
                mel, _ = shards.decode_members(key, members)
                yield key, mel


# -- embeddings ------------------------------------------------------------------------------------------

def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.mtime, ti.mode, ti.uid, ti.gid, ti.uname, ti.gname = size, 0, 0o644, 0, 0, "", ""
    return ti


class EmbeddingWriter:
    """Writes ``<task>-<kind>-%06d.tar`` shards of per-clip embeddings, then ``manifest.json``."""

    def __init__(self, out_dir: str, task: str, kind: str, per_shard: int = 1000):
        from shards import shard_name

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


def read_embeddings(kind_dir: str) -> dict[str, np.ndarray]:
    """``key -> float32 [windows, dim]`` of a complete embedding cache kind (manifest order)."""
    from shards.format import check_shard_name

    with open(os.path.join(kind_dir, "manifest.json")) as f:
        m = json.load(f)
    if m.get("format") != EMB_FORMAT or m.get("format_version") != EMB_FORMAT_VERSION:
        raise ValueError(f"{kind_dir}: not a melstream embedding cache")
    out: dict[str, np.ndarray] = {}
    for s in m["shards"]:
        with tarfile.open(os.path.join(kind_dir, check_shard_name(s["name"]))) as tar:
            for ti in tar:
                if ti.name.endswith(".emb.npy"):
                    out[ti.name[: -len(".emb.npy")]] = np.load(io.BytesIO(tar.extractfile(ti).read()), allow_pickle=False)
    return out


def emb_dir(cache_dir: str, model_hash: str, td: TaskData, window_slug: str) -> str:
    return os.path.join(cache_dir, "emb", model_hash, td.name, f"{fingerprint(td)}-{window_slug}")


def complete_kinds(d: str) -> list[str]:
    if not os.path.isdir(d):
        return []
    return sorted(k for k in os.listdir(d) if os.path.isfile(os.path.join(d, k, "manifest.json")))
