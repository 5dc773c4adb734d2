"""Opening shard directories and shards by path or URL, without shell pipes.

* local paths and ``file://`` URLs: plain ``open``;
* ``http://`` / ``https://``: fsspec's HTTP filesystem when ``aiohttp`` is installed, otherwise a
  streaming ``requests`` GET (``requests`` is a dependency of melstream, aiohttp is not);
* any other ``scheme://`` (``s3://``, ``gs://``, ``memory://`` ...): ``fsspec.open`` -- the
  backend (``s3fs``, ``gcsfs``) must be installed, else a one-line error says which to install;
* ``pipe:`` URLs (WebDataset's shell-command syntax) only when the caller passes ``allow_pipe=True``:
  they run a shell command, so a manifest or a config must never be able to turn them on.

Credentials (docs/sharing.md): rather than ``https://user:pw@host/`` on the command line (which
``ps`` and shell history show), put them in ``~/.netrc`` (``machine host login user password pw``;
requests and aiohttp read it) or in the environment: ``MELSTREAM_HTTP_USER`` + ``MELSTREAM_HTTP_PASSWORD``
(basic auth) or ``MELSTREAM_HTTP_TOKEN`` (``Authorization: Bearer``), sent to the http(s) hosts of
``--shards`` (a manifest's shard names are plain file names: they cannot point at another host).
Every message that names a URL passes it through ``shards.redact`` first; the URL itself is used as
given to open the file.
"""
from __future__ import annotations

import io
import os
from typing import IO, Any
from urllib.parse import urlparse

from shards.bounded import human_bytes, load_json_bounded, parse_json_bounded
from shards.redact import redact

_BACKENDS = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs", "abfs": "adlfs"}
HTTP_TIMEOUT = 60.0
MAX_JSON_BYTES = 64 << 20  # a manifest of ~200 000 shards; larger ones are refused, not read into memory
ENV_USER, ENV_PASSWORD, ENV_TOKEN = "MELSTREAM_HTTP_USER", "MELSTREAM_HTTP_PASSWORD", "MELSTREAM_HTTP_TOKEN"


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
    path, sep, query = base.partition("?")  # a directory URL with a token query: the name goes in the path
    return path.rstrip("/") + "/" + name + sep + query


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
            raise UrlError(redact(f"{url}: {e}")) from None
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
        raise UrlError(redact(f"{url}: fsspec is not installed")) from None
    scheme = scheme_of(url)
    options: dict[str, Any] = {"client_kwargs": {"trust_env": True}} if scheme in ("http", "https") else {}
    try:
        return fsspec.open(url, "rb", **options).open()
    except (ImportError, ValueError) as e:
        pkg = _BACKENDS.get(scheme)
        hint = f" (pip install {pkg})" if pkg else ""
        raise UrlError(redact(f"{url}: no fsspec backend for {scheme}://{hint}: {e}")) from None
    except FileNotFoundError:
        raise UrlError(redact(f"{url}: not found")) from None


def open_stream(url: str, allow_pipe: bool = False, bufsize: int = 1 << 20) -> IO[bytes]:
    """Open a shard (or any file) for sequential binary reading."""
    scheme = scheme_of(url)
    if scheme in ("", "file"):
        return open(local_path(url), "rb", buffering=bufsize)
    if scheme == "pipe":
        if not allow_pipe:
            raise UrlError(redact(f"{url}: pipe: URLs run shell commands; pass allow_pipe=True to use them"))
        from webdataset.gopen import gopen

        return gopen(url, "rb", bufsize=bufsize)
    if scheme in ("http", "https") and (not _have("aiohttp") or env_credentials(url)):
        return io.BufferedReader(_RequestsStream(url, HTTP_TIMEOUT), buffer_size=bufsize)
    return _fsspec_open(url)


def read_bytes(url: str, allow_pipe: bool = False, max_bytes: int | None = None) -> bytes:
    """The bytes at ``url``; with ``max_bytes``, ``ValueError`` for more (only ``max_bytes + 1`` are read)."""
    with open_stream(url, allow_pipe=allow_pipe) as f:
        if max_bytes is None:
            return f.read()
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(redact(f"{url}: larger than {human_bytes(max_bytes)}; refusing to read it"))
    return data


def read_json(url: str, allow_pipe: bool = False, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Load a JSON file from a path or URL, at most ``max_bytes``; raises FileNotFoundError / UrlError /
    ValueError (one line, the URL redacted)."""
    scheme = scheme_of(url)
    if scheme in ("", "file"):
        return load_json_bounded(local_path(url), max_bytes)
    return parse_json_bounded(read_bytes(url, allow_pipe=allow_pipe, max_bytes=max_bytes), redact(url))
