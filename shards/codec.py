"""Log-mel sample codecs: bytes of ``<key>.mel.npy.zst``.

Every member is one zstd frame holding a ``.npy`` file, so ``zstd -d`` + ``numpy.load`` reads it.
The array's dtype says how to turn it back into log-mels:

* ``f16`` -- float16 ``[n_mels, frames]``: the plain, lossless layout.
* ``f16planes`` (default) -- uint8 ``[2, n_mels, frames]``: the low and the high byte of each
  float16 as two planes.  Lossless; the high bytes (sign, exponent, top mantissa bits) are highly
  redundant and compress far better once separated from the noisy low bytes.
* ``u8`` -- uint8 ``[n_mels, frames]`` quantised with a per-clip affine map stored in the sample's
  JSON (``"mel_q": {"lo": ..., "step": ...}``): value = lo + step * q.  Lossy; the bound
  ``step / 2`` is recorded per clip and the maximum over the set in the manifest.
"""
from __future__ import annotations

import io
from typing import Any

import numpy as np
import zstandard

CODECS = ("f16", "f16planes", "u8")
DEFAULT_CODEC = "f16planes"
DEFAULT_LEVEL = 9
_MAX_ELEMENTS = 512 * 200_000  # refuse absurd arrays from hostile members (~ 2 h at 10 ms, 512 bins)


class CodecError(ValueError):
    """A member could not be decoded as a melstream log-mel array."""


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def encode_mel(mel: np.ndarray, codec: str = DEFAULT_CODEC, level: int = DEFAULT_LEVEL) -> tuple[bytes, dict[str, Any], np.ndarray]:
    """Encode a float log-mel ``[n_mels, frames]``.

    Returns ``(member_bytes, json_extra, decoded)``: ``json_extra`` goes into the sample's JSON
    (empty for lossless codecs) and ``decoded`` is exactly what a reader gets back (float32).
    """
    if mel.ndim != 2 or mel.size == 0:
        raise ValueError(f"log-mel must be a non-empty 2-D array, got shape {mel.shape}")
    if not np.isfinite(mel).all():
        raise ValueError("log-mel contains NaN or Inf")
    extra: dict[str, Any] = {}
    if codec == "f16":
        h = mel.astype(np.float16)
        payload, decoded = h, h.astype(np.float32)
    elif codec == "f16planes":
        h = np.ascontiguousarray(mel.astype(np.float16))
        b = h.view(np.uint8).reshape(*h.shape, 2)
        payload = np.ascontiguousarray(np.moveaxis(b, -1, 0))
        decoded = h.astype(np.float32)
    elif codec == "u8":
        lo, hi = float(mel.min()), float(mel.max())
        step = (hi - lo) / 255.0 if hi > lo else 1.0
        q = np.clip(np.rint((mel - lo) / step), 0, 255).astype(np.uint8)
        payload = q
        extra = {"mel_q": {"lo": lo, "step": step, "max_abs_error": step / 2}}
        decoded = (lo + step * q.astype(np.float32)).astype(np.float32)
    else:
        raise ValueError(f"unknown codec {codec!r}; choose from {CODECS}")
    data = zstandard.ZstdCompressor(level=level).compress(_npy_bytes(payload))
    return data, extra, decoded


_DCTX = zstandard.ZstdDecompressor()


def _load_npy(raw: bytes) -> np.ndarray:
    if len(raw) < 10 or raw[:6] != b"\x93NUMPY":
        raise CodecError("member is not a .npy file")
    buf = io.BytesIO(raw)
    version = np.lib.format.read_magic(buf)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(buf)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(buf)
    else:
        raise CodecError(f"unsupported .npy version {version}")
    if fortran or dtype not in (np.dtype("<f2"), np.dtype("u1")) or len(shape) not in (2, 3):
        raise CodecError(f"unexpected array {dtype} {shape}")
    n = int(np.prod(shape))
    if n > _MAX_ELEMENTS:
        raise CodecError(f"array too large: {shape}")
    offset = buf.tell()
    if len(raw) - offset != n * dtype.itemsize:
        raise CodecError("truncated .npy payload")
    return np.frombuffer(raw, dtype=dtype, count=n, offset=offset).reshape(shape)


def decompress(data: bytes, max_output: int = _MAX_ELEMENTS * 2 + 4096) -> bytes:
    try:
        return _DCTX.decompress(data, max_output_size=max_output)
    except zstandard.ZstdError as e:
        raise CodecError(f"zstd: {e}") from None


def load_payload(data: bytes) -> np.ndarray:
    """zstd + .npy -> the stored array (float16 or uint8), without interpreting the codec."""
    return _load_npy(decompress(data))


# float16 -> float32 through a 65,536-entry table: about 2x faster than numpy's astype here.
_F16_TO_F32 = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)


def f16_to_f32(h: np.ndarray) -> np.ndarray:
    """Exact float16 -> float32 conversion (table lookup)."""
    return np.take(_F16_TO_F32, np.ascontiguousarray(h).view(np.uint16))


def payload_to_mel(arr: np.ndarray, meta: dict | None = None) -> np.ndarray:
    """Turn a stored array back into a float32 log-mel ``[n_mels, frames]``."""
    if arr.dtype == np.float16 and arr.ndim == 2:
        return f16_to_f32(arr)
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[0] == 2:
        u16 = arr[0].astype(np.uint16) | (arr[1].astype(np.uint16) << 8)
        return np.take(_F16_TO_F32, u16)
    if arr.dtype == np.uint8 and arr.ndim == 2:
        q = (meta or {}).get("mel_q")
        if not isinstance(q, dict) or not all(isinstance(q.get(k), (int, float)) for k in ("lo", "step")):
            raise CodecError("u8 member without mel_q parameters in its JSON")
        return (np.float32(q["lo"]) + np.float32(q["step"]) * arr.astype(np.float32)).astype(np.float32)
    raise CodecError(f"unknown payload layout {arr.dtype} {arr.shape}")


def decode_mel(data: bytes, meta: dict | None = None) -> np.ndarray:
    """Bytes of ``<key>.mel.npy.zst`` (+ the sample JSON for ``u8``) -> float32 ``[n_mels, frames]``."""
    return payload_to_mel(load_payload(data), meta)
