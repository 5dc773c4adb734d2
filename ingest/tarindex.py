"""Tar headers read as a stream, without the member data: names, sizes and byte offsets of every
member (ustar, GNU long names and pax records), so that a remote tar can be listed once and its
members fetched later by byte range (``ingest/sources/wds.py``).  Python's ``tarfile`` reads the data
it skips; this reader only needs the 512-byte headers and stops with :class:`TarTruncated` at a cut.
Also the member-name rules: ``split_name`` (key, extension), ``unsafe_name`` (paths that climb out or are
absolute) and ``output_key`` (a member key made safe for our shards)."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import IO, Callable, Iterator

_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
_BLOCK = 512
MAX_HEADER_BYTES = 1 << 20  # a pax or GNU long-name record larger than this is refused


class TarTruncated(ValueError):
    """The tar ends inside a header or a member, or without its end-of-archive marker."""


def _octal(b: bytes) -> int:
    if b[:1] and b[0] & 0x80:  # base-256 (GNU) for sizes >= 8 GiB
        return int.from_bytes(b[1:], "big")
    s = b.split(b"\0", 1)[0].strip()
    return int(s, 8) if s else 0


def _checksum_ok(h: bytes) -> bool:
    return _octal(h[148:156]) == sum(h[:148]) + 8 * 32 + sum(h[156:])


@dataclass
class TarEntry:
    name: str
    offset: int  # of the member's data
    size: int
    data: bytes | None  # read when asked for (label members), else None


def iter_tar(f: IO[bytes], want: Callable[[str, int], bool], total: int | None = None) -> Iterator[TarEntry]:
    """Regular-file members of a tar read from ``f`` (seekable when ``total``, the file size, is given:
    member data not wanted is skipped by seeking).  Raises :class:`TarTruncated` where the archive is cut
    (every complete member before it was yielded) and ValueError on a corrupt header."""
    pos = 0
    pax: dict[str, str] = {}
    longname: str | None = None

    def read(n: int) -> bytes:
        nonlocal pos
        parts, got = [], 0
        while got < n:
            chunk = f.read(min(n - got, 1 << 20))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        pos += got
        return b"".join(parts)

    def skip(n: int) -> bool:
        nonlocal pos
        if total is not None:
            if pos + n > total:
                return False
            f.seek(n, 1)
            pos += n
            return True
        return len(read(n)) == n

    while True:
        h = read(_BLOCK)
        if len(h) < _BLOCK:
            raise TarTruncated(f"archive ends at byte {pos} " + ("inside a header" if h else "without its end marker"))
        if h == bytes(_BLOCK):
            return
        if not _checksum_ok(h):
            raise ValueError(f"corrupt tar header at byte {pos - _BLOCK}")
        size = _octal(h[124:136])
        typeflag = h[156:157]
        name = h[0:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        if h[257:262] == b"ustar":
            prefix = h[345:500].split(b"\0", 1)[0].decode("utf-8", "replace")
            if prefix:
                name = prefix + "/" + name
        padded = size + (-size) % _BLOCK
        if typeflag in (b"x", b"g", b"L"):
            if size > MAX_HEADER_BYTES:
                raise ValueError(f"tar extended header of {size} bytes at byte {pos - _BLOCK}")
            data = read(padded)
            if len(data) < padded:
                raise TarTruncated(f"archive ends inside an extended header at byte {pos}")
            if typeflag == b"x":
                pax = _pax(data[:size])
            elif typeflag == b"L":
                longname = data[:size].split(b"\0", 1)[0].decode("utf-8", "replace")
            continue
        if longname is not None:
            name, longname = longname, None
        if pax:
            name = pax.get("path", name)
            size = int(pax.get("size", size))
            if size < 0:
                raise ValueError(f"negative member size in a pax header at byte {pos}")
            padded = size + (-size) % _BLOCK
            pax = {}
        if typeflag not in (b"0", b"\0", b"7"):  # directories, links, devices: no data of their own
            if not skip(padded if typeflag not in (b"1", b"2", b"5") else 0):
                raise TarTruncated(f"archive ends inside member {name!r}")
            continue
        offset = pos
        if want(name, size):
            data = read(padded)
            if len(data) < padded:
                raise TarTruncated(f"archive ends inside member {name!r}", TarEntry(name, offset, size, None))
            yield TarEntry(name, offset, size, data[:size])
        else:
            if not skip(padded):
                raise TarTruncated(f"archive ends inside member {name!r}", TarEntry(name, offset, size, None))
            yield TarEntry(name, offset, size, None)


def _pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    try:
        while pos < len(data):
            sp = data.index(b" ", pos)
            length = int(data[pos:sp])
            if length <= 0:
                break
            k, _, v = data[sp + 1:pos + length - 1].partition(b"=")
            out[k.decode("utf-8", "replace")] = v.decode("utf-8", "replace")
            pos += length
    except ValueError:
        raise ValueError("malformed pax header") from None
    return out


def split_name(name: str) -> tuple[str, str]:
    """WebDataset's rule: ``dir/abc.x.flac`` -> (``dir/abc``, ``x.flac``)."""
    d, _, base = name.rpartition("/")
    k, _, ext = base.partition(".")
    return (d + "/" + k if d else k), ext.lower()


def unsafe_name(name: str) -> str | None:
    """Why a member name must not be used (absolute, ``..``, NUL, backslash, drive letter), else None."""
    if not name or name.startswith("/") or "\0" in name or "\\" in name or re.match(r"^[A-Za-z]:", name):
        return "absolute or odd member name"
    if any(p == ".." for p in name.split("/")):
        return "member name with '..'"
    return None


def output_key(raw: str) -> str:
    """The shard key of a sample: its WebDataset key when that is a valid melstream key, else a slug +
    8 hex of its sha1 (``dir/abc`` -> ``dir-abc_1a2b3c4d``)."""
    if _KEY_RE.match(raw):
        return raw
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", raw).strip("-")[-80:] or "sample"
    return f"{slug}_{hashlib.sha1(raw.encode('utf-8', 'surrogateescape')).hexdigest()[:8]}"
