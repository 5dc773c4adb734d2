"""The varied demo corpus (ingest/demo_varied.py): determinism, source-disjoint splits, nuisance ranges,
the ``--variant varied`` ingest and its tasks (eval/tasks/demo_varied.py)."""
from __future__ import annotations

import collections
import json
import os

import numpy as np
import pytest

from ingest import demo_varied as V

SEC = 0.5  # short clips: the structure under test does not depend on the length


def test_clips_are_deterministic_in_seed_split_and_index():
    for split, i in (("pretrain", 3), ("train", 8), ("test", 1)):
        a, la, ia = V.render(0, split, i, SEC)
        b, lb, ib = V.render(0, split, i, SEC)
        assert a.dtype == np.float32 and a.size == int(SEC * V.SR) and np.isfinite(a).all()
        assert np.array_equal(a, b) and la == lb and ia == ib
    assert not np.array_equal(V.render(0, "train", 8, SEC)[0], V.render(1, "train", 8, SEC)[0])
    assert not np.array_equal(V.render(0, "train", 8, SEC)[0], V.render(0, "test", 8, SEC)[0])
    # a source is one fixed draw of (seed, family, k): the same make in every clip that uses it
    m1, m2 = V._make(0, "string", 3), V._make(0, "string", 3)
    assert all(np.array_equal(m1[k], m2[k]) for k in m1)
    assert not np.array_equal(V._make(0, "string", 3)["amps"], V._make(0, "string", 4)["amps"])


def _labels(split: str, count: int) -> list[dict[str, str]]:
    out = []
    for i in range(count):
        _, labs, _ = V.render(0, split, i, 0.05)
        out.append(dict(lab.split("=", 1) for lab in labs))
    return out


def test_train_and_test_sources_are_disjoint_and_every_split_has_every_family():
    train, test = _labels("train", 84), _labels("test", 84)  # 12 rounds of the 7 family slots
    src_tr = {d["source"] for d in train}
    src_te = {d["source"] for d in test}
    assert not src_tr & src_te
    k_tr = {int(s.rsplit("/", 1)[1]) for s in src_tr}
    k_te = {int(s.rsplit("/", 1)[1]) for s in src_te}
    assert k_tr == set(V.SOURCES["train"]) and k_te == set(V.SOURCES["test"]) and not k_tr & k_te
    for rows in (train, test, _labels("pretrain", 14)):
        assert {d["family"] for d in rows} == set(V.FAMILIES)
    # every family uses several sources in each labelled split; instruments cover every timbre
    for rows, srcs in ((train, V.SOURCES["train"]), (test, V.SOURCES["test"])):
        by_fam = collections.defaultdict(set)
        for d in rows:
            by_fam[d["family"]].add(d["source"])
        assert all(len(s) >= 2 for s in by_fam.values())
        assert {d["timbre"] for d in rows if d["family"] == "instrument"} == set(V.TIMBRES)
        assert all(d["pitch"][:-1] in V.PITCH_CLASSES and d["pitch"][-1] == "4" for d in rows if "pitch" in d)
    assert all("source" not in d for d in _labels("pretrain", 14))  # unlabelled split: no identities


def test_mix_at_snr_sets_the_power_ratio():
    rng = np.random.default_rng(0)
    fg, bg = rng.standard_normal(8000) * 3.0, rng.standard_normal(8000) * 0.1
    for snr in (0.0, 7.5, 30.0):
        x = V.mix_at_snr(fg, bg, snr)
        noise = x - fg
        assert 10 * np.log10(np.mean(fg ** 2) / np.mean(noise ** 2)) == pytest.approx(snr, abs=1e-9)


def test_nuisances_stay_within_spec():
    infos = []
    for i in range(70):
        x, _, info = V.render(0, "train", i, SEC)
        assert V.SNR_DB[0] <= info["snr_db"] <= V.SNR_DB[1] and V.PEAK_DB[0] <= info["peak_db"] <= V.PEAK_DB[1]
        assert 20 * np.log10(np.abs(x).max()) == pytest.approx(info["peak_db"], abs=1e-3)  # the peak is the drawn level
        infos.append(info)
    assert 0.3 < np.mean([i["reverb"] for i in infos]) < 0.7  # about half the clips
    kinds = {i["background"].split(":")[0] for i in infos}
    assert kinds == {"coloured", "texture", "family"}
    for i in infos:  # another family's background comes from a source of the same split
        if i["background"].startswith("family:"):
            assert int(i["background"].rsplit("/", 1)[1]) in V.SOURCES["train"]


@pytest.fixture(scope="module")
def varied_small(tmp_path_factory):
    from ingest.__main__ import main

    base = tmp_path_factory.mktemp("varied_small")
    out, audio = str(base / "demo_varied"), str(base / "demo_varied_audio")
    rc = main(["demo", "--variant", "varied", "--out", out, "--audio-dir", audio, "--pretrain-clips", "7",
               "--train-clips", "42", "--test-clips", "42", "--seconds", "1", "--shard-size", "32", "--no-progress"])
    assert rc == 0
    return str(base), out, audio


def test_ingest_records_the_variant_and_tasks_load_from_shards_and_audio(varied_small):
    from eval.tasks import LayoutError, get_task

    base, out, audio = varied_small
    m = json.load(open(os.path.join(out, "train", "manifest.json")))
    assert m["dataset"] == "demo_varied" and m["demo_corpus"]["variant"] == "varied"
    assert m["demo_corpus"]["sizes"] == {"pretrain": 7, "train": 42, "test": 42}
    assert m["demo_corpus"]["sources"]["test"] == list(V.SOURCES["test"])
    want = {"demo_varied_family": 6, "demo_varied_timbre": 6}
    for root in (out, audio):
        for task, n in want.items():
            td = get_task(task).load(root)
            assert len(td.classes) == n and {c.split for c in td.clips} == {"train", "test"}
        fam = get_task("demo_varied_family").load(root)
        assert len(fam.clips) == 84 and set(fam.classes) == set(V.FAMILIES)
        pitch = get_task("demo_varied_pitch").load(root)
        assert len(pitch.clips) == 24 and set(pitch.classes) <= {p + "4" for p in V.PITCH_CLASSES}
    assert get_task("demo_varied_family").locate(base) == out  # --data-root data finds data/demo_varied
    # the basic corpus' audio folder (no source= labels) is refused, not silently read
    bad = os.path.join(base, "basic_like")
    os.makedirs(os.path.join(bad, "train", "speech"))
    open(os.path.join(bad, "train", "speech", "a.wav"), "wb").close()
    with open(os.path.join(bad, "labels.csv"), "w") as f:
        f.write("path,label\ntrain/speech/a.wav,family=speech\n")
    with pytest.raises(LayoutError, match="source="):
        get_task("demo_varied_family").load(bad)


def test_bench_methods_never_merges_rows_of_two_corpora(tmp_path, capsys):
    import argparse
    import sys

    from tests.conftest import ROOT

    sys.path.insert(0, os.path.join(ROOT, "bench"))
    import bench_methods as bm

    path = str(tmp_path / "methods.json")
    a = argparse.Namespace(tasks="t", window="crop:288", corpus="basic")
    bm.save_row(path, "m/default", {"x": 1}, a)
    assert json.load(open(path))["settings"]["corpus"] == "basic"
    with pytest.raises(ValueError, match="basic corpus"):
        bm.save_row(path, "m/default", {"x": 2}, argparse.Namespace(tasks="t", window="crop:288", corpus="varied"))
    assert bm.main(["--corpus", "varied", "--out", path, "--data", str(tmp_path), "--methods", "triplet"]) == 2
    assert "holds rows of the basic corpus" in capsys.readouterr().err  # refused before any training
