"""Constants and name rules of the melstream shard format (docs/shard-format.md)."""
from __future__ import annotations

import re

FORMAT_NAME = "melstream-shards"
FORMAT_VERSION = 2  # 2: zstd frames carry content checksums (samples say "mel_checksum"); 1 is still read
MANIFEST = "manifest.json"
PARTS_DIR = ".parts"
FAILURES = "failures.jsonl"

MEL_EXT = "mel.npy.zst"
JSON_EXT = "json"
MEMBER_EXTS = (MEL_EXT, JSON_EXT)

_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_SHARD_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}-[A-Za-z0-9_-]{1,100}-\d{6}\.tar$")


def check_key(key: str) -> str:
    """Sample keys: 1-200 of ``[A-Za-z0-9_-]`` (no dot: WebDataset splits key/extension at the first dot)."""
    if not isinstance(key, str) or not _KEY_RE.match(key):
        raise ValueError(f"invalid sample key {key!r}: use 1-200 characters of [A-Za-z0-9_-]")
    return key


def check_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(f"invalid {what} {name!r}: use 1-100 characters of [A-Za-z0-9_-]")
    return name


def shard_name(dataset: str, split: str, index: int) -> str:
    """``<dataset>-<split>-%06d.tar``."""
    check_name(dataset, "dataset name")
    check_name(split, "split name")
    if not 0 <= int(index) < 1_000_000:
        raise ValueError(f"shard index {index} out of range")
    return f"{dataset}-{split}-{int(index):06d}.tar"


def check_shard_name(name: str) -> str:
    """Shard file names coming from a manifest are hostile: plain base names only."""
    if not isinstance(name, str) or not _SHARD_RE.match(name):
        raise ValueError(f"invalid shard file name {name!r}")
    return name
