"""The third-party audio corpus of `make bench-real` (bench/real_corpus.py, eval/tasks/real.py), at its
``--tiny`` size: the same bytes twice, train/test sources disjoint, no test source in pretraining."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from eval.tasks import LayoutError, get_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import bench_methods  # noqa: E402
import real_corpus  # noqa: E402

TASKS = ["real_instrument", "real_pitch", "real_drum", "real_language", "real_keyword", "real_speaker"]


def _ensure_packages() -> None:
    """`make test` installs them (Makefile REAL_APT_TINY); a bare pytest run installs them the same way."""
    if shutil.which("espeak-ng") and shutil.which("fluidsynth") and os.path.isfile(real_corpus.TIM_SF2):
        return
    subprocess.run(["make", "-s", "apt", "APT_PACKAGES=$(REAL_APT_TINY)"], cwd=ROOT, check=True)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    _ensure_packages()
    base = tmp_path_factory.mktemp("real")
    outs = [str(base / "a"), str(base / "b")]
    procs = [subprocess.Popen([sys.executable, os.path.join(ROOT, "bench", "real_corpus.py"), "--tiny", "--out", o,
                               "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE) for o in outs]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()
        assert b"pretraining clips" in out
    return outs


def _files(root: str) -> dict[str, bytes]:
    out = {}
    for d, _, fs in os.walk(root):
        for f in fs:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = fh.read()
    return out


def test_same_bytes_twice(corpora):
    a, b = (_files(c) for c in corpora)
    assert sorted(a) == sorted(b) and len(a) > 60
    assert [k for k in a if a[k] != b[k]] == []
    assert not os.path.exists(corpora[0] + ".partial")


def test_tasks_load_with_disjoint_sources_and_real_audio(corpora):
    meta = json.load(open(os.path.join(corpora[0], "corpus.json")))
    pre = {s for srcs in meta["pretrain_sources"].values() for s in srcs}
    assert meta["sample_rate"] == 16000 and meta["pretrain_clips"] == len(meta["pretrain_sources"]) > 0
    kinds = set()
    for name in TASKS:
        t = get_task(name)
        td = t.load(t.locate(os.path.dirname(corpora[0]) + "/a"))
        assert td.protocol == "real-source-disjoint" and len(td.classes) >= 2
        src = {s: {c.group for c in td.clips if c.split == s} for s in ("train", "test")}
        assert src["train"] and src["test"] and not src["train"] & src["test"], name
        assert not src["test"] & pre, (name, src["test"] & pre)      # pretraining never holds a test source
        kinds |= {s.split(":")[0] for s in src["test"]}
        x, sr = sf.read(td.clips[0].path)
        assert sr == 16000 and np.abs(x).max() > 0.01, td.clips[0].path
    assert kinds == {"voice", "lang", "program", "kit"}
    lang = get_task("real_language").load(corpora[0])
    assert set(lang.classes) == {"en-us", "fr-fr"}
    pitch = get_task("real_pitch").load(corpora[0])
    assert set(pitch.classes) <= set("C C# D D# E F F# G G# A A# B".split())


def test_loader_refuses_a_source_in_train_and_test(corpora, tmp_path):
    root = str(tmp_path / "c")
    shutil.copytree(corpora[1], root)
    csv = os.path.join(root, "tasks", "real_keyword.csv")
    lines = open(csv).read().splitlines()
    train_src = next(ln.split(",")[3] for ln in lines[1:] if ln.split(",")[2] == "train")
    i = next(i for i, ln in enumerate(lines) if i and ln.split(",")[2] == "test")
    lines[i] = ",".join(lines[i].split(",")[:3] + [train_src])
    open(csv, "w").write("\n".join(lines) + "\n")
    with pytest.raises(LayoutError, match="both train and test"):
        get_task("real_keyword").load(root)
    os.remove(csv)
    with pytest.raises(LayoutError, match="real_keyword.csv"):
        get_task("real_keyword").load(root)


def test_a_built_corpus_is_never_overwritten(corpora):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "real_corpus.py"), "--tiny", "--out", corpora[0]],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert r.returncode == 2 and r.stderr.decode().startswith("error: ") and b"Traceback" not in r.stderr


def test_resample_is_accurate():
    for sr, f in ((22050, 1000.0), (44100, 3000.0), (48000, 440.0)):
        t = np.arange(sr) / sr
        y = real_corpus.resample(np.sin(2 * np.pi * f * t), sr)
        ref = np.sin(2 * np.pi * f * np.arange(len(y)) / 16000)
        assert len(y) == 16000 and np.abs(y[100:-100] - ref[100:-100]).max() < 1e-3
    t = np.arange(22050) / 22050   # 10 kHz is above the 8 kHz Nyquist of 16 kHz: removed, not aliased
    assert np.abs(real_corpus.resample(np.sin(2 * np.pi * 10000 * t), 22050)[100:-100]).max() < 1e-2


def test_midi_file_is_valid_smf():
    data = real_corpus.midi_file(real_corpus.note(0, 0.5, 1.0, 60, 100) + [(0.0, bytes([0xC0, 5]))])
    assert data[:4] == b"MThd" and data[14:18] == b"MTrk"
    body = data[22:]
    assert body[:3] == b"\x00\xc0\x05"                       # the program change sorts first
    assert body[3:8] == b"\x83\x60\x90\x3c\x64"              # 480 ticks (0.5 s) later: note on
    assert body.endswith(b"\xff\x2f\x00")


def test_per_task_table():
    pt = {"real_pitch": {"trained": 0.5, "untrained": 0.25, "delta": {"mean": 0.25, "ci95": 0.01}}}
    row = {"method": "m", "encoder_label": "enc", "steps": 7, "linear": {
        "per_task": pt, "trained": {"mean": 0.5}, "untrained": {"mean": 0.25},
        "delta_untrained": {"mean": 0.25, "ci95": None}}}
    md = bench_methods.per_task_markdown({"m/default": row, "x/shared": {"skipped": "no"}}, ["real_pitch"])
    assert md.splitlines()[0] == "| method | encoder | steps | pitch | mean |"
    assert md.splitlines()[2] == "| m | enc | 7 | 50.0 / 25.0 (+25.0 ± 1.0) | 50.0 / 25.0 (+25.0 ± 0.0) |"
