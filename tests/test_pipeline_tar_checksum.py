"""The streaming tar reader's header checksum (POSIX: byte sum with the checksum field read as spaces)."""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest

from pipeline.tario import _checksum_ok, iter_tar_stream


def reference_checksum(h: bytes) -> int:
    b = np.frombuffer(h, dtype=np.uint8).astype(np.int64)
    return int(b.sum() - b[148:156].sum() + 8 * 32)


def with_checksum(h: bytearray, value: int) -> bytes:
    h[148:156] = b"%06o\0 " % value
    return bytes(h)


def test_header_checksum_equals_the_byte_sum_definition():
    rng = np.random.default_rng(0)
    headers = [bytearray(rng.integers(0, 256, 512, dtype=np.uint8).tobytes()) for _ in range(300)]
    headers += [bytearray(b"\xff" * 512), bytearray(512), bytearray(b"\x01" * 512)]  # largest, smallest sums
    for h in headers:
        want = reference_checksum(bytes(h))
        assert _checksum_ok(with_checksum(h, want))
        for wrong in (want - 1, want + 1, want + 255, want - 65521, want + 65521):
            if 0 <= wrong < 8 ** 6:
                assert not _checksum_ok(with_checksum(h, wrong)), (want, wrong)


def test_a_flipped_header_byte_fails_the_shard():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as t:
        for name, data in (("k1.json", b"{}"), ("k1.mel.npy.zst", b"x" * 700)):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
    data = buf.getvalue()
    assert [k for k, _ in iter_tar_stream(io.BytesIO(data))] == ["k1"]
    for pos in (3, 150, 300, 511, 1024 + 40):  # name, checksum field, ustar area, last byte; second header
        bad = bytearray(data)
        bad[pos] ^= 0x10
        with pytest.raises(ValueError):
            list(iter_tar_stream(io.BytesIO(bytes(bad))))
