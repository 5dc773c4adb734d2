"""Shard writer: one WebDataset tar, written to a temp file and renamed when complete.

Members are written in key order as ``<key>.json`` then ``<key>.mel.npy.zst`` with fixed tar
headers (mtime 0, uid/gid 0, mode 0644), so the bytes of a shard depend only on its samples.
After the rename, a sidecar ``.parts/<shard>.json`` records what the shard holds (keys, counts,
sha256, streamed log-mel sums); a shard without its sidecar is treated as unfinished.
"""
from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .atomic import atomic_write_json
from .codec import CODEC_KEYS, DEFAULT_CODEC, DEFAULT_LEVEL, encode_mel
from .format import JSON_EXT, MEL_EXT, PARTS_DIR, check_shard_name, check_write_key
from .redact import redact_obj


def file_digest(path: str | Sequence[str], algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file (or of several, one after the other), read in chunks (sha256 for shards and
    run dirs; md5 where a publisher gives md5).  The one file-hash helper of the project."""
    h = hashlib.new(algorithm)
    for p in [path] if isinstance(path, str) else path:
        with open(p, "rb") as f:
            for b in iter(lambda: f.read(chunk), b""):
                h.update(b)
    return h.hexdigest()


def sha256_file(path: str) -> str:
    return file_digest(path, "sha256")


@dataclass
class ShardStats:
    """Streamed sums over every log-mel value (as decoded), merged exactly across shards."""

    count: int = 0
    total: float = 0.0
    total_sq: float = 0.0
    seconds: float = 0.0
    labels: Counter = field(default_factory=Counter)

    def add(self, mel: np.ndarray, seconds: float, labels: list[str]) -> None:
        m = mel.astype(np.float64)
        self.count += m.size
        self.total += float(m.sum())
        self.total_sq += float(np.square(m).sum())
        self.seconds += float(seconds)
        self.labels.update(labels)


@dataclass(frozen=True)
class EncodedSample:
    """One sample ready for a shard: its JSON and mel member bytes and its share of the shard's sums."""

    key: str
    codec: str
    json: bytes
    data: bytes
    count: int
    total: float
    total_sq: float
    seconds: float
    labels: tuple[str, ...]
    max_abs_error: float


def encode_sample(key: str, mel: np.ndarray, meta: dict[str, Any], codec: str = DEFAULT_CODEC,
                  level: int = DEFAULT_LEVEL, checksum: bool = True) -> EncodedSample:
    """Encode one sample (pure: runs in any process); :meth:`ShardWriter.add_encoded` writes it.
    ``checksum=False`` writes a format-version-1 sample (tests, benchmarks)."""
    check_write_key(key)
    data, extra, decoded = encode_mel(mel, codec, level, checksum)
    meta = {k: v for k, v in meta.items() if k not in CODEC_KEYS}  # stale ones from a re-encoded sample
    rec = {"key": key, **meta, "n_mels": int(mel.shape[0]), "frames": int(mel.shape[1]), "codec": codec, **extra}
    m = decoded.astype(np.float64)
    return EncodedSample(key, codec, json.dumps(rec, sort_keys=True).encode(), data, int(m.size), float(m.sum()),
                         float(np.square(m).sum()), float(rec.get("duration") or 0.0), tuple(rec.get("labels") or ()),
                         float(extra["mel_q"]["max_abs_error"]) if "mel_q" in extra else 0.0)


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size = size
    ti.mtime = 0
    ti.mode = 0o644
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


class ShardWriter:
    """Write one shard ``out_dir/name`` atomically; ``close()`` returns and stores its sidecar record."""

    def __init__(self, out_dir: str, name: str, codec: str = DEFAULT_CODEC, level: int = DEFAULT_LEVEL,
                 common: dict[str, Any] | None = None, checksum: bool = True):
        self.out_dir = out_dir
        self.name = check_shard_name(name)
        self.codec = codec
        self.level = level
        self.checksum = checksum  # False writes format-version-1 samples (tests, benchmarks)
        self.common = dict(common or {})
        self.path = os.path.join(out_dir, name)
        self.tmp = self.path + f".{os.getpid()}.tmp"
        os.makedirs(out_dir, exist_ok=True)
        for stale in glob.glob(glob.escape(self.path) + ".*.tmp"):  # left by a killed run of this shard
            os.unlink(stale)
        self._tar = tarfile.open(self.tmp, "w", format=tarfile.USTAR_FORMAT)
        self.keys: list[str] = []
        self._keyset: set[str] = set()
        self.stats = ShardStats()
        self.max_abs_error = 0.0
        self.failures: list[dict] = []

    def add(self, key: str, mel: np.ndarray, meta: dict[str, Any]) -> int:
        """Add one sample; ``meta`` is the sample JSON (dataset, source_id, start, end, labels, origin ...)."""
        return self.add_encoded(encode_sample(key, mel, meta, self.codec, self.level, self.checksum))

    def add_encoded(self, s: "EncodedSample") -> int:
        """Add a sample encoded by :func:`encode_sample` (e.g. in another process); same bytes as ``add``."""
        if s.codec != self.codec:
            raise ValueError(f"sample {s.key!r} was encoded with {s.codec}, shard {self.name} uses {self.codec}")
        if s.key in self._keyset:
            raise ValueError(f"duplicate key {s.key!r} in shard {self.name}")
        self.max_abs_error = max(self.max_abs_error, s.max_abs_error)
        self._tar.addfile(_tarinfo(f"{s.key}.{JSON_EXT}", len(s.json)), io.BytesIO(s.json))
        self._tar.addfile(_tarinfo(f"{s.key}.{MEL_EXT}", len(s.data)), io.BytesIO(s.data))
        self.keys.append(s.key)
        self._keyset.add(s.key)
        st = self.stats
        st.count += s.count
        st.total += s.total
        st.total_sq += s.total_sq
        st.seconds += s.seconds
        st.labels.update(s.labels)
        return len(s.data) + len(s.json)

    def fail(self, record: dict) -> None:
        """Record an input that did not make it into this shard (goes to failures.jsonl); URLs in it are
        written without their secrets (``shards.redact``)."""
        self.failures.append(redact_obj(record))

    def close(self) -> dict[str, Any]:
        self._tar.close()
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)
        rec = {
            "name": self.name,
            "samples": len(self.keys),
            "bytes": os.path.getsize(self.path),
            "sha256": sha256_file(self.path),
            "keys": self.keys,
            "codec": self.codec,
            "max_abs_error": self.max_abs_error,
            "stats": {"count": self.stats.count, "sum": self.stats.total, "sum_sq": self.stats.total_sq},
            "seconds": self.stats.seconds,
            "labels": dict(sorted(self.stats.labels.items())),
            "failures": self.failures,
            **self.common,
        }
        atomic_write_json(os.path.join(self.out_dir, PARTS_DIR, self.name + ".json"), rec)
        return rec

    def abort(self) -> None:
        try:
            self._tar.close()
        finally:
            if os.path.exists(self.tmp):
                os.unlink(self.tmp)
