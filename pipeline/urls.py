"""Opening shard directories and shards by path or URL, without shell pipes.

* local paths and ``file://`` URLs: plain ``open``;
* ``http://`` / ``https://``: fsspec's HTTP filesystem when ``aiohttp`` is installed, otherwise a
  streaming ``requests`` GET (``requests`` is a dependency of melstream, aiohttp is not);
* any other ``scheme://`` (``s3://``, ``gs://``, ``memory://`` ...): ``fsspec.open`` -- the
  backend (``s3fs``, ``gcsfs``) must be installed, else a one-line error says which to install;
* ``pipe:`` URLs (WebDataset's shell-command syntax) only when the caller passes ``allow_pipe=True``:
  they run a shell command, so a manifest or a config must never be able to turn them on.
"""
from __future__ import annotations

import io
import json
import os
from typing import IO, Any
from urllib.parse import urlparse

from shards.bounded import MAX_MANIFEST_BYTES, TooLarge, load_json_bounded

_BACKENDS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}
HTTP_TIMEOUT = 60.0


class UrlError(OSError):
    """A shard directory or shard could not be opened; ``str(err)`` says why in one line."""


def scheme_of(url: str) -> str:
    """``''`` for local paths, else the lower-case scheme (``'pipe'`` for ``pipe:cmd``)."""
    if url.startswith("pipe:"):
        return "pipe"
    if "://" not in url:
        return ""
    return urlparse(url).scheme.lower()


def local_path(url: str) -> str:
    return urlparse(url).path if scheme_of(url) == "file" else url


def join(base: str, name: str) -> str:
    """``base`` directory (path or URL) + a plain file name (already validated by the manifest reader)."""
    if scheme_of(base) in ("", "file"):
        return os.path.join(base, name)
    return base.rstrip("/") + "/" + name


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


class _RequestsStream(io.RawIOBase):
    """Read-only, forward-only stream over a ``requests`` response body."""

    def __init__(self, url: str, timeout: float):
        import requests

        try:
            self._resp = requests.get(url, stream=True, timeout=timeout)
            self._resp.raise_for_status()
        except requests.RequestException as e:
            raise UrlError(f"{url}: {e}") from None
        self._resp.raw.decode_content = True
        self._raw = self._resp.raw

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        data = self._raw.read(len(b))
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        try:
            self._resp.close()
        finally:
            super().close()


def _fsspec_open(url: str) -> IO[bytes]:
    try:
        import fsspec
    except ImportError:  # pragma: no cover - fsspec is a dependency
        raise UrlError(f"{url}: fsspec is not installed") from None
    scheme = scheme_of(url)
    try:
        return fsspec.open(url, "rb").open()
    except (ImportError, ValueError) as e:
        pkg = _BACKENDS.get(scheme)
        hint = f" (pip install {pkg})" if pkg else ""
        raise UrlError(f"{url}: no fsspec backend for {scheme}://{hint}: {e}") from None
    except FileNotFoundError:
        raise UrlError(f"{url}: not found") from None


def open_stream(url: str, allow_pipe: bool = False, bufsize: int = 1 << 20) -> IO[bytes]:
    """Open a shard (or any file) for sequential binary reading."""
    scheme = scheme_of(url)
    if scheme in ("", "file"):
        return open(local_path(url), "rb", buffering=bufsize)
    if scheme == "pipe":
        if not allow_pipe:
            raise UrlError(f"{url}: pipe: URLs run shell commands; pass allow_pipe=True to use them")
        from webdataset.gopen import gopen

        return gopen(url, "rb", bufsize=bufsize)
    if scheme in ("http", "https") and not _have("aiohttp"):
        return io.BufferedReader(_RequestsStream(url, HTTP_TIMEOUT), buffer_size=bufsize)
    return _fsspec_open(url)


def read_bytes(url: str, allow_pipe: bool = False, limit: int | None = None) -> bytes:
    """The whole file at ``url``; with ``limit``, more than ``limit`` bytes raise ``shards.bounded.TooLarge``."""
    with open_stream(url, allow_pipe=allow_pipe) as f:
        if limit is None:
            return f.read()
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"{url}: larger than {limit:,} bytes; not read")
    return data


def read_json(url: str, allow_pipe: bool = False, limit: int = MAX_MANIFEST_BYTES) -> Any:
    """Load a JSON file (at most ``limit`` bytes) from a path or URL; raises FileNotFoundError / UrlError /
    ValueError (``TooLarge`` for a file over the bound)."""
    scheme = scheme_of(url)
    if scheme in ("", "file"):
        return load_json_bounded(local_path(url), limit, "JSON file")
    return json.loads(read_bytes(url, allow_pipe=allow_pipe, limit=limit))
