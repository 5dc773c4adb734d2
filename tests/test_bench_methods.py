"""`make bench-methods` helpers: task means with CIs, deltas paired by probe seed, the registry sweep."""
from __future__ import annotations

import os
import sys

import pytest

from tests.conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import bench_methods as bm  # noqa: E402


def _res(per_seed):
    import numpy as np

    return {"mean": float(np.mean(per_seed)), "ci95": 0.01, "per_seed": list(per_seed)}


def test_probe_mean_averages_tasks_per_seed_and_delta_is_paired():
    res = {"a": {"linear": _res([0.5, 0.6, 0.7])}, "b": {"linear": _res([0.7, 0.8, 0.9])}}
    m = bm.probe_mean(res, ["a", "b"], "linear")
    assert m["per_seed"] == pytest.approx([0.6, 0.7, 0.8]) and m["mean"] == pytest.approx(0.7)
    # t interval over the 3 seed means: sd 0.1, t(2) = 4.303 -> 4.303 * 0.1 / sqrt(3)
    assert m["ci95"] == pytest.approx(4.3027 * 0.1 / 3 ** 0.5, rel=1e-3)
    other = {"a": {"linear": _res([0.4, 0.5, 0.6])}, "b": {"linear": _res([0.6, 0.7, 0.8])}}
    d = bm.delta(m, bm.probe_mean(other, ["a", "b"], "linear"))
    assert d["mean"] == pytest.approx(0.1) and d["ci95"] == pytest.approx(0.0, abs=1e-9)  # a constant shift
    # deterministic probes (kNN): test-set intervals combined in quadrature
    knn = {"a": {"knn": {"mean": 0.5, "ci95": 0.03}}, "b": {"knn": {"mean": 0.7, "ci95": 0.04}}}
    k = bm.probe_mean(knn, ["a", "b"], "knn")
    assert k["mean"] == pytest.approx(0.6) and k["ci95"] == pytest.approx(0.025)


def test_deterministic_probe_rows_get_unpaired_intervals_and_a_per_task_table(tmp_path):
    one = lambda m, ci: {"mean": m, "ci95": ci, "per_seed": [m]}  # noqa: E731  (logreg: one deterministic run)
    d = bm.delta(one(0.9, 0.03), one(0.8, 0.04))
    assert d["mean"] == pytest.approx(0.1) and d["ci95"] == pytest.approx(0.05)  # not a t-interval of one value
    tasks = ["real_a", "real_b"]
    per = {"run": {"real_a": {"linear": _res([0.5, 0.7]), "logreg": one(0.9, 0.03)},
                   "real_b": {"linear": _res([0.6, 0.8]), "logreg": one(0.7, 0.04)}},
           "untrained": {"real_a": {"linear": _res([0.6, 0.6]), "logreg": one(0.8, 0.04)},
                         "real_b": {"linear": _res([0.6, 0.6]), "logreg": one(0.74, 0.03)}},
           "spec": {"real_a": {"linear": _res([0.1, 0.1]), "logreg": one(0.2, 0.05)},
                    "real_b": {"linear": _res([0.1, 0.1]), "logreg": one(0.2, 0.05)}}}
    for name in per:
        for t in tasks:
            per[name][t]["knn"] = one(0.5, 0.05)
    r = bm.probe_rows(per, ["run", "untrained", "spec"], tasks, ("linear", "logreg", "knn"))
    assert "per_task" not in r["knn"]
    assert r["logreg"]["per_task"]["real_a"]["delta"]["mean"] == pytest.approx(0.1)
    assert r["logreg"]["per_task"]["real_b"]["delta"]["mean"] == pytest.approx(-0.04)
    assert r["logreg"]["delta_untrained"]["mean"] == pytest.approx(0.03)
    assert r["linear"]["per_task"]["real_a"]["delta"]["ci95"] is not None  # two seeds: paired
    rows = {"x/default": {"method": "x", "variant": "default", "encoder": "mobile", "encoder_label": "mobile",
                          "steps": 10, "batch": 64, "examples_per_s": 1.0, "final_loss": 0.5, "beats_untrained": "~", **r}}
    table = bm.per_task_markdown(rows, tasks, "logreg")
    assert "| x | mobile | 10 | 90.0 / 80.0 (+10.0 ± 5.0) | 70.0 / 74.0 (-4.0 ± 5.0) |" in table
    doc = tmp_path / "doc.md"
    m = bm.MARK_NAME
    doc.write_text(f"<!-- {m} -->\nold\n<!-- {m} -->\n<!-- {m}:logreg -->\nold\n<!-- {m}:logreg -->\n"
                   f"<!-- {m}:logreg:losses -->\n<!-- {m}:logreg:losses -->\n")
    import argparse

    bm.write_tables(rows, argparse.Namespace(tasks=",".join(tasks), steps=10, minutes=0, corpus="real",
                                             out=str(tmp_path / "res.json"), doc=str(doc), doc_marker=None))
    text = doc.read_text()
    assert "\nold\n" not in text and "Logistic regression" in text and "loses b -4.0 ± 5.0 (n.s.)" in text
    assert (tmp_path / "res_delta_logreg.png").read_bytes()[:4] == b"\x89PNG"
    assert "combined, unpaired" in text


def test_deterministic_probes_on_the_same_clips_are_paired_by_clip():
    from eval import metrics as M

    def det(correct: str, key: str = "k") -> dict:
        m = correct.count("1") / len(correct)
        return {"mean": m, "ci95": M.binomial_ci95(m, len(correct)), "per_seed": [m], "correct": correct,
                "test_key": key}

    a, b = det("1" * 90 + "0" * 10), det("1" * 80 + "0" * 20)
    d = bm.delta(a, b)
    assert d["paired"] == "clips" and d["mean"] == pytest.approx(0.1)
    assert d["ci95"] == pytest.approx(M.paired_ci95(a["correct"], b["correct"]))
    assert d["ci95"] < bm.delta({**a, "test_key": "other"}, b)["ci95"]  # other clips: unpaired, wider
    assert bm.delta({**a, "test_key": "other"}, b)["paired"] == "no"
    tasks = ["t1", "t2"]
    per = {"run": {"t1": {"logreg": a}, "t2": {"logreg": det("1" * 50 + "0" * 50, "k2")}},
           "un": {"t1": {"logreg": b}, "t2": {"logreg": det("0" * 10 + "1" * 40 + "0" * 50, "k2")}},
           "spec": {"t1": {"logreg": b}, "t2": {"logreg": b}}}
    r = bm.probe_rows(per, ["run", "un", "spec"], tasks, ("logreg",))
    t1, t2 = (r["logreg"]["per_task"][t]["delta"] for t in tasks)
    md = r["logreg"]["delta_untrained"]
    assert md["paired"] == "tasks" and md["mean"] == pytest.approx((0.1 + 0.1) / 2)
    assert md["ci95"] == pytest.approx((t1["ci95"] ** 2 + t2["ci95"] ** 2) ** 0.5 / 2)
    rows = {"x/default": {"per_task_note": None, "logreg": r["logreg"]}}
    assert bm.pairing_note(rows, "logreg").startswith("95 % interval paired over the test clips")
    old = {"per_task": {t: {"trained": 0.5, "untrained": 0.5, "delta": {"mean": 0.0, "ci95": 0.1, "paired": "no"}}
                        for t in tasks}, "trained": {"mean": 0.5}, "untrained": {"mean": 0.5},
           "delta_untrained": {"mean": 0.0, "ci95": 0.05, "paired": "no"}}
    both = {k: {"method": k.split("/")[0], "variant": "default", "encoder": "mobile", "encoder_label": "mobile", "steps": 1,
                "logreg": v} for k, v in (("new/default", r["logreg"]), ("old/default", old))}
    assert bm.pairing_note(both, "logreg").startswith(f"95 % interval: on rows marked{bm.PAIRED_MARK}")
    table = bm.per_task_markdown(both, tasks, "logreg").splitlines()
    assert table[2].startswith("| new |") and table[2].endswith(f"(+10.0 ± {100 * md['ci95']:.1f}){bm.PAIRED_MARK} |")
    assert table[3].startswith("| old |") and table[3].endswith("(+0.0 ± 5.0) |")


def test_every_registered_method_gets_its_default_and_the_shared_encoder():
    from models.objectives import OBJECTIVES

    for method in OBJECTIVES:
        v = bm.variants(method, 64)
        assert v[0].name == "default" and v[-1].name == "shared"
        assert (v[-1].encoder, v[-1].kwargs) == ("audio_ntt", {"d": 512})
        assert all(x.kwargs.get("n_mels", 64) == 64 for x in v)  # the shards' mel bins, not the paper's 80
        small = getattr(OBJECTIVES.get(method), "small_config", None)
        if small:  # the CPU-sized setting replaces the paper encoder, hyperparameters included
            assert (v[0].encoder, v[0].config) == (small["encoder"], "small_config")
            assert v[0].hparams == small.get("hparams", {}) and "[small_config]" in v[0].label
        else:
            assert (v[0].encoder, v[0].config, v[0].hparams) == (OBJECTIVES.get(method).default_encoder[0], "paper", {})


def test_shared_encoder_is_skipped_with_the_reason_when_the_objective_refuses_it():
    from models.objectives import OBJECTIVES, Objective

    refused = {m: bm.variants(m, 64)[-1].skip for m in OBJECTIVES}
    assert refused["m2d"] and "ViT patch encoder" in refused["m2d"]  # the objective's own one-line reason
    assert refused["mae"] and refused["byol_a"] is None and refused["byol_a_v2"] is None

    class Picky(Objective):  # a generic objective that refuses every encoder: the sweep records why, no crash
        name = "picky_test"
        small_config = {"encoder": "mobile", "hparams": {"n_frames": 96}}

        @classmethod
        def check(cls, encoder, n_frames=None):
            raise ValueError(f"picky_test: no {encoder.name} at {n_frames} frames")

    OBJECTIVES.add("picky_test", Picky)
    try:
        d, sh = bm.variants("picky_test", 64)
    finally:
        OBJECTIVES.remove("picky_test")
    assert d.skip is None and d.hparams == {"n_frames": 96} and d.config == "small_config"
    assert sh.skip == "picky_test: no audio_ntt at 96 frames" and sh.hparams == {"n_frames": 96}
    md = bm.markdown({"picky_test/shared": {"method": "picky_test", "encoder_label": sh.label, "skipped": sh.skip}})
    assert "skipped: picky_test: no audio_ntt at 96 frames" in md


def _fake_bench(monkeypatch, tmp_path, vocabulary=("a",)):
    """``run_one``/``evaluate`` replaced by stubs that record which runs a process took (no training)."""
    (tmp_path / "demo_varied" / "pretrain").mkdir(parents=True)
    monkeypatch.setattr(bm, "run_one", lambda method, v, a, hp: {"run": f"{method}__{v.name}"})
    monkeypatch.setattr(bm, "evaluate", lambda run, a: {"evaluated": run})
    monkeypatch.setattr("pipeline.read_manifests", lambda dirs: type("M", (), {"n_mels": 64, "vocabulary": list(vocabulary)})())
    (tmp_path / "demo_varied" / "pretrain" / "manifest.json").write_text("{}")


def test_jobs_split_the_runs_and_merge_into_one_file(tmp_path, monkeypatch):
    import json

    _fake_bench(monkeypatch, tmp_path)
    out = str(tmp_path / "m.json")
    common = ["--out", out, "--data", str(tmp_path), "--methods", "byol_a,triplet,m2d", "--jobs", "2"]
    assert bm.main(common + ["--job-index", "0"]) == 0
    rows = json.load(open(out))["rows"]
    assert sorted(rows) == ["byol_a/default", "m2d/default", "triplet/default"]  # job 0: every other run
    assert bm.main(common + ["--job-index", "1"]) == 0
    rows = json.load(open(out))["rows"]  # job 1 added the shared rows (m2d's skipped with its reason)
    assert sorted(rows) == sorted(f"{m}/{v}" for m in ("byol_a", "triplet", "m2d") for v in ("default", "shared"))
    assert rows["m2d/shared"]["skipped"] and rows["triplet/shared"]["evaluated"].endswith("triplet__shared")


def test_supervised_is_skipped_with_its_reason_on_unlabelled_shards(tmp_path, monkeypatch):
    import json

    _fake_bench(monkeypatch, tmp_path, vocabulary=())
    out = str(tmp_path / "m.json")
    assert bm.main(["--out", out, "--data", str(tmp_path), "--methods", "supervised,cola", "--jobs", "1",
                    "--variants", "default"]) == 0
    rows = json.load(open(out))["rows"]
    assert "labelled" in rows["supervised/default"]["skipped"] and "evaluated" not in rows["supervised/default"]
    assert rows["cola/default"]["evaluated"].endswith("cola__default")  # self-supervised methods still run


def test_jobs_launch_one_process_per_job_with_their_share_of_threads(tmp_path, monkeypatch, capsys):
    import json
    import subprocess

    _fake_bench(monkeypatch, tmp_path)
    out = str(tmp_path / "m.json")
    launched = []

    class FakeProc:
        def __init__(self, cmd, env):
            launched.append((cmd, env))
            i = cmd[cmd.index("--job-index") + 1]
            bm.save_row(out, f"x{i}/default", {"method": f"x{i}", "encoder_label": "e", "skipped": "s"},
                        bm.argparse.Namespace(tasks="t", window="crop:288", corpus="varied"))

        def wait(self):
            return 0

    monkeypatch.setattr(subprocess, "Popen", FakeProc)
    monkeypatch.setattr(bm.os, "cpu_count", lambda: 4)
    assert bm.main(["--out", out, "--data", str(tmp_path), "--jobs", "2"]) == 0
    assert [c[c.index("--job-index") + 1] for c, _ in launched] == ["0", "1"]
    assert all(env["OMP_NUM_THREADS"] == "2" for _, env in launched)  # 4 cores // 2 jobs
    assert sorted(json.load(open(out))["rows"]) == ["x0/default", "x1/default"]
    assert "2 jobs" in capsys.readouterr().out
    assert bm.main(["--out", out, "--data", str(tmp_path), "--jobs", "0"]) == 2


def test_effective_rank_counts_the_directions_the_embeddings_use():
    import numpy as np

    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from methods_rank import effective_rank

    rng = np.random.default_rng(0)
    iso = rng.standard_normal((4000, 8))
    assert 7.5 < effective_rank(iso) <= 8.0  # isotropic: every direction equally
    low = rng.standard_normal((4000, 2)) @ rng.standard_normal((2, 8))  # 8 columns spanning 2 directions
    assert 1.0 <= effective_rank(low) <= 2.0
    scaled = iso * np.array([1000, 1, 1, 1, 1, 1, 1, 1])  # columns are standardised first, as the probe sees them
    assert effective_rank(scaled) == pytest.approx(effective_rank(iso), rel=1e-6)
    assert effective_rank(np.c_[iso, np.ones(4000)]) == pytest.approx(effective_rank(iso), rel=1e-6)  # constant dropped


def test_level_share_measures_how_much_of_the_embedding_is_loudness():
    import numpy as np

    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from methods_rank import level_share

    rng = np.random.default_rng(0)
    level = rng.standard_normal(5000)
    noise = rng.standard_normal((5000, 4))
    assert level_share(noise, level) < 0.01  # nothing to do with level
    assert level_share(np.c_[level, 3 * level, noise[:, :2]], level) == pytest.approx(0.5, abs=0.01)  # 2 of 4 columns
    mixed = (level[:, None] + noise) * np.array([1.0, 10.0, 0.1, 5.0])  # r^2 = 1/2 per column, any scale
    assert level_share(mixed, level) == pytest.approx(0.5, abs=0.03)


def test_fixed_steps_sampler_args_batch_and_tag_reach_the_trainer(tmp_path, monkeypatch):
    """Ablation runs (``--steps``, ``--sampler-arg``, ``--hp``, ``--batch``, ``--seed``, ``--tag``) train what they
    name, in a run folder of their own; a small_config ``batch`` is the default variant's batch."""
    import json
    import os

    seen = []

    def fake_train(cfg):
        seen.append(cfg)
        os.makedirs(cfg.out, exist_ok=True)
        with open(os.path.join(cfg.out, "run_summary.json"), "w") as f:
            json.dump({"elapsed_s": 2.0}, f)
        return {"step": 7, "stopped_by": "steps", "losses": [1.0, 0.5]}

    monkeypatch.setattr("train.loop.train", fake_train)
    a = bm.argparse.Namespace(runs=str(tmp_path), tag="a0.1", data=str(tmp_path), corpus="real", seed=3, workers=0,
                              steps=7, minutes=20.0, sampler_arg=["alpha=0.1"], batch=None)
    shared = bm.variants("byol_a", 64)[1]
    row = bm.run_one("byol_a", shared, a, {"bn_views": "joint"})
    cfg = seen[-1]
    assert (cfg.steps, cfg.max_minutes, cfg.seed, cfg.batch_size) == (7, None, 3, 64)
    assert cfg.sampler_kwargs == {"alpha": 0.1} and cfg.hparams == {"bn_views": "joint"}
    assert cfg.out.endswith("byol_a__shared__a0.1") and row["steps"] == 7 and row["first_loss"] == 1.0
    a.steps, a.tag, a.batch = None, "", 256
    bm.run_one("byol_a", shared, a, {})
    assert (seen[-1].steps, seen[-1].max_minutes, seen[-1].batch_size) == (None, 20.0, 256)
    assert seen[-1].out.endswith("byol_a__shared")
    a.batch = None
    bm.run_one("byol_a", bm.Variant("default", "mobile", {}, batch=128), a, {})
    assert seen[-1].batch_size == 128
