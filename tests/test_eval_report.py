"""Report tables: normalised score, domain averages, layer-wise table, CSV, training curves."""
from __future__ import annotations

import csv
import json
import os

from eval.plots import read_metrics, training_curve
from eval.report import merge, new_results, write_reports


def _res(mean, ci=0.01, probe="linear"):
    return {"probe": probe, "metric": "accuracy", "mean": mean, "ci95": ci, "ci": "t over 5 seeds", "per_seed": [mean],
            "secondary": {"macro_f1": {"mean": mean - 0.05, "ci95": None}}, "n_train": 10, "n_valid": 2, "n_test": 5}


def _results():
    r = new_results(["test"])
    r["tasks"] = {"musan": {"protocol": "musan-file-hash", "metric": "accuracy", "domain": "environment", "classes": 3},
                  "voxforge_lid": {"protocol": "voxforge-user-hash", "metric": "accuracy", "domain": "speech",
                                   "classes": 6}}
    r["models"] = {
        "ssl": {"info": {"kind": "run", "hash": "aaa"}, "results": {
            "musan": {"linear": _res(0.93), "knn": _res(0.90, probe="knn"),
                      "layerwise": {"block0": _res(0.5), "block1": _res(0.8)}},
            "voxforge_lid": {"linear": _res(0.55)}}},
        "spectrogram": {"info": {"kind": "spectrogram", "hash": "s"}, "results": {
            "musan": {"linear": _res(0.74), "knn": _res(0.70, probe="knn")}, "voxforge_lid": {"linear": _res(0.28)}}},
        "supervised:mobile": {"info": {"kind": "supervised", "hash": "sup"}, "results": {
            "musan": {"supervised": _res(0.99, probe="supervised")},
            "voxforge_lid": {"supervised": _res(0.90, probe="supervised")}}},
    }
    return r


def test_markdown_normalised_and_domains(tmp_path):
    r = _results()
    write_reports(r, str(tmp_path), plots=True)
    md = open(tmp_path / "results.md").read()
    # Tagliasacchi et al. 2019 Table 2 (MUSAN): 0.93 between 0.74 and 0.99 -> +76 %
    assert "| ssl | 0.93 ± .01 (+76%) | 0.55 ± .01 (+44%) | 0.93 | 0.55 | 0.74 |" in md
    assert "| spectrogram | 0.74 ± .01 (+0%) | 0.28 ± .01 (+0%) |" in md
    assert "| supervised:mobile (end to end) | 0.99 ± .01 (+100%)" in md
    assert "| model | musan (acc) | voxforge_lid (acc) | Env. | Speech | All |" in md
    assert "Ranking (mean over tasks): supervised:mobile (0.95) > ssl (0.74) > spectrogram (0.51)" in md
    assert "## Layer-wise probing" in md and "| ssl | 2 | 0.80 ± .01 |" in md
    kn = md.split("## kNN")[1]
    assert "(+69%)" in kn  # (0.90 - 0.70) / (0.99 - 0.70): kNN normalised against the kNN spectrogram
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    ssl = {(x["task"], x["probe"], x["block"]): x for x in rows if x["model"] == "ssl"}
    assert abs(float(ssl[("musan", "linear", "")]["normalised"]) - 76.0) < 1e-6
    assert ssl[("musan", "layerwise", "block1")]["mean"] == "0.8"
    assert os.path.isfile(tmp_path / "bars_linear.png") and os.path.isfile(tmp_path / "bars_knn.png")
    assert json.load(open(tmp_path / "results.json"))["format"] == "melstream-eval-results"


def test_merge_renames_clashing_models():
    a, b = _results(), _results()
    b["models"]["ssl"]["info"]["hash"] = "bbb"
    m = merge([("reports/a", a), ("reports/b", b)])
    assert "ssl" in m["models"] and "ssl (b)" in m["models"] and len(m["models"]) == 4


def test_training_curve_reads_partial_metrics(tmp_path):
    with open(tmp_path / "metrics.jsonl", "w") as f:
        for s in range(5):
            f.write(json.dumps({"step": s, "loss": 1 / (s + 1), **({"probe/t/knn_accuracy": 0.5} if s % 2 else {})}) + "\n")
        f.write('{"step": 5, "lo')  # a job still writing
    assert len(read_metrics(str(tmp_path / "metrics.jsonl"))) == 5
    p = training_curve(str(tmp_path), str(tmp_path / "c.png"))
    assert p and open(p, "rb").read(4) == b"\x89PNG"
    assert training_curve(str(tmp_path / "none"), str(tmp_path / "d.png")) is None
