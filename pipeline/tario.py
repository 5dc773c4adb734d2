"""Streaming reader for melstream shards, and lazy decoding of the log-mel member.

``iter_tar_stream(f)`` reads POSIX ustar archives (what ``shards.ShardWriter`` writes; pax ``x``/``g``
headers are understood) from any forward-only binary stream, ~10x cheaper per member than
``tarfile`` in stream mode, with the same rules as ``shards.reader.iter_tar_samples``: regular
files only, plain ``<key>.<ext>`` names with the two melstream extensions, size limits, header
checksums.  A short read anywhere (including a missing end-of-archive marker) raises
:class:`TruncatedShard`; the caller counts the shard as corrupt and moves on.

``decode_clip(key, members)`` returns a :class:`Clip` that turns only the frames a sampler asks for
into float32.  Turning a whole 10-s ``f16planes`` clip into float32 with ``shards.codec.payload_to_mel``
costs ~230 us on one core (numpy's float16->float32 cast is scalar code); slicing the byte planes first
and casting with torch costs ~8 us for a 96-frame crop.  For ``f16chunks`` members (the default) nothing
is decompressed up front either: a frame read decompresses the 100-frame chunks it lies in
(``shards.codec.ChunkedMel``), one or two for a 96-frame crop instead of the whole ~50-65 us clip.
Other codecs decompress the whole member (``shards.codec.decompress``).
"""
from __future__ import annotations

import zlib
from typing import IO, Iterator

import numpy as np
import orjson
import torch

from shards.codec import ChunkedMel, CodecError, chunks_to_planes, decompress, load_payload, payload_to_mel, wants_checksum
from shards.format import JSON_EXT, MEL_EXT
from shards.reader import MAX_JSON_BYTES, MAX_MEMBER_BYTES, group_samples

_BLOCK = 512
_ZERO_BLOCK = bytes(_BLOCK)


class TruncatedShard(ValueError):
    """The archive ended in the middle of a header or member, or without its end marker."""


class CorruptSample(ValueError):
    """One sample's members cannot be decoded; the caller skips and counts it."""


def _read_exact(f: IO[bytes], n: int) -> bytes:
    data = f.read(n)
    if len(data) != n:
        # a raw stream may return short reads before EOF
        parts = [data]
        got = len(data)
        while got < n:
            more = f.read(n - got)
            if not more:
                raise TruncatedShard(f"archive ends {n - got} bytes short of a {n}-byte record")
            parts.append(more)
            got += len(more)
        data = b"".join(bytes(p) for p in parts)
    return data


def _octal(field: bytes) -> int:
    s = field.split(b"\0", 1)[0].strip()
    if not s:
        return 0
    if field[0] & 0x80:
        raise ValueError("base-256 size fields are not supported")
    return int(s, 8)


def _pax_records(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        sp = data.index(b" ", pos)
        length = int(data[pos:sp])
        rec = data[sp + 1:pos + length - 1]
        k, _, v = rec.partition(b"=")
        out[k.decode("utf-8")] = v.decode("utf-8")
        pos += length
    return out


def _byte_sum(b: bytes) -> int:
    """Exact sum of the bytes of ``b`` (at most 256 of them): Adler-32's first sum is ``1 + sum mod 65521``,
    and 256 bytes sum to at most 65,280, so it never wraps.  About 0.2 us, where a numpy sum of a
    512-byte header costs about 2.5 us of call overhead."""
    return (zlib.adler32(b) & 0xFFFF) - 1


def _checksum_ok(h: bytes) -> bool:
    """POSIX header checksum: the byte sum with the 8 checksum bytes counted as spaces."""
    return _octal(h[148:156]) == _byte_sum(h[:148]) + 8 * 32 + _byte_sum(h[156:256]) + _byte_sum(h[256:512])


class MemoryStream:
    """A forward-only ``read(n)`` over a buffer (an ``mmap`` of a local shard) that returns zero-copy
    ``memoryview`` slices, with the short-read-at-the-end behaviour of a file."""

    __slots__ = ("_buf", "_pos")

    def __init__(self, buf) -> None:
        self._buf = memoryview(buf)
        self._pos = 0

    def read(self, n: int = -1) -> memoryview:
        a = self._pos
        b = len(self._buf) if n < 0 else min(a + n, len(self._buf))
        self._pos = b
        return self._buf[a:b]


def map_file(path: str) -> MemoryStream | None:
    """A :class:`MemoryStream` over a read-only ``mmap`` of ``path``; ``None`` where mapping is not
    possible (empty or special file).  The map closes itself when the last view of it is gone."""
    import mmap

    with open(path, "rb") as fh:
        try:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):
            return None
    return MemoryStream(mm)


def iter_tar_members(f: IO[bytes] | MemoryStream) -> Iterator[tuple[str, bytes]]:
    """``(name, data)`` of every regular member; raises ValueError / TruncatedShard on bad archives."""
    pax: dict[str, str] = {}
    while True:
        h = f.read(_BLOCK)
        if len(h) == 0:
            raise TruncatedShard("archive ends without its end-of-archive marker")
        if len(h) < _BLOCK:
            h = bytes(h) + bytes(_read_exact(f, _BLOCK - len(h)))
        elif type(h) is not bytes:
            h = bytes(h)
        if h == _ZERO_BLOCK:
            return
        if not _checksum_ok(h):
            raise ValueError("tar header checksum mismatch")
        size = _octal(h[124:136])
        typeflag = h[156:157]
        name = h[0:100].split(b"\0", 1)[0].decode("utf-8")
        if h[257:262] == b"ustar":
            prefix = h[345:500].split(b"\0", 1)[0].decode("utf-8")
            if prefix:
                name = prefix + "/" + name
        if typeflag in (b"x", b"g"):
            if size > MAX_JSON_BYTES:
                raise ValueError("pax header too large")
            data = bytes(_read_exact(f, size + (-size) % _BLOCK)[:size])
            if typeflag == b"x":
                pax = _pax_records(data)
            continue
        if typeflag not in (b"0", b"\0", b"7"):
            raise ValueError(f"non-file member {name!r} (type {typeflag!r})")
        if pax:
            name = pax.get("path", name)
            size = int(pax.get("size", size))
            pax = {}
        limit = MAX_JSON_BYTES if name.endswith("." + JSON_EXT) else MAX_MEMBER_BYTES
        if size > limit:
            raise ValueError(f"member {name!r} too large ({size} bytes)")
        pad = (-size) % _BLOCK
        data = _read_exact(f, size + pad)  # data and padding in one read; a zero-copy view drops the padding
        yield name, (memoryview(data)[:size] if pad else data)


def iter_tar_stream(f: IO[bytes] | MemoryStream) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Group members into ``(key, {ext: bytes})`` like ``shards.reader.iter_tar_samples``, from a stream."""
    return group_samples(iter_tar_members(f))


# ---------------------------------------------------------------- lazy log-mel decoding

_NPY_CACHE: dict[bytes, tuple[np.dtype, tuple[int, ...], int]] = {}


def _payload(raw: bytes, data: bytes) -> np.ndarray:
    """Parse the decompressed ``.npy``; headers seen before skip numpy's header parser."""
    if len(raw) >= 10 and raw[:8] == b"\x93NUMPY\x01\x00":
        hlen = 10 + raw[8] + (raw[9] << 8)
        head = raw[:hlen]
        hit = _NPY_CACHE.get(head)
        if hit is not None:
            dtype, shape, n = hit
            if len(raw) - hlen != n * dtype.itemsize:
                raise CorruptSample("truncated .npy payload")
            return np.frombuffer(raw, dtype=dtype, count=n, offset=hlen).reshape(shape)
    try:
        arr = load_payload(data)  # full validation by shards.codec on the first of each header
    except CodecError as e:
        raise CorruptSample(str(e)) from None
    if len(raw) >= 10 and raw[:8] == b"\x93NUMPY\x01\x00" and len(_NPY_CACHE) < 256:
        hlen = 10 + raw[8] + (raw[9] << 8)
        _NPY_CACHE[raw[:hlen]] = (arr.dtype, arr.shape, int(arr.size))
    return arr


def _f16_to_f32(h: np.ndarray) -> np.ndarray:
    """float16 -> float32 (torch's vectorised cast is ~10x faster than numpy's)."""
    h = np.ascontiguousarray(h)
    if not h.flags.writeable:  # torch warns on read-only arrays; the cast reads only
        h = h.copy()
    return torch.from_numpy(h).float().numpy()


class Clip:
    """A decoded sample whose log-mel ``[n_mels, frames]`` is turned into float32 on demand.

    ``arr`` is the stored array, or a :class:`shards.codec.ChunkedMel` for ``f16chunks``.

    Supports ``clip.shape``, ``clip[:, a:b]`` (float32 copy of those frames) and ``np.asarray(clip)``.
    Non-finite values in the frames read raise :class:`CorruptSample`.
    """

    __slots__ = ("key", "meta", "_arr", "_layout", "shape", "_full")

    def __init__(self, key: str, meta: dict, arr: np.ndarray | ChunkedMel):
        self.key = key
        self.meta = meta
        self._full = None
        if isinstance(arr, ChunkedMel):
            self._layout = "chunks"
            self.shape = arr.shape
        elif arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[1] == 2:  # f16chunks without its index
            frames = meta.get("frames")
            try:
                arr = chunks_to_planes(arr, frames if isinstance(frames, int) else -1)
            except CodecError as e:
                raise CorruptSample(str(e)) from None
            self._layout = "planes"
            self.shape = (int(arr.shape[1]), int(arr.shape[2]))
        elif arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[0] == 2:
            self._layout = "planes"
            self.shape = (int(arr.shape[1]), int(arr.shape[2]))
        elif arr.dtype == np.float16 and arr.ndim == 2:
            self._layout = "f16"
            self.shape = (int(arr.shape[0]), int(arr.shape[1]))
        elif arr.dtype == np.uint8 and arr.ndim == 2:
            self._layout = "u8"
            self.shape = (int(arr.shape[0]), int(arr.shape[1]))
            try:
                self._full = payload_to_mel(arr, meta)
            except CodecError as e:
                raise CorruptSample(str(e)) from None
        else:
            raise CorruptSample(f"unknown payload layout {arr.dtype} {arr.shape}")
        self._arr = arr

    @property
    def n_mels(self) -> int:
        return self.shape[0]

    @property
    def frames(self) -> int:
        return self.shape[1]

    ndim = 2

    def frames_slice(self, a: int, b: int) -> np.ndarray:
        """float32 ``[n_mels, b - a]`` for ``0 <= a <= b <= frames``."""
        if self._full is not None:
            out = self._full[:, a:b].copy()
        elif self._layout == "chunks":
            try:
                out = _f16_to_f32(self._arr.f16(a, b))  # decompresses only the chunks [a, b) lies in
            except CodecError as e:
                raise CorruptSample(f"sample {self.key}: {e}") from None
        elif self._layout == "planes":
            s = self._arr[:, :, a:b]
            h = np.empty(s.shape[1:] + (2,), dtype=np.uint8)
            h[..., 0] = s[0]
            h[..., 1] = s[1]
            out = _f16_to_f32(h.view(np.float16)[..., 0])
        else:
            out = _f16_to_f32(self._arr[:, a:b])
        if not np.isfinite(out).all():
            raise CorruptSample(f"sample {self.key}: non-finite values")
        return out

    def __getitem__(self, idx) -> np.ndarray:
        if isinstance(idx, tuple) and len(idx) == 2 and idx[0] == slice(None) and isinstance(idx[1], slice):
            a, b, step = idx[1].indices(self.shape[1])
            if step == 1:
                return self.frames_slice(a, max(a, b))
        return np.asarray(self)[idx]

    def __array__(self, dtype=None, copy=None):
        if self._full is None:
            self._full = self.frames_slice(0, self.shape[1])
        return self._full if dtype is None else self._full.astype(dtype)

    def __repr__(self) -> str:
        return f"Clip({self.key!r}, shape={self.shape}, layout={self._layout})"


def decode_clip(key: str, members: dict[str, bytes]) -> Clip:
    """Members of one sample -> :class:`Clip`; raises :class:`CorruptSample` with the reason."""
    if JSON_EXT not in members or MEL_EXT not in members:
        raise CorruptSample(f"sample {key}: missing member(s) {sorted({JSON_EXT, MEL_EXT} - set(members))}")
    try:
        meta = orjson.loads(members[JSON_EXT])  # ~4x faster than json for the ~500-byte sample JSON
    except ValueError as e:
        raise CorruptSample(f"sample {key}: bad JSON ({e})") from None
    if not isinstance(meta, dict):
        raise CorruptSample(f"sample {key}: JSON is not an object")
    data = members[MEL_EXT]
    try:
        chunked = ChunkedMel.open(data, meta)  # f16chunks: validates the index, decompresses nothing
        clip = Clip(key, meta, chunked if chunked is not None else _payload(decompress(data, checksum=wants_checksum(meta)), data))
    except CodecError as e:
        raise CorruptSample(f"sample {key}: {e}") from None
    if meta.get("frames") != clip.shape[1] or meta.get("n_mels") != clip.shape[0]:
        raise CorruptSample(f"sample {key}: JSON says {meta.get('n_mels')}x{meta.get('frames')}, array is {clip.shape}")
    if clip.shape[1] < 1:
        raise CorruptSample(f"sample {key}: no frames")
    return clip
