"""Log-mel sample codecs: bytes of ``<key>.mel.npy.zst``.

Every member decompresses (``zstd -d``, which reads concatenated frames as one stream) to a ``.npy``
file, so ``zstd -d`` + ``numpy.load`` reads it.  The array's dtype and shape say how to turn it back
into log-mels:

* ``f16`` -- float16 ``[n_mels, frames]``: the plain, lossless layout.
* ``f16planes`` -- uint8 ``[2, n_mels, frames]``: the low and the high byte of each float16 as two
  planes.  Lossless; the high bytes (sign, exponent, top mantissa bits) are highly redundant and
  compress far better once separated from the noisy low bytes.  One zstd frame.
* ``f16chunks`` (default) -- the ``f16planes`` bytes cut in time into chunks of ``C = CHUNK_FRAMES``
  frames, each its own zstd frame, so a reader can decompress only the chunks a crop needs.  The
  member is a zstd frame holding only the ``.npy`` header of a uint8 ``[K, 2, n_mels, C]`` array
  (``K = ceil(frames / C)``, chunk-major, the last chunk zero-padded to ``C`` frames), then one zstd
  frame per chunk holding its ``[2, n_mels, C]`` bytes.  The sample's JSON gets
  ``"mel_chunks": {"frames_per_chunk": C, "offsets": [byte offset of chunk k's frame, ...]}``.
* ``u8`` -- uint8 ``[n_mels, frames]`` quantised with a per-clip affine map stored in the sample's
  JSON (``"mel_q": {"lo": ..., "step": ...}``): value = lo + step * q.  Lossy; the bound
  ``step / 2`` is recorded per clip and the maximum over the set in the manifest.

Checksums (format version 2): every zstd frame carries zstd's content checksum (the low 32 bits of
the XXH64 of its decompressed bytes, verified by every zstd decoder), and the sample's JSON says so
with ``"mel_checksum": "zstd-xxh64"``; a reader then refuses a frame without it, so a flipped byte in
the mel data fails decoding instead of changing values.  Version-1 samples (no such field) decode as
before.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np
import zstandard

CODECS = ("f16", "f16planes", "f16chunks", "u8")
DEFAULT_CODEC = "f16chunks"
DEFAULT_LEVEL = 12  # zstd level: about 3.5 % smaller than 9 on noisy audio, same decode speed (docs/shard-format.md)
CHUNK_FRAMES = 100  # frames per zstd frame in f16chunks (1 s at a 10 ms hop)
CHECKSUM = "zstd-xxh64"  # value of the sample JSON's "mel_checksum" (format version 2)
CODEC_KEYS = ("mel_q", "mel_chunks", "mel_checksum")  # per-sample JSON fields that belong to the codec
_MAX_ELEMENTS = 512 * 200_000  # refuse absurd arrays from hostile members (~ 2 h at 10 ms, 512 bins)
_MAX_CHUNK_FRAMES = 100_000


class CodecError(ValueError):
    """A member could not be decoded as a melstream log-mel array."""


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def _npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """The ``.npy`` (version 1.0) header ``np.save`` writes for a C-order array of this shape and dtype."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def _f16_planes(mel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(planes uint8 [2, n_mels, frames], float16 values)`` of a float log-mel."""
    h = np.ascontiguousarray(mel.astype(np.float16))
    b = h.view(np.uint8).reshape(*h.shape, 2)
    return np.ascontiguousarray(np.moveaxis(b, -1, 0)), h


def _encode_chunks(planes: np.ndarray, cctx: zstandard.ZstdCompressor,
                   frames_per_chunk: int = CHUNK_FRAMES) -> tuple[bytes, dict[str, Any]]:
    """``f16chunks``: header frame + one zstd frame per chunk of ``frames_per_chunk`` frames."""
    _, n_mels, frames = planes.shape
    c = frames_per_chunk
    k = -(-frames // c)
    padded = np.zeros((2, n_mels, k * c), dtype=np.uint8)
    padded[:, :, :frames] = planes
    chunks = padded.reshape(2, n_mels, k, c).transpose(2, 0, 1, 3)  # [K, 2, n_mels, C]
    parts = [cctx.compress(_npy_header(chunks.shape, np.uint8))]
    offsets, pos = [], len(parts[0])
    for chunk in chunks:
        offsets.append(pos)
        parts.append(cctx.compress(np.ascontiguousarray(chunk).tobytes()))
        pos += len(parts[-1])
    return b"".join(parts), {"mel_chunks": {"frames_per_chunk": c, "offsets": offsets}}


def encode_mel(mel: np.ndarray, codec: str = DEFAULT_CODEC, level: int = DEFAULT_LEVEL,
               checksum: bool = True) -> tuple[bytes, dict[str, Any], np.ndarray]:
    """Encode a float log-mel ``[n_mels, frames]``.

    Returns ``(member_bytes, json_extra, decoded)``: ``json_extra`` goes into the sample's JSON
    (``mel_q`` for ``u8``, ``mel_chunks`` for ``f16chunks``, ``mel_checksum`` unless ``checksum`` is
    false, which writes a format-version-1 sample) and ``decoded`` is exactly what a reader gets back
    (float32).
    """
    if mel.ndim != 2 or mel.size == 0:
        raise ValueError(f"log-mel must be a non-empty 2-D array, got shape {mel.shape}")
    if not np.isfinite(mel).all():
        raise ValueError("log-mel contains NaN or Inf")
    cctx = zstandard.ZstdCompressor(level=level, write_checksum=checksum)
    extra: dict[str, Any] = {"mel_checksum": CHECKSUM} if checksum else {}
    if codec == "f16":
        h = mel.astype(np.float16)
        payload, decoded = h, h.astype(np.float32)
    elif codec in ("f16planes", "f16chunks"):
        payload, h = _f16_planes(mel)
        decoded = h.astype(np.float32)
        if codec == "f16chunks":
            data, chunk_extra = _encode_chunks(payload, cctx)
            return data, {**chunk_extra, **extra}, decoded
    elif codec == "u8":
        lo, hi = float(mel.min()), float(mel.max())
        step = (hi - lo) / 255.0 if hi > lo else 1.0
        q = np.clip(np.rint((mel - lo) / step), 0, 255).astype(np.uint8)
        payload = q
        extra["mel_q"] = {"lo": lo, "step": step, "max_abs_error": step / 2}
        decoded = (lo + step * q.astype(np.float32)).astype(np.float32)
    else:
        raise ValueError(f"unknown codec {codec!r}; choose from {CODECS}")
    data = cctx.compress(_npy_bytes(payload))
    return data, extra, decoded


_DCTX = zstandard.ZstdDecompressor()


def _read_npy_header(raw: bytes) -> tuple[np.dtype, tuple[int, ...], int]:
    """``(dtype, shape, payload offset)`` of a melstream ``.npy``, with the checks on dtype and size."""
    if len(raw) < 10 or raw[:6] != b"\x93NUMPY":
        raise CodecError("member is not a .npy file")
    buf = io.BytesIO(raw)
    version = (raw[6], raw[7])
    if version not in ((1, 0), (2, 0)):
        raise CodecError(f"unsupported .npy version {version}")
    try:
        np.lib.format.read_magic(buf)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(buf)
    except ValueError as e:
        raise CodecError(f"bad .npy header: {e}") from None
    if fortran or dtype not in (np.dtype("<f2"), np.dtype("u1")) or len(shape) not in (2, 3, 4):
        raise CodecError(f"unexpected array {dtype} {shape}")
    if int(np.prod(shape)) > _MAX_ELEMENTS:
        raise CodecError(f"array too large: {shape}")
    return dtype, shape, buf.tell()


def _load_npy(raw: bytes) -> np.ndarray:
    dtype, shape, offset = _read_npy_header(raw)
    n = int(np.prod(shape))
    if len(raw) - offset != n * dtype.itemsize:
        raise CodecError("truncated .npy payload")
    return np.frombuffer(raw, dtype=dtype, count=n, offset=offset).reshape(shape)


def _npy_header_len(raw: bytes) -> int:
    """Length of the ``.npy`` header at the start of ``raw`` (-1 if it is not one)."""
    if len(raw) < 12 or raw[:6] != b"\x93NUMPY":
        return -1
    if raw[6] == 1:
        return 10 + int.from_bytes(raw[8:10], "little")
    return 12 + int.from_bytes(raw[8:12], "little")


def _read_frames(data: bytes, max_output: int) -> bytes:
    """Every zstd frame of ``data``, decompressed and concatenated (what ``zstd -d`` writes)."""
    out, n = [], 0
    with _DCTX.stream_reader(data, read_across_frames=True) as r:
        while True:
            b = r.read(1 << 20)
            if not b:
                return b"".join(out)
            n += len(b)
            if n > max_output:
                raise CodecError(f"member decompresses to more than {max_output} bytes")
            out.append(b)


def wants_checksum(meta: dict | None) -> bool:
    """True when the sample JSON promises checksummed zstd frames (format version 2)."""
    v = (meta or {}).get("mel_checksum")
    if v is None:
        return False
    if v != CHECKSUM:
        raise CodecError(f"JSON mel_checksum {v!r} is not {CHECKSUM!r}")
    return True


def _check_has_checksum(frame: Any, what: str) -> None:
    try:
        ok = zstandard.get_frame_parameters(frame).has_checksum
    except zstandard.ZstdError as e:
        raise CodecError(f"{what}: zstd: {e}") from None
    if not ok:
        raise CodecError(f"{what}: zstd frame has no content checksum, but the JSON says it must")


def decompress(data: bytes, max_output: int = _MAX_ELEMENTS * 2 + 4096, checksum: bool = False) -> bytes:
    """The member's bytes after ``zstd -d``: one frame, or for ``f16chunks`` all frames concatenated.
    ``checksum``: refuse a first frame without zstd's content checksum (frames that have one are
    always verified)."""
    if checksum:
        _check_has_checksum(data, "mel data")
    try:
        size = zstandard.frame_content_size(data)
        if size > max_output:
            raise CodecError(f"zstd frame declares {size} bytes")
        raw = _DCTX.decompress(data, max_output_size=max_output)  # the first frame only
        if len(raw) == _npy_header_len(raw):  # a header-only first frame: f16chunks, read on
            raw = _read_frames(data, max_output)
        return raw
    except zstandard.ZstdError as e:
        raise CodecError(f"zstd: {e}") from None


def load_payload(data: bytes, checksum: bool = False) -> np.ndarray:
    """zstd + .npy -> the stored array (float16 or uint8), without interpreting the codec."""
    return _load_npy(decompress(data, checksum=checksum))


# float16 -> float32 through a 65,536-entry table: about 2x faster than numpy's astype here.
_F16_TO_F32 = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)


def f16_to_f32(h: np.ndarray) -> np.ndarray:
    """Exact float16 -> float32 conversion (table lookup)."""
    return np.take(_F16_TO_F32, np.ascontiguousarray(h).view(np.uint16))


def planes_to_f32(planes: np.ndarray) -> np.ndarray:
    """uint8 byte planes ``[2, n_mels, frames]`` (low, high) -> float32 ``[n_mels, frames]``."""
    u16 = planes[0].astype(np.uint16) | (planes[1].astype(np.uint16) << 8)
    return np.take(_F16_TO_F32, u16)


def _meta_int(meta: dict | None, name: str, lo: int, hi: int) -> int:
    v = (meta or {}).get(name)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise CodecError(f"JSON {name!r} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def chunks_to_planes(arr: np.ndarray, frames: int) -> np.ndarray:
    """Stored ``f16chunks`` array uint8 ``[K, 2, n_mels, C]`` -> byte planes ``[2, n_mels, frames]``."""
    k, _, n_mels, c = arr.shape
    if not (k - 1) * c < frames <= k * c:
        raise CodecError(f"{k} chunks of {c} frames cannot hold {frames} frames")
    return arr.transpose(1, 2, 0, 3).reshape(2, n_mels, k * c)[:, :, :frames]


def payload_to_mel(arr: np.ndarray, meta: dict | None = None) -> np.ndarray:
    """Turn a stored array back into a float32 log-mel ``[n_mels, frames]``."""
    if arr.dtype == np.float16 and arr.ndim == 2:
        return f16_to_f32(arr)
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[0] == 2:
        return planes_to_f32(arr)
    if arr.dtype == np.uint8 and arr.ndim == 4 and arr.shape[1] == 2:
        return planes_to_f32(chunks_to_planes(arr, _meta_int(meta, "frames", 1, _MAX_ELEMENTS)))
    if arr.dtype == np.uint8 and arr.ndim == 2:
        q = (meta or {}).get("mel_q")
        if not isinstance(q, dict) or not all(isinstance(q.get(k), (int, float)) for k in ("lo", "step")):
            raise CodecError("u8 member without mel_q parameters in its JSON")
        return (np.float32(q["lo"]) + np.float32(q["step"]) * arr.astype(np.float32)).astype(np.float32)
    raise CodecError(f"unknown payload layout {arr.dtype} {arr.shape}")


# ---------------------------------------------------------------- f16chunks: partial decoding

@dataclass(frozen=True)
class ChunkIndex:
    """Where the chunks of an ``f16chunks`` member are: chunk k is ``data[bounds[k]:bounds[k + 1]]``."""

    n_mels: int
    frames: int
    frames_per_chunk: int
    bounds: tuple[int, ...]  # K + 1 byte offsets; bounds[0] is the end of the header frame
    checksum: bool = False  # every frame must carry zstd's content checksum (format version 2)

    @property
    def chunks(self) -> int:
        return len(self.bounds) - 1

    @classmethod
    def from_meta(cls, meta: dict | None, size: int) -> "ChunkIndex | None":
        """The validated index from the sample JSON (``None`` when it has no ``mel_chunks``); a member of
        ``size`` bytes.  Raises :class:`CodecError` when ``mel_chunks`` is there but inconsistent."""
        mc = (meta or {}).get("mel_chunks")
        if mc is None:
            return None
        if not isinstance(mc, dict):
            raise CodecError("JSON mel_chunks is not an object")
        n_mels = _meta_int(meta, "n_mels", 1, 4096)
        frames = _meta_int(meta, "frames", 1, _MAX_ELEMENTS // n_mels)
        c = _meta_int(mc, "frames_per_chunk", 1, _MAX_CHUNK_FRAMES)
        offs = mc.get("offsets")
        k = -(-frames // c)
        if not isinstance(offs, list) or len(offs) != k:
            raise CodecError(f"mel_chunks: {frames} frames in chunks of {c} need {k} offsets, "
                             f"got {len(offs) if isinstance(offs, list) else type(offs).__name__}")
        if n_mels * k * c > _MAX_ELEMENTS:
            raise CodecError(f"mel_chunks: {k} chunks of {c} x {n_mels} are too large")
        prev = 0
        for o in offs + [size]:
            if type(o) is not int or o <= prev:  # not isinstance: bool and float are refused too
                raise CodecError(f"mel_chunks: offsets must be increasing integers in (0, {size}) (the member's size)")
            prev = o
        return cls(n_mels, frames, c, tuple(offs) + (size,), wants_checksum(meta))

    def chunk(self, data: bytes, k: int) -> np.ndarray:
        """Decompress chunk ``k``: uint8 ``[2, n_mels, frames_per_chunk]``."""
        frame = memoryview(data)[self.bounds[k]:self.bounds[k + 1]]
        want = 2 * self.n_mels * self.frames_per_chunk
        if self.checksum:
            _check_has_checksum(frame, f"chunk {k}")
        try:
            if zstandard.frame_content_size(frame) not in (want, -1):
                raise CodecError(f"chunk {k}: zstd frame does not declare {want} bytes")
            raw = _DCTX.decompress(frame, max_output_size=want, allow_extra_data=False)
        except zstandard.ZstdError as e:
            raise CodecError(f"chunk {k}: zstd: {e}") from None
        if len(raw) != want:
            raise CodecError(f"chunk {k}: {len(raw)} bytes, expected {want}")
        return np.frombuffer(raw, dtype=np.uint8).reshape(2, self.n_mels, self.frames_per_chunk)

    def check_header(self, data: bytes) -> None:
        """The header frame must hold exactly the ``.npy`` header of uint8 ``[K, 2, n_mels, C]``."""
        if self.checksum:
            _check_has_checksum(memoryview(data)[:self.bounds[0]], "header frame")
        try:
            raw = _DCTX.decompress(memoryview(data)[:self.bounds[0]], max_output_size=1 << 16, allow_extra_data=False)
        except zstandard.ZstdError as e:
            raise CodecError(f"header frame: zstd: {e}") from None
        dtype, shape, offset = _read_npy_header(raw)
        want = (self.chunks, 2, self.n_mels, self.frames_per_chunk)
        if dtype != np.uint8 or tuple(shape) != want or offset != len(raw):
            raise CodecError(f"header frame holds {dtype} {shape}, expected a bare header of uint8 {want}")


class ChunkedMel:
    """Lazy reader of an ``f16chunks`` member: a chunk is decompressed the first time one of its frames
    is read, and kept.  ``shape`` comes from the JSON; the header frame is not read (see ``decode_mel``)."""

    __slots__ = ("data", "index", "shape", "_chunks")

    def __init__(self, data: bytes, index: ChunkIndex):
        self.data = data
        self.index = index
        self.shape = (index.n_mels, index.frames)
        self._chunks: dict[int, np.ndarray] = {}

    @classmethod
    def open(cls, data: bytes, meta: dict | None) -> "ChunkedMel | None":
        """``None`` when the JSON has no ``mel_chunks``; :class:`CodecError` when they are invalid."""
        index = ChunkIndex.from_meta(meta, len(data))
        return None if index is None else cls(data, index)

    def chunk(self, k: int) -> np.ndarray:
        """Byte planes ``[2, n_mels, frames_per_chunk]`` of chunk ``k`` (decompressed once)."""
        ch = self._chunks.get(k)
        if ch is None:
            ch = self._chunks[k] = self.index.chunk(self.data, k)
        return ch

    def f16(self, start: int, stop: int) -> np.ndarray:
        """float16 ``[n_mels, stop - start]`` of frames ``[start, stop)``, interleaved straight from the
        byte planes of the chunks they lie in."""
        if not 0 <= start <= stop <= self.index.frames:
            raise ValueError(f"frames [{start}, {stop}) outside [0, {self.index.frames})")
        c = self.index.frames_per_chunk
        out = np.empty((self.index.n_mels, stop - start, 2), dtype=np.uint8)
        for k in range(start // c, -(-stop // c) if stop > start else 0):
            a, b = max(start, k * c), min(stop, (k + 1) * c)
            ch = self.chunk(k)
            out[:, a - start:b - start, 0] = ch[0, :, a - k * c:b - k * c]
            out[:, a - start:b - start, 1] = ch[1, :, a - k * c:b - k * c]
        return out.view("<f2")[..., 0]

    def frames(self, start: int, stop: int) -> np.ndarray:
        """float32 ``[n_mels, stop - start]``."""
        return f16_to_f32(self.f16(start, stop))


def decode_mel(data: bytes, meta: dict | None = None) -> np.ndarray:
    """Bytes of ``<key>.mel.npy.zst`` (+ the sample JSON for ``u8`` and ``f16chunks``) -> float32
    ``[n_mels, frames]``.  For ``f16chunks`` this checks the whole member: the header frame, every
    chunk at its recorded offset, and the zero padding of the last chunk."""
    chunked = ChunkedMel.open(data, meta)
    if chunked is None:
        return payload_to_mel(load_payload(data, wants_checksum(meta)), meta)
    idx = chunked.index
    idx.check_header(data)
    mel = chunked.frames(0, idx.frames)  # every chunk, each from its recorded offset
    tail = idx.frames - (idx.chunks - 1) * idx.frames_per_chunk
    if chunked.chunk(idx.chunks - 1)[:, :, tail:].any():
        raise CodecError("the padding of the last chunk is not zero")
    return mel


def decode_mel_frames(data: bytes, meta: dict | None, start: int, stop: int) -> np.ndarray:
    """Frames ``[start, stop)`` as float32 ``[n_mels, stop - start]``.  ``f16chunks`` decompresses only
    the chunks they lie in; the other codecs decode the whole member and slice it."""
    chunked = ChunkedMel.open(data, meta)
    if chunked is not None:
        return chunked.frames(start, stop)
    mel = decode_mel(data, meta)
    if not 0 <= start <= stop <= mel.shape[1]:
        raise ValueError(f"frames [{start}, {stop}) outside [0, {mel.shape[1]})")
    return np.ascontiguousarray(mel[:, start:stop])
