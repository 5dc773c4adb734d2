"""The end-to-end demo: demo shards -> an exported encoder -> ``eval run`` on the demo tasks -> report + plots.

The encoder comes from a real short pretrain (``temporal_gap`` on ``mobile``, 30 steps, with the online
probe every 10 steps), exactly the chain ``make demo`` runs at a larger scale.
"""
from __future__ import annotations

import csv
import json
import os

import pytest

from eval.__main__ import main

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo_report(demo_small, tmp_path_factory):
    shard_root, _ = demo_small
    base = tmp_path_factory.mktemp("e2e")
    from eval.online import probe_callback
    from models import ENCODERS
    from models.objectives import OBJECTIVES
    from train.config import load_config
    from train.loop import train

    run = str(base / "runs" / "demo")
    cfg = load_config(["--method", "temporal_gap", "--shards", os.path.join(shard_root, "pretrain"), "--out", run,
                       "--steps", "30", "--batch-size", "16", "--num-workers", "0", "--log-every", "5",
                       "--tracker", "none", "--probe-every", "10", "--probe-task", "demo_family",
                       "--probe-data-root", shard_root], sorted(OBJECTIVES), sorted(ENCODERS))
    train(cfg, probe=probe_callback(cfg.probe_task, cfg.probe_data_root, os.path.join(run, "probe_cache")))
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    assert any("probe/demo_family/knn_accuracy" in r for r in rows)
    out = str(base / "reports" / "demo")
    rc = main(["run", "--model", run, "--model", "untrained,spectrogram", "--tasks", "demo_family,demo_pitch",
               "--data-root", shard_root, "--out", out, "--cache-dir", str(base / "cache"), "--seeds", "2",
               "--max-epochs", "60", "--no-progress"])
    assert rc == 0
    return out, run, base, shard_root


def test_report_files_and_ranking(demo_report, capsys):
    out, run, _, _ = demo_report
    r = json.load(open(os.path.join(out, "results.json")))
    assert list(r["models"]) == ["demo", "untrained:mobile", "spectrogram"]
    assert set(r["tasks"]) == {"demo_family", "demo_pitch"}
    assert r["tasks"]["demo_family"]["protocol"] == "demo-train-test" and r["tasks"]["demo_family"]["metric"] == "accuracy"
    for name, m in r["models"].items():
        for t in ("demo_family", "demo_pitch"):
            for probe in ("linear", "knn"):
                res = m["results"][t][probe]
                assert 0.0 <= res["mean"] <= 1.0 and res["n_test"] > 0
    assert r["models"]["demo"]["info"]["hash"] != r["models"]["untrained:mobile"]["info"]["hash"]
    md = open(os.path.join(out, "results.md")).read()
    assert "demo_family (acc)" in md and "## Linear probe" in md and "## kNN (k = 10)" in md
    rank = [line for line in md.splitlines() if line.startswith("Ranking")]
    assert len(rank) == 2 and all(all(n in line for n in ("demo", "untrained:mobile", "spectrogram")) for line in rank)
    rows = list(csv.DictReader(open(os.path.join(out, "results.csv"))))
    assert len(rows) == 3 * 2 * 2 and {r_["probe"] for r_ in rows} == {"linear", "knn"}
    # normalised score needs the supervised anchor: absent here
    assert all(row["normalised"] == "" for row in rows)
    for png in ("bars_linear.png", "bars_knn.png", "curves_demo.png"):
        with open(os.path.join(out, png), "rb") as f:
            assert f.read(8) == PNG


def test_compare_merges_reports(demo_report, capsys, tmp_path):
    out, run, base, shard_root = demo_report
    out2 = str(base / "reports" / "spec_knn")
    assert main(["run", "--model", "spectrogram", "--tasks", "demo_family", "--data-root", shard_root, "--out", out2,
                 "--cache-dir", str(base / "cache"), "--protocols", "knn", "--no-progress", "--no-plots"]) == 0
    capsys.readouterr()
    assert main(["compare", out, out2, "--out", str(tmp_path / "cmp")]) == 0
    text = capsys.readouterr().out
    assert "| demo |" in text and "spectrogram" in text and "Comparison" in text
    merged = json.load(open(tmp_path / "cmp" / "results.json"))
    assert set(merged["models"]) == {"demo", "untrained:mobile", "spectrogram"}  # same spectrogram model: merged
    assert main(["compare", str(tmp_path / "nothing")]) == 2


def test_logreg_protocol_end_to_end(demo_report, tmp_path):
    out, run, base, shard_root = demo_report
    out2 = str(tmp_path / "logreg")
    assert main(["run", "--model", run, "--model", "spectrogram", "--tasks", "demo_family", "--data-root", shard_root,
                 "--out", out2, "--cache-dir", str(base / "cache"), "--protocols", "logreg", "--no-progress",
                 "--no-plots"]) == 0
    r = json.load(open(os.path.join(out2, "results.json")))
    for m in r["models"].values():
        res = m["results"]["demo_family"]["logreg"]
        assert res["probe"] == "logreg" and 0.0 <= res["mean"] <= 1.0 and res["ci"] == "test set"
        assert len(res["C"]) == 1 and res["C"][0] > 0 and res["valid_metric"][0] is not None
    assert "## Logistic regression (C on validation)" in open(os.path.join(out2, "results.md")).read()
    assert {row["probe"] for row in csv.DictReader(open(os.path.join(out2, "results.csv")))} == {"logreg"}


def test_help_lists_tasks_and_protocols(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    text = capsys.readouterr().out
    for word in ("speech_commands_v1_12", "sc-v1-12", "esc50-5fold", "demo_family", "linear", "knn", "layerwise",
                 "finetune", "mlp", "logreg", "untrained[:ENCODER]"):
        assert word in text
