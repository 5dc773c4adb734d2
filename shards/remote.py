"""Reading files by path or URL, without shell pipes: the one remote reader of ``pipeline`` and ``ingest``.

* local paths and ``file://`` URLs: plain ``open``;
* ``http://`` / ``https://``: fsspec's HTTP filesystem when ``aiohttp`` is installed, otherwise a
  streaming ``requests`` GET (``requests`` is a dependency of melstream, aiohttp is not);
* any other ``scheme://`` (``s3://``, ``gs://``, ``memory://`` ...): ``fsspec.open`` -- the
  backend (``s3fs``, ``gcsfs``) must be installed, else a one-line error says which to install;
* ``pipe:`` URLs (WebDataset's shell-command syntax) only when the caller passes ``allow_pipe=True``:
  they run a shell command, so a manifest or a config must never be able to turn them on.

:func:`read_range` reads ``length`` bytes at ``offset`` (HTTP ``Range`` requests; ``pipe:`` has none).
Error messages carry URLs through :func:`shards.redact.redact_url`.
"""
from __future__ import annotations

import io
import os
from typing import IO, Any
from urllib.parse import urlparse

from .redact import redact, redact_url

__all__ = ["UrlError", "HTTP_TIMEOUT", "scheme_of", "local_path", "open_stream", "read_range", "env_credentials",
           "ENV_USER", "ENV_PASSWORD", "ENV_TOKEN"]

_BACKENDS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}
HTTP_TIMEOUT = 60.0
# credentials for http(s) shard servers, kept out of URLs (docs/sharing.md); ~/.netrc works too
ENV_USER, ENV_PASSWORD, ENV_TOKEN = "MELSTREAM_HTTP_USER", "MELSTREAM_HTTP_PASSWORD", "MELSTREAM_HTTP_TOKEN"


class UrlError(OSError):
    """A file could not be opened or read; ``str(err)`` says why in one line."""


def scheme_of(url: str) -> str:
    """``''`` for local paths, else the lower-case scheme (``'pipe'`` for ``pipe:cmd``)."""
    if url.startswith("pipe:"):
        return "pipe"
    if "://" not in url:
        return ""
    return urlparse(url).scheme.lower()


def local_path(url: str) -> str:
    return urlparse(url).path if scheme_of(url) == "file" else url


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def env_credentials(url: str) -> dict[str, Any]:
    """``requests`` keyword arguments carrying the environment's credentials for ``url``: none when the
    URL has its own userinfo or the environment sets none (then ``~/.netrc`` applies, as requests reads it)."""
    if "@" in urlparse(url).netloc:
        return {}
    user, password, token = (os.environ.get(k) for k in (ENV_USER, ENV_PASSWORD, ENV_TOKEN))
    if user and password is not None:
        return {"auth": (user, password)}
    if token:
        return {"headers": {"Authorization": f"Bearer {token}"}}
    return {}


class _RequestsStream(io.RawIOBase):
    """Read-only, forward-only stream over a ``requests`` response body."""

    def __init__(self, url: str, timeout: float):
        import requests

        try:
            self._resp = requests.get(url, stream=True, timeout=timeout, **env_credentials(url))
            self._resp.raise_for_status()
        except requests.RequestException as e:
            raise UrlError(f"{redact_url(url)}: {redact(str(e))}") from None
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
        raise UrlError(f"{redact_url(url)}: fsspec is not installed") from None
    scheme = scheme_of(url)
    try:
        options: dict[str, Any] = {"client_kwargs": {"trust_env": True}} if scheme in ("http", "https") else {}
        return fsspec.open(url, "rb", **options).open()
    except (ImportError, ValueError) as e:
        pkg = _BACKENDS.get(scheme)
        hint = f" (pip install {pkg})" if pkg else ""
        raise UrlError(f"{redact_url(url)}: no fsspec backend for {scheme}://{hint}: {redact(str(e))}") from None
    except FileNotFoundError:
        raise UrlError(f"{redact_url(url)}: not found") from None


def open_stream(url: str, allow_pipe: bool = False, bufsize: int = 1 << 20) -> IO[bytes]:
    """Open a shard (or any file) for sequential binary reading."""
    scheme = scheme_of(url)
    if scheme in ("", "file"):
        return open(local_path(url), "rb", buffering=bufsize)
    if scheme == "pipe":
        if not allow_pipe:
            raise UrlError(f"{redact_url(url)}: pipe: URLs run shell commands; pass allow_pipe=True to use them")
        from webdataset.gopen import gopen

        return gopen(url, "rb", bufsize=bufsize)
    if scheme in ("http", "https") and (not _have("aiohttp") or env_credentials(url)):
        return io.BufferedReader(_RequestsStream(url, HTTP_TIMEOUT), buffer_size=bufsize)
    return _fsspec_open(url)


# per-process HTTP session of read_range (keep-alive across the requests of a worker)
_SESSION: dict[int, Any] = {}


def read_range(url: str, offset: int, length: int, timeout: float = HTTP_TIMEOUT) -> bytes:
    """``length`` bytes of ``url`` from ``offset``; a short answer (the file ends early) is an ``UrlError``."""
    if offset < 0 or length < 0:
        raise ValueError(f"bad range {offset}+{length}")
    scheme = scheme_of(url)
    if scheme in ("", "file"):
        with open(local_path(url), "rb", buffering=0) as f:
            data = os.pread(f.fileno(), length, offset) if hasattr(os, "pread") else (f.seek(offset), f.read(length))[1]
    elif scheme == "pipe":
        raise UrlError(f"{redact_url(url)}: pipe: URLs cannot be read by range")
    elif scheme in ("http", "https"):
        import requests

        sess = _SESSION.get(os.getpid())
        if sess is None:
            sess = _SESSION[os.getpid()] = requests.Session()
        try:
            cred = env_credentials(url)
            headers = {"Range": f"bytes={offset}-{offset + length - 1}", "Accept-Encoding": "identity",
                       **cred.get("headers", {})}
            r = sess.get(url, headers=headers, timeout=timeout, auth=cred.get("auth"))
            r.raise_for_status()
        except requests.RequestException as e:
            raise UrlError(f"{redact_url(url)}: {redact(str(e))}") from None
        if r.status_code != 206:
            raise UrlError(f"{redact_url(url)}: the server ignored the Range request (status {r.status_code})")
        data = r.content
    else:
        with _fsspec_open(url) as f:
            f.seek(offset)
            data = f.read(length)
    if len(data) != length:
        raise UrlError(f"{redact_url(url)}: {length} bytes at {offset} asked, {len(data)} read (file too short)")
    return bytes(data)
