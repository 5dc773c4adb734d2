"""Reading the manifests of one or more shard directories and merging what the pipeline needs.

``read_manifests(dirs)`` validates every ``manifest.json`` (``shards.validate_manifest``), checks that
all directories were made with one frontend, and merges: the shard list (URL + sample count), the
global log-mel mean/std (exactly, weighted by value count), the label vocabulary (sorted union) and
the number of clips.  ``check_frontend`` compares the result with what a method/encoder expects.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from shards import MANIFEST, ManifestError, validate_manifest
from shards.frontend import FrontendConfig
from shards.redact import redact

from .urls import UrlError, join, local_path, read_json, scheme_of

log = logging.getLogger("melstream.pipeline")


class FrontendMismatch(ValueError):
    """Shard directories disagree on the frontend, or it is not what the method/encoder expects."""


@dataclass(frozen=True)
class ShardRef:
    url: str
    samples: int
    dir_index: int


@dataclass
class DatasetFacts:
    """Merged facts of the shard directories (what ``build_loader`` returns in ``info``)."""

    dirs: list[str]
    frontend: dict[str, Any]
    frontend_hash: str | None
    n_mels: int
    frame_rate: float
    vocabulary: list[str]
    mean: float
    std: float
    stats_count: int
    num_clips: int
    shards: list[ShardRef]
    codecs: list[str] = field(default_factory=list)
    manifests: list[dict] = field(default_factory=list, repr=False)

    @property
    def num_shards(self) -> int:
        return len(self.shards)


def read_manifest_any(shard_dir: str, allow_pipe: bool = False) -> dict[str, Any]:
    """Load and validate ``<shard_dir>/manifest.json`` from a path or URL (read with a size bound;
    messages name the URL with its secrets redacted)."""
    path = join(shard_dir, MANIFEST)
    try:
        m = read_json(path, allow_pipe=allow_pipe)
    except FileNotFoundError:
        raise ManifestError(redact(f"no {MANIFEST} in {shard_dir} (build shards with `python -m ingest ...`)")) from None
    except UrlError as e:
        raise ManifestError(redact(f"cannot read {e}")) from None  # UrlError: "<url>: <why>"
    except ValueError as e:  # already "<path>: <why>" (shards.bounded: TooLarge, invalid JSON)
        raise ManifestError(redact(str(e))) from None
    return validate_manifest(m, redact(path))


def dir_identity(d: str) -> str:
    """What makes two spellings of a shard directory the same: the real path of a local one (``D``, ``D/``,
    ``./D``, a symlink to it, ``file://D``), else the URL without trailing slashes."""
    if scheme_of(d) in ("", "file"):
        return os.path.realpath(local_path(d))
    return d.rstrip("/")


def unique_dirs(dirs: list[str]) -> list[str]:
    """``dirs`` with repeats of one directory (under any spelling) dropped, each with a warning: a directory
    given twice would have every clip read twice."""
    seen: dict[str, str] = {}
    out = []
    for d in dirs:
        ident = dir_identity(d)
        if ident in seen:
            log.warning("shard directory %s is the same as %s: read once", redact(d), redact(seen[ident]))
            continue
        seen[ident] = d
        out.append(d)
    return out


def _frontend_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> str:
    keys = sorted(set(a) | set(b))
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys if a.get(k) != b.get(k))


def merge_stats(parts: list[tuple[int, float, float]]) -> tuple[float, float, int]:
    """Merge ``(count, mean, std)`` triples exactly (population variance)."""
    n = sum(c for c, _, _ in parts)
    if n == 0:
        return 0.0, 1.0, 0
    mean = sum(c * m for c, m, _ in parts) / n
    ex2 = sum(c * (s * s + m * m) for c, m, s in parts) / n
    return mean, math.sqrt(max(ex2 - mean * mean, 0.0)), n


def read_manifests(dirs: list[str] | str, allow_pipe: bool = False) -> DatasetFacts:
    """Validate the manifests of ``dirs`` (paths or URLs) and merge them; one frontend for all."""
    if isinstance(dirs, str):
        dirs = [dirs]
    dirs = [str(d) for d in dirs]
    if not dirs:
        raise ValueError("no shard directories given")
    for d in dirs:
        if scheme_of(d) == "pipe" and not allow_pipe:
            raise ValueError(redact(f"{d}: pipe: URLs run shell commands; pass allow_pipe=True to use them"))
    dirs = unique_dirs(dirs)
    manifests = [read_manifest_any(d, allow_pipe=allow_pipe) for d in dirs]
    fe0 = manifests[0]["frontend"]
    for d, m in zip(dirs[1:], manifests[1:]):
        if m["frontend"] != fe0:
            raise FrontendMismatch(redact(
                f"shard directories use different frontends: {dirs[0]} vs {d} ({_frontend_diff(fe0, m['frontend'])}); "
                "re-ingest one of them with the other's --preset"))
    shards: list[ShardRef] = []
    vocab: set[str] = set()
    stats = []
    clips = 0
    codecs = []
    for i, (d, m) in enumerate(zip(dirs, manifests)):
        for s in m["shards"]:
            shards.append(ShardRef(join(d, s["name"]), int(s["samples"]), i))
        vocab.update(str(v) for v in (m.get("labels") or {}).get("vocabulary") or [])
        st = m["stats"]
        count = int(st.get("count") or 0) or sum(int(s["samples"]) for s in m["shards"])
        stats.append((count, float(st["mean"]), float(st["std"])))
        clips += sum(int(s["samples"]) for s in m["shards"])
        codecs.append(str((m.get("codec") or {}).get("name")))
    if not shards:
        raise ManifestError(redact(f"the manifests of {dirs} list no shards"))
    mean, std, count = merge_stats(stats)
    hop = fe0.get("hop_length") or 160
    sr = fe0.get("sample_rate") or 16000
    return DatasetFacts(
        dirs=dirs, frontend=dict(fe0), frontend_hash=manifests[0].get("frontend_hash"), n_mels=int(fe0["n_mels"]),
        frame_rate=float(sr) / float(hop), vocabulary=sorted(vocab), mean=mean, std=std if std > 0 else 1.0,
        stats_count=count, num_clips=clips, shards=shards, codecs=codecs, manifests=manifests)


def check_frontend(facts: DatasetFacts, expect_n_mels: int | None = None, expect_frontend: FrontendConfig | None = None) -> None:
    """Raise :class:`FrontendMismatch` when the shards' frontend is not what the method/encoder expects.

    ``expect_frontend`` is a :class:`shards.frontend.FrontendConfig` (a preset name is parsed where it is
    read: ``shards.frontend.get_preset``).
    """
    fe = facts.frontend
    where = redact(", ".join(facts.dirs))
    if expect_frontend is not None:
        if not isinstance(expect_frontend, FrontendConfig):
            raise TypeError(f"expect_frontend must be a FrontendConfig, got {type(expect_frontend).__name__}")
        want = expect_frontend.to_dict()
        if dict(fe) != want:
            raise FrontendMismatch(
                f"shards in {where} were made with frontend {fe.get('name')!r} ({fe.get('n_mels')} mels) but "
                f"{want.get('name')!r} ({want.get('n_mels')} mels) is expected; differing: {_frontend_diff(fe, want)}; "
                f"re-ingest with --preset {want.get('name')}")
    if expect_n_mels is not None and int(fe["n_mels"]) != int(expect_n_mels):
        raise FrontendMismatch(
            f"shards in {where} have {fe['n_mels']} mel bins (frontend {fe.get('name')!r}) but the method/encoder "
            f"expects {expect_n_mels}; re-ingest with a matching --preset (e.g. hares = 80 mels, byol_a = 64)")
