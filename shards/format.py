"""Constants and name rules of the melstream shard format (docs/shard-format.md)."""
from __future__ import annotations

import hashlib
import re

FORMAT_NAME = "melstream-shards"
FORMAT_VERSION = 2  # 2: zstd frames carry content checksums (samples say "mel_checksum"); 1 is still read
MANIFEST = "manifest.json"
PARTS_DIR = ".parts"
FAILURES = "failures.jsonl"

MEL_EXT = "mel.npy.zst"
JSON_EXT = "json"
MEMBER_EXTS = (MEL_EXT, JSON_EXT)

# A member name is ``<key>.<ext>``; a USTAR header holds at most 100 bytes of name (the 155-byte prefix
# field is only used for paths with a "/", which keys never have), so the longest key that fits with the
# longest extension is 100 - len(".mel.npy.zst") = 88 characters.  Writers refuse longer keys; readers
# still accept up to 200 (tars written by other tools in PAX format).
USTAR_NAME_MAX = 100
MAX_KEY_LEN = USTAR_NAME_MAX - len("." + MEL_EXT)
KEY_HASH_LEN = 8  # hex digits of the sha1 that make a shortened key unique
_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_SHARD_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}-[A-Za-z0-9_-]{1,100}-\d{6}\.tar$")


class InvalidKey(ValueError):
    """A sample key that cannot be written (characters, length); ``str(err)`` names it and why."""


def check_key(key: str, max_len: int = 200) -> str:
    """Sample keys: 1-``max_len`` of ``[A-Za-z0-9_-]`` (no dot: WebDataset splits key/extension at the first
    dot).  Readers use the default; writers pass :data:`MAX_KEY_LEN` (:func:`check_write_key`)."""
    if not isinstance(key, str) or not _KEY_RE.match(key) or len(key) > max_len:
        shown = key if not isinstance(key, str) or len(key) <= 120 else key[:117] + "..."
        raise InvalidKey(f"invalid sample key {shown!r}: use 1-{max_len} characters of [A-Za-z0-9_-]")
    return key


def check_write_key(key: str) -> str:
    """A key a shard can hold: its members' names fit the 100-byte USTAR name field."""
    return check_key(key, MAX_KEY_LEN)


def key_digest(identity: str, n: int = KEY_HASH_LEN) -> str:
    """``n`` hex digits of the sha1 of ``identity`` (any string; unpaired surrogates from file names kept)."""
    return hashlib.sha1(identity.encode("utf-8", "surrogateescape")).hexdigest()[:n]


def slug(text: str) -> str:
    """``text`` with every run of characters outside ``[A-Za-z0-9_-]`` turned into ``-`` (ends stripped)."""
    return _UNSAFE.sub("-", text).strip("-")


def fit_key(text: str, identity: str | None = None, max_len: int = MAX_KEY_LEN, keep: str = "head") -> str:
    """A writable key for ``text``: ``text`` itself when it already is one of at most ``max_len`` characters
    (existing keys never change), else its slug cut to fit, ``_`` and :data:`KEY_HASH_LEN` hex digits of
    the sha1 of ``identity`` (default ``text``), which keep shortened keys distinct.  ``keep="tail"`` keeps
    the end of the slug (a file name) instead of its start.  docs/shard-format.md, "Sample keys"."""
    if isinstance(text, str) and _KEY_RE.match(text) and len(text) <= max_len:
        return text
    room = max_len - KEY_HASH_LEN - 1
    s = slug(text)
    s = (s[-room:] if keep == "tail" else s[:room]).strip("-") or "key"
    return f"{s}_{key_digest(identity if identity is not None else text)}"


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
