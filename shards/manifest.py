"""``manifest.json``: what a shard directory holds, and how to trust it.

Built from the per-shard sidecars in ``.parts/`` (so ``python -m shards merge`` works after a job
array wrote disjoint shard sets), written atomically.  See docs/shard-format.md for every field.
"""
from __future__ import annotations

import glob
import json
import math
import os
import sys
import time
from typing import Any

from .atomic import atomic_write_json, atomic_write_lines
from .bounded import MAX_MANIFEST_BYTES, MAX_RECORD_BYTES, load_json_bounded
from .format import FAILURES, FORMAT_NAME, FORMAT_VERSION, MANIFEST, PARTS_DIR, check_shard_name
from .redact import redact_obj

TOOL = {"name": "melstream", "version": "0.1.0"}


class ManifestError(ValueError):
    """A manifest is missing, malformed or inconsistent; ``str(err)`` says which."""


def read_parts(shard_dir: str) -> list[dict[str, Any]]:
    """Sidecar records of the finished shards in ``shard_dir`` (sorted by shard name)."""
    out = []
    for p in sorted(glob.glob(os.path.join(shard_dir, PARTS_DIR, "*.tar.json"))):
        try:
            rec = load_json_bounded(p, MAX_RECORD_BYTES, "shard record")
            check_shard_name(rec["name"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ManifestError(f"unreadable shard record {p}: {e}") from None
        if os.path.exists(os.path.join(shard_dir, rec["name"])):
            out.append(rec)
    return out


def _merge_stats(parts: list[dict]) -> dict[str, float]:
    n = sum(int(p["stats"]["count"]) for p in parts)
    s = sum(float(p["stats"]["sum"]) for p in parts)
    ss = sum(float(p["stats"]["sum_sq"]) for p in parts)
    if n == 0:
        return {"mean": 0.0, "std": 1.0, "count": 0}
    mean = s / n
    var = max(ss / n - mean * mean, 0.0)
    return {"mean": mean, "std": math.sqrt(var), "count": n}


def build_manifest(shard_dir: str, command: list[str] | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Merge the sidecars of ``shard_dir`` into ``manifest.json`` and ``failures.jsonl``."""
    parts = read_parts(shard_dir)
    if not parts:
        raise ManifestError(f"no finished shards in {shard_dir}")
    first = parts[0]
    for key in ("dataset", "split", "frontend_hash", "codec"):
        vals = {json.dumps(p.get(key)) for p in parts}
        if len(vals) > 1:
            raise ManifestError(f"shards in {shard_dir} disagree on {key}: {sorted(vals)}")
    keys: set[str] = set()
    for p in parts:
        dup = keys.intersection(p["keys"])
        if dup:
            raise ManifestError(f"duplicate keys across shards, e.g. {sorted(dup)[:3]}")
        keys.update(p["keys"])
    labels: dict[str, int] = {}
    display: dict[str, str] = {}
    for p in parts:
        for k, v in p.get("labels", {}).items():
            labels[k] = labels.get(k, 0) + int(v)
        display.update(p.get("display_names") or {})
    # sources' URLs and paths (origins, reasons quoting them, the command) are written without secrets
    failures = [redact_obj(f) for p in parts for f in p.get("failures", [])]
    by_reason: dict[str, int] = {}
    for f in failures:
        r = str(f.get("reason_class") or f.get("reason", "unknown")).split(":")[0][:80]
        by_reason[r] = by_reason.get(r, 0) + 1
    codec = first.get("codec")
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "dataset": first.get("dataset"),
        "split": first.get("split"),
        "frontend": first.get("frontend"),
        "frontend_hash": first.get("frontend_hash"),
        "codec": {"name": codec, "lossless": codec != "u8",
                  "max_abs_error": max(float(p.get("max_abs_error", 0.0)) for p in parts)},
        "shards": [{"name": p["name"], "samples": p["samples"], "bytes": p["bytes"], "sha256": p["sha256"]} for p in parts],
        "totals": {
            "clips": sum(p["samples"] for p in parts),
            "hours": sum(float(p["seconds"]) for p in parts) / 3600.0,
            "bytes": sum(p["bytes"] for p in parts),
            "shards": len(parts),
        },
        "stats": _merge_stats(parts),
        "labels": {"vocabulary": sorted(labels), "counts": dict(sorted(labels.items())),
                   "display_names": {k: display[k] for k in sorted(display) if k in labels}},
        "failures": {"count": len(failures), "by_reason": dict(sorted(by_reason.items()))},
        "tool": TOOL,
        "command": redact_obj(list(command if command is not None else sys.argv)),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if extra:
        manifest.update(redact_obj(extra))
    atomic_write_lines(os.path.join(shard_dir, FAILURES), failures)
    atomic_write_json(os.path.join(shard_dir, MANIFEST), manifest)
    return manifest


def _require(cond: bool, msg: str) -> None:
    if not cond:
        raise ManifestError(msg)


def validate_manifest(m: Any, where: str = "manifest") -> dict[str, Any]:
    """Check the fields readers rely on; a hostile or stale manifest fails with one line."""
    _require(isinstance(m, dict), f"{where}: not a JSON object")
    _require(m.get("format") == FORMAT_NAME, f"{where}: not a melstream manifest (format={m.get('format')!r})")
    v = m.get("format_version")
    _require(isinstance(v, int) and 1 <= v <= FORMAT_VERSION,
             f"{where}: format_version {v!r} not supported (this reader knows 1..{FORMAT_VERSION})")
    _require(isinstance(m.get("frontend"), dict) and isinstance(m["frontend"].get("n_mels"), int),
             f"{where}: missing frontend config")
    shards = m.get("shards")
    _require(isinstance(shards, list), f"{where}: 'shards' must be a list")
    names: set[str] = set()
    for s in shards:
        _require(isinstance(s, dict), f"{where}: shard entry is not an object")
        try:
            check_shard_name(s.get("name"))
        except ValueError as e:
            raise ManifestError(f"{where}: {e}") from None
        # the same shard twice would be counted and read twice (training sees its clips twice as often)
        _require(s["name"] not in names, f"{where}: shard {s['name']} is listed twice; rebuild the manifest "
                 "with `python -m shards merge`")
        names.add(s["name"])
        _require(isinstance(s.get("samples"), int) and not isinstance(s["samples"], bool) and s["samples"] >= 0,
                 f"{where}: bad sample count for {s['name']}")
        _require(isinstance(s.get("sha256"), str) and len(s["sha256"]) == 64, f"{where}: bad sha256 for {s['name']}")
    _check_totals(m, shards, where)
    st = m.get("stats", {})
    _require(isinstance(st.get("mean"), (int, float)) and isinstance(st.get("std"), (int, float)) and st["std"] >= 0,
             f"{where}: bad stats")
    return m


def _check_totals(m: dict[str, Any], shards: list[dict[str, Any]], where: str) -> None:
    """The totals readers print and trust (``shards inspect``, clip counts) agree with the shard list."""
    t = m.get("totals")
    if t is None:
        return
    _require(isinstance(t, dict), f"{where}: 'totals' must be an object")
    clips = sum(s["samples"] for s in shards)
    for k, want in (("clips", clips), ("shards", len(shards))):
        if k in t:
            _require(t[k] == want, f"{where}: totals.{k} is {t[k]!r} but the shard list holds {want}")
    if "bytes" in t and all(isinstance(s.get("bytes"), int) for s in shards):
        want = sum(s["bytes"] for s in shards)
        _require(t["bytes"] == want, f"{where}: totals.bytes is {t['bytes']!r} but the shards hold {want}")


def read_manifest(shard_dir: str) -> dict[str, Any]:
    """Load (at most ``MAX_MANIFEST_BYTES``) and validate ``shard_dir/manifest.json`` (local directories)."""
    path = os.path.join(shard_dir, MANIFEST)
    try:
        m = load_json_bounded(path, MAX_MANIFEST_BYTES, "manifest")
    except FileNotFoundError:
        raise ManifestError(f"no {MANIFEST} in {shard_dir} (build shards with `make shards` or `python -m shards merge`)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ManifestError(f"{path}: invalid JSON ({e})") from None
    except ValueError as e:  # TooLarge
        raise ManifestError(str(e)) from None
    return validate_manifest(m, path)
