"""Archive downloads: HTTP Range resume + md5 verification, and safe extraction of (split) zips.

:func:`fetch` downloads a URL to ``dest`` through ``dest.part``: an interrupted transfer (a
dropped connection, a killed process) resumes with ``Range: bytes=<have>-``; a server that ignores
the range restarts it; transient failures (connection errors, 429, 5xx) are retried with backoff.
The finished file is checked against its md5 (and size) before it is renamed into place, and a
``dest.md5`` sidecar records the verified sum so a rerun need not hash 24 GB again.

:class:`SplitZip` reads a zip archive given as its parts (``x.z01``, ``x.z02``, ..., ``x.zip``:
Info-ZIP's split format, as on Zenodo) without merging them: the parts are one virtual stream,
and each central-directory entry's (disk number, offset) is mapped onto it.  ZIP64 is supported
(the FSD50K dev archive is 24 GB); methods stored, deflate and bzip2.  Extraction is safe: member
names that are absolute, contain ``..``, drive letters or NUL, and symlinks are refused; every
member's size and CRC-32 are checked; files appear under their final name only when complete.
No external tool (zip, 7z) is needed.
"""
from __future__ import annotations

import bz2
import json
import logging
import os
import random
import re
import stat
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Iterable

from shards.writer import file_digest

log = logging.getLogger("melstream.ingest.download")

CHUNK = 1 << 20
NET_CHUNK = 1 << 14  # small, so a dropped connection loses little of what already arrived


class DownloadError(ValueError):
    """A download or an archive failed for a reason the user must see (one line; a ValueError so
    the CLI prints it as ``error: ...`` rather than a traceback)."""


# -- HTTP ----------------------------------------------------------------------------------------
def md5_file(path: str, chunk: int = CHUNK) -> str:
    return file_digest(path, "md5", chunk)


def _verified(dest: str, md5: str | None, size: int | None) -> bool:
    """``dest`` exists and matches (using the ``.md5`` sidecar when it is current)."""
    if not os.path.isfile(dest):
        return False
    st = os.stat(dest)
    if size is not None and st.st_size != size:
        return False
    if md5 is None:
        return True
    side = dest + ".md5"
    try:
        with open(side) as f:
            rec = json.load(f)
        if rec.get("md5") == md5 and rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
            return True
    except (OSError, ValueError):
        pass
    if md5_file(dest) != md5:
        return False
    _write_sidecar(dest, md5)
    return True


def _write_sidecar(dest: str, md5: str) -> None:
    st = os.stat(dest)
    with open(dest + ".md5", "w") as f:
        json.dump({"md5": md5, "size": st.st_size, "mtime_ns": st.st_mtime_ns}, f)


def _content_range_total(value: str | None) -> tuple[int | None, int | None]:
    m = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$", value or "")
    if not m:
        return None, None
    return int(m.group(1)), (int(m.group(3)) if m.group(3) != "*" else None)


def fetch(url: str, dest: str, md5: str | None = None, size: int | None = None, retries: int = 5,
          backoff: float = 2.0, timeout: float = 60.0, session=None,
          progress: Callable[[int, int | None], None] | None = None) -> str:
    """Download ``url`` to ``dest`` with Range resume and md5/size verification; returns ``dest``."""
    import requests

    if _verified(dest, md5, size):
        return dest
    if os.path.exists(dest):
        log.warning("%s does not match its checksum; downloading it again", dest)
        os.unlink(dest)
    os.makedirs(os.path.dirname(os.path.abspath(dest)) or ".", exist_ok=True)
    part = dest + ".part"
    sess = session or requests.Session()
    failures = 0
    restarted_for_checksum = False
    while True:
        have = os.path.getsize(part) if os.path.exists(part) else 0
        total = size
        if total is not None and have > total:
            os.unlink(part)
            have = 0
        if total is None or have < total:
            have_before = have
            headers = {"Range": f"bytes={have}-", "Accept-Encoding": "identity"} if have else {"Accept-Encoding": "identity"}
            try:
                with sess.get(url, headers=headers, stream=True, timeout=timeout) as r:
                    if r.status_code == 416 and have:
                        total = have if total is None else total  # nothing left to send
                    elif r.status_code in (200, 206):
                        if r.status_code == 206:
                            first, total_hdr = _content_range_total(r.headers.get("Content-Range"))
                            if first != have:
                                raise DownloadError(f"{url}: server resumed at byte {first}, asked for {have}")
                            total = total_hdr if total_hdr is not None else total
                            mode = "ab"
                        else:  # the server ignored the range: start again
                            have, mode = 0, "wb"
                            cl = r.headers.get("Content-Length")
                            total = int(cl) if cl and cl.isdigit() else total
                        with open(part, mode) as f:
                            for chunk in r.iter_content(NET_CHUNK):
                                f.write(chunk)
                                have += len(chunk)
                                if progress:
                                    progress(have, total)
                            f.flush()
                            os.fsync(f.fileno())
                    elif r.status_code == 429 or r.status_code >= 500:
                        raise requests.ConnectionError(f"HTTP {r.status_code}")
                    else:
                        raise DownloadError(f"{url}: HTTP {r.status_code} {r.reason}")
            except DownloadError:
                raise
            except (requests.RequestException, OSError) as e:
                now_have = os.path.getsize(part) if os.path.exists(part) else 0
                failures = 1 if now_have > have_before else failures + 1  # progress resets the count
                if failures > retries:
                    raise DownloadError(f"{url}: {type(e).__name__}: {e} (gave up after {retries} retries; "
                                        f"rerun to resume from byte {os.path.getsize(part) if os.path.exists(part) else 0})") from None
                delay = backoff * 2 ** (failures - 1) * random.uniform(0.5, 1.5)
                log.warning("%s: %s; resuming in %.1f s (retry %d/%d)", os.path.basename(dest), e, delay, failures, retries)
                time.sleep(delay)
                continue
        have = os.path.getsize(part) if os.path.exists(part) else 0
        if total is not None and have < total:
            failures += 1
            if failures > retries:
                raise DownloadError(f"{url}: got {have} of {total} bytes (rerun to resume)")
            time.sleep(backoff * random.uniform(0.5, 1.5))
            continue
        if size is not None and have != size:
            os.unlink(part)
            raise DownloadError(f"{url}: size {have}, expected {size}")
        if md5 is not None:
            got = md5_file(part)
            if got != md5:
                os.unlink(part)
                if not restarted_for_checksum:
                    restarted_for_checksum = True
                    log.warning("%s: md5 %s, expected %s; downloading it again", os.path.basename(dest), got, md5)
                    continue
                raise DownloadError(f"{url}: md5 {got} does not match the published {md5}")
        os.replace(part, dest)
        if md5 is not None:
            _write_sidecar(dest, md5)
        return dest


# -- split zip reading ---------------------------------------------------------------------------
_EOCD = struct.Struct("<4sHHHHIIH")
_LOC64 = struct.Struct("<4sIQI")
_EOCD64 = struct.Struct("<4sQHHIIQQQQ")
_CDH = struct.Struct("<4sHHHHHHIIIHHHHHII")
_LFH = struct.Struct("<4sHHHHHIIIHH")


class _Concat:
    """The parts of a split archive as one read-only stream (disk i starts at ``offsets[i]``)."""

    def __init__(self, paths: list[str]):
        self.paths = paths
        self.sizes = [os.path.getsize(p) for p in paths]
        self.offsets = [sum(self.sizes[:i]) for i in range(len(paths))]
        self.total = sum(self.sizes)
        self._files: dict[int, object] = {}

    def _f(self, i: int):
        f = self._files.get(i)
        if f is None:
            f = self._files[i] = open(self.paths[i], "rb")
        return f

    def read(self, pos: int, n: int) -> bytes:
        out = bytearray()
        while n > 0 and pos < self.total:
            i = max(j for j in range(len(self.offsets)) if self.offsets[j] <= pos)
            f = self._f(i)
            f.seek(pos - self.offsets[i])
            b = f.read(min(n, self.sizes[i] - (pos - self.offsets[i])))
            if not b:
                break
            out += b
            pos += len(b)
            n -= len(b)
        return bytes(out)

    def iter(self, pos: int, n: int, chunk: int = CHUNK) -> Iterable[bytes]:
        while n > 0:
            b = self.read(pos, min(chunk, n))
            if not b:
                raise DownloadError("archive ends inside a member (a part is missing or truncated)")
            yield b
            pos += len(b)
            n -= len(b)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


@dataclass
class Member:
    name: str
    method: int
    flags: int
    crc: int
    csize: int
    usize: int
    disk: int
    offset: int
    external_attr: int
    made_by: int

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")

    @property
    def is_symlink(self) -> bool:
        return (self.made_by >> 8) == 3 and stat.S_ISLNK(self.external_attr >> 16)


def split_parts(zip_path: str) -> list[str]:
    """``x.zip`` -> ``[x.z01, ..., x.zNN, x.zip]`` (the .zNN that exist, in order, without gaps)."""
    base = zip_path[:-4] if zip_path.lower().endswith(".zip") else zip_path
    parts = []
    i = 1
    while os.path.exists(f"{base}.z{i:02d}"):
        parts.append(f"{base}.z{i:02d}")
        i += 1
    return parts + [zip_path]


class SplitZip:
    """A (possibly split, possibly ZIP64) zip archive read from its parts."""

    def __init__(self, parts: list[str]):
        missing = [p for p in parts if not os.path.isfile(p)]
        if missing:
            raise DownloadError(f"archive part(s) missing: {', '.join(missing)}")
        self.parts = parts
        self.io = _Concat(parts)
        try:
            self.members = self._read_directory()
        except BaseException:
            self.io.close()
            raise

    def __enter__(self) -> "SplitZip":
        return self

    def __exit__(self, *exc) -> None:
        self.io.close()

    def _abs(self, disk: int, offset: int) -> int:
        if not 0 <= disk < len(self.parts):
            raise DownloadError(f"{self.parts[-1]}: refers to part {disk + 1} of {len(self.parts)} "
                                f"(are parts missing?)")
        return self.io.offsets[disk] + offset

    def _read_directory(self) -> list[Member]:
        last = self.parts[-1]
        tail_len = min(self.io.sizes[-1], _EOCD.size + 65535 + _LOC64.size)
        tail_start = self.io.total - tail_len
        tail = self.io.read(tail_start, tail_len)
        i = tail.rfind(b"PK\x05\x06")
        if i < 0 or len(tail) - i < _EOCD.size:
            raise DownloadError(f"{last}: not a zip archive (no end-of-central-directory record)")
        (_, disk_no, cd_disk, _, n_total, cd_size, cd_off, _) = _EOCD.unpack_from(tail, i)
        eocd_abs = tail_start + i
        loc = eocd_abs - _LOC64.size
        if loc >= 0 and self.io.read(loc, 4) == b"PK\x06\x07":
            _, z64_disk, z64_off, n_disks = _LOC64.unpack(self.io.read(loc, _LOC64.size))
            if n_disks != len(self.parts):
                raise DownloadError(f"{last}: archive has {n_disks} parts, found {len(self.parts)}: "
                                    f"{', '.join(os.path.basename(p) for p in self.parts)}")
            rec = self.io.read(self._abs(z64_disk, z64_off), _EOCD64.size)
            if len(rec) < _EOCD64.size or rec[:4] != b"PK\x06\x06":
                raise DownloadError(f"{last}: bad ZIP64 end-of-central-directory record")
            (_, _, _, _, disk_no, cd_disk, _, n_total, cd_size, cd_off) = _EOCD64.unpack(rec)
        if disk_no + 1 != len(self.parts):
            raise DownloadError(f"{last}: archive has {disk_no + 1} parts, found {len(self.parts)}: "
                                f"{', '.join(os.path.basename(p) for p in self.parts)}")
        cd = self.io.read(self._abs(cd_disk, cd_off), cd_size)
        if len(cd) != cd_size:
            raise DownloadError(f"{last}: central directory is truncated")
        members, pos = [], 0
        for _ in range(n_total):
            if cd[pos:pos + 4] != b"PK\x01\x02":
                raise DownloadError(f"{last}: bad central directory entry")
            (_, made_by, _, flags, method, _, _, crc, csize, usize, nlen, xlen, clen, disk, _, ext_attr,
             off) = _CDH.unpack_from(cd, pos)
            raw = cd[pos + _CDH.size: pos + _CDH.size + nlen]
            extra = cd[pos + _CDH.size + nlen: pos + _CDH.size + nlen + xlen]
            pos += _CDH.size + nlen + xlen + clen
            name = raw.decode("utf-8" if flags & 0x800 else "cp437")
            usize, csize, off, disk = _zip64_extra(extra, usize, csize, off, disk)
            members.append(Member(name, method, flags, crc, csize, usize, disk, off, ext_attr, made_by))
        return members

    def _data_start(self, m: Member) -> int:
        pos = self._abs(m.disk, m.offset)
        hdr = self.io.read(pos, _LFH.size)
        if len(hdr) < _LFH.size or hdr[:4] != b"PK\x03\x04":
            raise DownloadError(f"{m.name}: bad local header (part missing or corrupt?)")
        nlen, xlen = _LFH.unpack(hdr)[9:11]
        return pos + _LFH.size + nlen + xlen

    def open_chunks(self, m: Member) -> Iterable[bytes]:
        """The uncompressed bytes of ``m``, streamed, with size and CRC-32 checked at the end."""
        if m.flags & 0x1:
            raise DownloadError(f"{m.name}: encrypted members are not supported")
        start = self._data_start(m)
        if m.method == 0:
            dec = None
        elif m.method == 8:
            dec = zlib.decompressobj(-15)
        elif m.method == 12:
            dec = bz2.BZ2Decompressor()
        else:
            raise DownloadError(f"{m.name}: compression method {m.method} not supported")
        crc, n = 0, 0
        for comp in self.io.iter(start, m.csize):
            data = comp if dec is None else dec.decompress(comp)
            n += len(data)
            if n > m.usize:
                raise DownloadError(f"{m.name}: more data than the declared {m.usize} bytes")
            crc = zlib.crc32(data, crc)
            yield data
        if dec is not None and hasattr(dec, "flush"):
            data = dec.flush()
            n += len(data)
            crc = zlib.crc32(data, crc)
            if data:
                yield data
        if n != m.usize or (crc & 0xFFFFFFFF) != m.crc:
            raise DownloadError(f"{m.name}: size/CRC mismatch (archive corrupt)")


def _zip64_extra(extra: bytes, usize: int, csize: int, off: int, disk: int) -> tuple[int, int, int, int]:
    p = 0
    while p + 4 <= len(extra):
        tag, ln = struct.unpack_from("<HH", extra, p)
        body = extra[p + 4:p + 4 + ln]
        p += 4 + ln
        if tag != 0x0001:
            continue
        q = 0
        if usize == 0xFFFFFFFF and q + 8 <= len(body):
            usize = struct.unpack_from("<Q", body, q)[0]
            q += 8
        if csize == 0xFFFFFFFF and q + 8 <= len(body):
            csize = struct.unpack_from("<Q", body, q)[0]
            q += 8
        if off == 0xFFFFFFFF and q + 8 <= len(body):
            off = struct.unpack_from("<Q", body, q)[0]
            q += 8
        if disk == 0xFFFF and q + 4 <= len(body):
            disk = struct.unpack_from("<I", body, q)[0]
    return usize, csize, off, disk


def safe_member_path(root: str, name: str) -> str | None:
    """Where member ``name`` goes under ``root``; raises on a path that would escape it."""
    n = name.replace("\\", "/")
    if "\x00" in n or n.startswith("/") or re.match(r"^[A-Za-z]:", n):
        raise DownloadError(f"unsafe member name {name!r} (absolute path)")
    parts = [p for p in n.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise DownloadError(f"unsafe member name {name!r} (path traversal)")
    if not parts:
        return None
    root_real = os.path.realpath(root)
    dest = os.path.realpath(os.path.join(root_real, *parts))
    if os.path.commonpath([root_real, dest]) != root_real:
        raise DownloadError(f"unsafe member name {name!r} (leaves {root})")
    return dest


def extract(parts: list[str], root: str, progress: Callable[[str], None] | None = None) -> list[str]:
    """Safely extract a (split) zip into ``root``; returns the files written.

    All member names are checked before anything is written.  Members are written to a temp
    name and renamed when their CRC has been verified; an existing file of the right size is kept.
    """
    os.makedirs(root, exist_ok=True)
    written = []
    with SplitZip(parts) as z:
        plan = []
        for m in z.members:
            dest = safe_member_path(root, m.name)
            if m.is_symlink:
                raise DownloadError(f"refusing symlink member {m.name!r}")
            plan.append((m, dest))
        for m, dest in plan:
            if dest is None:
                continue
            if m.is_dir:
                os.makedirs(dest, exist_ok=True)
                continue
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            if os.path.isfile(dest) and os.path.getsize(dest) == m.usize and not os.path.islink(dest):
                written.append(dest)
                continue
            tmp = dest + ".extracting"
            try:
                with open(tmp, "wb") as f:
                    for data in z.open_chunks(m):
                        f.write(data)
                os.replace(tmp, dest)
            except BaseException:
                if os.path.exists(tmp):
                    os.unlink(tmp)
                raise
            written.append(dest)
            if progress:
                progress(m.name)
    return written
