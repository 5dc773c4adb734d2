"""What a report shows per model, task and probe: shared by the tables (``eval/report.py``) and the
plots (``eval/plots.py``), which therefore do not import each other's helpers."""
from __future__ import annotations

from typing import Optional


def model_kind(m: dict) -> str:
    return m["info"].get("kind", "run")


def cell(m: dict, task: str, probe: str) -> Optional[dict]:
    """The result shown for a model in a probe's table (the supervised row shows its end-to-end result)."""
    res = m["results"].get(task, {})
    if model_kind(m) == "supervised":
        return res.get("supervised")
    return res.get(probe)


def probes_in(r: dict) -> list[str]:
    order = ["linear", "logreg", "knn", "mlp", "finetune"]
    have = {p for m in r["models"].values() for probes in m["results"].values() for p in probes}
    return [p for p in order if p in have]
