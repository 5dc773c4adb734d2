"""Opening shard directories and shards by path or URL, without shell pipes (the readers live in
:mod:`shards.remote`, shared with ``ingest``).

* local paths and ``file://`` URLs: plain ``open``;
* ``http://`` / ``https://``: fsspec's HTTP filesystem when ``aiohttp`` is installed, otherwise a
  streaming ``requests`` GET (``requests`` is a dependency of melstream, aiohttp is not);
* any other ``scheme://`` (``s3://``, ``gs://``, ``memory://`` ...): ``fsspec.open`` -- the
  backend (``s3fs``, ``gcsfs``) must be installed, else a one-line error says which to install;
* ``pipe:`` URLs (WebDataset's shell-command syntax) only when the caller passes ``allow_pipe=True``:
  they run a shell command, so a manifest or a config must never be able to turn them on.
"""
from __future__ import annotations

import json
import os
from typing import Any

from shards.bounded import MAX_MANIFEST_BYTES, TooLarge, load_json_bounded
from shards.remote import HTTP_TIMEOUT, UrlError, local_path, open_stream, scheme_of  # noqa: F401  (moved to shards)


def join(base: str, name: str) -> str:
    """``base`` directory (path or URL) + a plain file name (already validated by the manifest reader)."""
    if scheme_of(base) in ("", "file"):
        return os.path.join(base, name)
    return base.rstrip("/") + "/" + name


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
