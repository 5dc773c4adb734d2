"""bench/methods_plots.py: the per-task delta heatmap, the list of lost tasks, loss curves from metrics.jsonl."""
from __future__ import annotations

import json
import os
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import methods_plots as mp  # noqa: E402

TASKS = ["real_pitch", "real_keyword"]


def _row(method, deltas, mean, tag="", steps=10):
    pt = {t: {"trained": 0.5 + d, "untrained": 0.5, "delta": {"mean": d, "ci95": ci}} for t, (d, ci) in zip(TASKS, deltas)}
    return {"method": method, "encoder": "mobile", "tag": tag, "steps": steps,
            "linear": {"per_task": pt, "delta_untrained": {"mean": mean, "ci95": 0.01}}}


def _rows():
    return {"b/default": _row("b", [(-0.04, 0.015), (0.005, 0.005)], 0.039),
            "a/default": _row("a", [(-0.01, 0.017), (-0.042, 0.025)], -0.023, steps=1835),
            "a/default@x": _row("a", [(0.02, 0.01), (0.03, 0.01)], 0.025, tag="x"),
            "c/default": {"method": "c", "encoder": "vit", "error": "RuntimeError: boom"}}


def test_losses_list_every_negative_task_and_marks_intervals_that_hold_zero():
    text = mp.losses_markdown(_rows(), TASKS)
    lines = text.splitlines()
    assert len(lines) == 3  # the errored row has no per-task deltas
    assert lines[0] == ("* `a` (mobile, 1835 steps, mean -2.3): loses pitch -1.0 ± 1.7 (n.s.), keyword -4.2 ± 2.5")
    assert lines[1].startswith("* `a` @x (mobile") and lines[1].endswith("loses no task")
    assert lines[2] == "* `b` (mobile, 10 steps, mean +3.9): loses pitch -4.0 ± 1.5"


def test_heatmap_grid_matches_the_rows_and_writes_a_png(tmp_path):
    labels, grid = mp.delta_grid(_rows(), TASKS)
    assert labels == ["a (mobile)", "a (mobile) @x", "b (mobile)"]
    assert grid[0] == [pytest.approx((-1.0, 1.7)), pytest.approx((-4.2, 2.5)), pytest.approx((-2.3, 1.0))]
    out = mp.heatmap(_rows(), TASKS, str(tmp_path / "d.png"))
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert mp.heatmap({}, TASKS, str(tmp_path / "e.png")) is None and not (tmp_path / "e.png").exists()
    assert mp.delta_grid(_rows(), TASKS, tagged=False)[0] == ["a (mobile)", "b (mobile)"]


def test_loss_curves_skip_bad_lines_and_average_windows(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    recs = [{"step": s, "loss": 0.7 - 0.001 * s} for s in range(0, 40, 10)]
    lines = [json.dumps(r) for r in recs] + ["not json", json.dumps({"step": 50, "loss": "nan"}),
                                             json.dumps({"step": 60})]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    pts = mp.read_losses(str(run))
    assert [p[0] for p in pts] == [0, 10, 20, 30]
    w = mp.window_means(pts, 20)
    assert w == [pytest.approx((5.0, 0.695)), pytest.approx((25.0, 0.675))]
    out = tmp_path / "c.png"
    assert mp.main(["curves", f"lr={run}", "--out", str(out), "--window", "20"]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert mp.main(["curves", f"{run}", "--out", str(out)]) == 2  # no LABEL=
    assert mp.main(["curves", f"x={run}", "--out", str(out), "--window", "0"]) == 2
    assert mp.main(["curves", f"x={run}", "--out", str(out), "--hline", "0.66=oracle"]) == 0
    assert mp.main(["curves", f"x={run}", "--out", str(out), "--hline", "nan=x"]) == 2


def test_results_file_without_rows_is_one_error_line(tmp_path, capsys):
    bad = tmp_path / "r.json"
    bad.write_text(json.dumps({"settings": {"tasks": "a"}}))
    assert mp.main(["losses", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "rows" in err[0]


def test_write_tables_keeps_the_doc_table_list_and_figure_in_step(tmp_path):
    import argparse

    import bench_methods as bm

    doc = tmp_path / "doc.md"
    m = bm.MARK
    lm = f"<!-- {bm.MARK_NAME}:losses -->"
    doc.write_text(f"head\n{m}\nold table\n{m}\nmiddle\n{lm}\nold list\n{lm}\ntail\n")
    a = argparse.Namespace(tasks=",".join(TASKS), steps=None, minutes=20.0, corpus="real",
                           out=str(tmp_path / "res.json"), doc=str(doc), doc_marker=None)
    rows = {k: v for k, v in _rows().items() if "error" not in v}
    pm = {"mean": 0.5, "ci95": 0.01}
    for r in rows.values():  # the summary table's fields
        r.update(variant="default", encoder_label="mobile", batch=64, examples_per_s=1.0, beats_untrained="yes",
                 knn={"trained": pm, "untrained": pm})
        r["linear"].update(trained=pm, untrained=pm, spectrogram=pm)
    bm.write_tables(rows, a)
    text = doc.read_text()
    assert "old table" not in text and "old list" not in text and text.startswith("head\n") and text.endswith("tail\n")
    assert "loses pitch -4.0 ± 1.5" in text.split(lm)[1]
    assert "(-4.2 ± 2.5)" in text.split(m)[1]
    assert (tmp_path / "res_delta.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "res_delta_all.png").read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- bench/probe_curve.py
import probe_curve as pc  # noqa: E402


def test_probe_curve_steps_are_checked() -> None:
    assert pc.parse_steps("1000,2000, 4000") == [1000, 2000, 4000]
    for bad, why in [("", "1 to"), ("10,5", "strictly increasing"), ("0,5", "strictly increasing"),
                     ("1,x", "integers"), (",".join(str(i) for i in range(1, 100)), "1 to")]:
        with pytest.raises(SystemExit, match=why):
            pc.parse_steps(bad)


def test_probe_curve_refuses_a_scheduled_method(tmp_path) -> None:
    """A cosine-scheduled method trained in segments would not follow its continuous run."""
    with pytest.raises(SystemExit, match="not constant"):
        pc.main(["--method", "m2d", "--steps", "10", "--out", str(tmp_path / "r")])
    with pytest.raises(SystemExit, match="not constant"):
        pc.main(["--method", "temporal_gap", "--steps", "10", "--out", str(tmp_path / "r"), "--hp", "schedule=cosine"])
    assert not (tmp_path / "r").exists()


def test_probe_curve_figure(tmp_path) -> None:
    pts = []
    for s, d in [(1000, -0.02), (2000, -0.01), (4000, 0.005)]:
        r = _row("temporal_gap", [(d, 0.01), (d / 2, 0.01)], d)
        r["step"] = s
        pts.append(r)
    out = pc.plot(pts, TASKS, str(tmp_path / "c.png"), "t")
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
