"""Reading shards: a WebDataset decoder for ``.mel.npy.zst`` and a plain-tar sample iterator.

With plain WebDataset::

    import webdataset as wds, shards
    ds = wds.WebDataset(urls, shardshuffle=False).decode(shards.wds_decoder).map(shards.to_example)

``to_example`` returns ``(mel float32 [n_mels, frames], meta dict)``.
"""
from __future__ import annotations

import json
import os
import tarfile
from typing import Any, Iterable, Iterator, TypeVar

import numpy as np

from .codec import CodecError, decode_mel, load_payload, payload_to_mel
from .format import JSON_EXT, MEL_EXT, check_key
from .manifest import read_manifest

MAX_MEMBER_BYTES = 64 << 20
MAX_JSON_BYTES = 1 << 20
T = TypeVar("T")


def wds_decoder(key: str, data: bytes) -> Any:
    """WebDataset decoder handler: ``*.mel.npy.zst`` -> stored array, ``*.json`` -> dict; else None."""
    ext = key.lower()
    if ext.endswith("." + MEL_EXT) or ext == MEL_EXT:
        return load_payload(data)
    if ext.endswith("." + JSON_EXT) or ext == JSON_EXT:
        return json.loads(data)
    return None


def to_example(sample: dict) -> tuple[np.ndarray, dict]:
    """Decoded WebDataset sample -> ``(mel float32 [n_mels, frames], meta)``."""
    meta = sample.get(JSON_EXT) or {}
    arr = sample.get(MEL_EXT)
    if arr is None:
        raise CodecError(f"sample {sample.get('__key__')!r} has no {MEL_EXT} member")
    if isinstance(arr, (bytes, bytearray)):
        arr = load_payload(bytes(arr))
    return payload_to_mel(arr, meta), meta


def split_member(name: str) -> tuple[str, str]:
    """``'abc.mel.npy.zst' -> ('abc', 'mel.npy.zst')`` with the same rule WebDataset uses (first dot)."""
    if "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"unsafe member name {name!r}")
    key, _, ext = name.partition(".")
    check_key(key)
    if ext not in (MEL_EXT, JSON_EXT):
        raise ValueError(f"unexpected member {name!r}")
    return key, ext


def group_samples(members: Iterable[tuple[str, T]]) -> Iterator[tuple[str, dict[str, T]]]:
    """Consecutive ``(member name, value)`` -> ``(key, {ext: value})``; names are checked with
    :func:`split_member` and a member appearing twice in a sample is an error."""
    cur_key: str | None = None
    cur: dict[str, T] = {}
    for name, value in members:
        key, ext = split_member(name)
        if key != cur_key:
            if cur_key is not None:
                yield cur_key, cur
            cur_key, cur = key, {}
        if ext in cur:
            raise ValueError(f"member {name!r} appears twice")
        cur[ext] = value
    if cur_key is not None:
        yield cur_key, cur


def _checked_infos(tar: tarfile.TarFile) -> Iterator[tuple[str, tarfile.TarInfo]]:
    for ti in tar:
        if not ti.isfile():
            raise ValueError(f"non-file member {ti.name!r}")
        limit = MAX_JSON_BYTES if ti.name.endswith("." + JSON_EXT) else MAX_MEMBER_BYTES
        if ti.size > limit:
            raise ValueError(f"member {ti.name!r} too large ({ti.size} bytes)")
        yield ti.name, ti


def _grouped_members(tar: tarfile.TarFile) -> Iterator[tuple[str, dict[str, tarfile.TarInfo]]]:
    """``(key, {ext: TarInfo})`` of consecutive members, with the safety checks of the format."""
    return group_samples(_checked_infos(tar))


def iter_tar_samples(path: str) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Group the members of one local shard into ``(key, {ext: bytes})`` with safety checks."""
    with tarfile.open(path, "r:") as tar:
        for key, infos in _grouped_members(tar):
            out = {}
            for ext, ti in infos.items():
                f = tar.extractfile(ti)
                out[ext] = f.read() if f else b""
            yield key, out


def iter_tar_index(path: str) -> Iterator[tuple[str, dict[str, tuple[int, int]]]]:
    """``(key, {ext: (byte offset, size)})`` of the members of one local shard, read nothing else:
    random access to a sample is then two ``os.pread`` calls."""
    with tarfile.open(path, "r:") as tar:
        for key, infos in _grouped_members(tar):
            yield key, {ext: (int(ti.offset_data), int(ti.size)) for ext, ti in infos.items()}


def decode_members(key: str, members: dict[str, bytes]) -> tuple[np.ndarray, dict]:
    """Decode and cross-check one sample's members; raises ValueError with the reason."""
    if JSON_EXT not in members or MEL_EXT not in members:
        raise ValueError(f"sample {key}: missing member(s) {sorted({JSON_EXT, MEL_EXT} - set(members))}")
    meta = json.loads(members[JSON_EXT])
    if not isinstance(meta, dict):
        raise ValueError(f"sample {key}: JSON is not an object")
    mel = decode_mel(members[MEL_EXT], meta)
    if meta.get("frames") != mel.shape[1] or meta.get("n_mels") != mel.shape[0]:
        raise ValueError(f"sample {key}: JSON says {meta.get('n_mels')}x{meta.get('frames')}, array is {mel.shape}")
    if not np.isfinite(mel).all():
        raise ValueError(f"sample {key}: non-finite values")
    return mel, meta


def shard_paths(shard_dir: str) -> list[str]:
    """Local paths of the shards listed in the manifest of ``shard_dir``."""
    m = read_manifest(shard_dir)
    return [os.path.join(shard_dir, s["name"]) for s in m["shards"]]


def iter_dir(shard_dir: str) -> Iterator[tuple[np.ndarray, dict]]:
    """Every sample of a local shard directory in manifest order (no shuffling)."""
    for p in shard_paths(shard_dir):
        for key, members in iter_tar_samples(p):
            yield decode_members(key, members)
