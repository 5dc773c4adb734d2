"""Shared helpers for the `make bench-*` scripts: results JSON merging and a table printer."""
from __future__ import annotations

import json
import os
import platform
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
RESULTS = os.path.join(ROOT, "bench", "results")


def merge_results(name: str, values: dict) -> str:
    """Merge ``values`` into ``bench/results/<name>.json`` (other scripts may own other keys)."""
    from shards.atomic import atomic_write_json

    path = os.path.join(RESULTS, f"{name}.json")
    cur = {}
    if os.path.exists(path):
        with open(path) as f:
            cur = json.load(f)
    cur.update(values)
    cur["machine"] = {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    atomic_write_json(path, cur)
    return path


def table(rows: list[list], header: list[str]) -> str:
    def fmt(v) -> str:
        if isinstance(v, float):
            return f"{v:,.1f}" if abs(v) >= 100 else f"{v:.4g}"
        return str(v)

    cols = [header] + [[fmt(v) for v in r] for r in rows]
    w = [max(len(r[i]) for r in cols) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w[i]) for i, c in enumerate(r)) for r in cols]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines)
