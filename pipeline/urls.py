"""Opening shard directories and shards by path or URL, without shell pipes (the readers live in
:mod:`shards.remote`, shared with ``ingest``).

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

import os
from typing import Any

from shards.bounded import MAX_MANIFEST_BYTES, TooLarge, human_bytes, load_json_bounded, parse_json_bounded
from shards.redact import redact
from shards.remote import ENV_PASSWORD, ENV_TOKEN, ENV_USER, HTTP_TIMEOUT, UrlError, env_credentials, local_path, open_stream, scheme_of  # noqa: F401  (moved to shards; public here too)


def join(base: str, name: str) -> str:
    """``base`` directory (path or URL) + a plain file name (already validated by the manifest reader)."""
    if scheme_of(base) in ("", "file"):
        return os.path.join(base, name)
    path, sep, query = base.partition("?")  # a directory URL with a token query: the name goes in the path
    return path.rstrip("/") + "/" + name + sep + query


def read_bytes(url: str, allow_pipe: bool = False, limit: int | None = None) -> bytes:
    """The bytes at ``url``; with ``limit``, more than ``limit`` bytes raise ``shards.bounded.TooLarge``
    (only ``limit + 1`` are read; the URL redacted in the message)."""
    with open_stream(url, allow_pipe=allow_pipe) as f:
        if limit is None:
            return f.read()
        data = f.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(redact(f"{url}: larger than {human_bytes(limit)}; not read"))
    return data


def read_json(url: str, allow_pipe: bool = False, limit: int = MAX_MANIFEST_BYTES) -> Any:
    """Load a JSON file (at most ``limit`` bytes) from a path or URL; raises FileNotFoundError / UrlError /
    ValueError (one line, the URL redacted; ``TooLarge`` for a file over the bound)."""
    scheme = scheme_of(url)
    if scheme in ("", "file"):
        return load_json_bounded(local_path(url), limit, "JSON file")
    return parse_json_bounded(read_bytes(url, allow_pipe=allow_pipe, limit=limit), redact(url))
