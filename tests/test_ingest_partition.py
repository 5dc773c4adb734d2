"""The work partition is deterministic: N jobs (+ merge) or several workers give the same samples as one job."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from ingest.__main__ import main
from ingest.decode import encode_wav
from shards.__main__ import main as shards_main
from shards.reader import iter_tar_samples


def _samples(split_dir) -> dict[str, dict[str, bytes]]:
    out = {}
    for name in sorted(os.listdir(split_dir)):
        if name.endswith(".tar"):
            for key, members in iter_tar_samples(os.path.join(split_dir, name)):
                assert key not in out
                out[key] = {ext: members[ext] for ext in sorted(members)}
    return out


def _ingest(src, out, *extra) -> None:
    assert main(["folder", str(src), "--dataset", "part", "--labels", "dirname", "--shard-size", "3",
                 "--out", str(out), "--no-progress", *extra]) == 0


def test_num_jobs_and_workers_do_not_change_samples(tmp_path):
    src = tmp_path / "audio"
    rng = np.random.default_rng(0)
    for i in range(11):
        d = src / ("dog" if i % 2 else "cat")
        d.mkdir(parents=True, exist_ok=True)
        encode_wav(str(d / f"clip_{i:02d}.wav"), (0.1 * rng.standard_normal(8000 + 800 * i)).astype(np.float32))

    one = tmp_path / "one"
    _ingest(src, one)
    two = tmp_path / "two"
    _ingest(src, two, "--num-jobs", "2", "--job-index", "1", "--workers", "2")
    # a job of an array writes only its own shards and no manifest
    names1 = sorted(n for n in os.listdir(two / "train") if n.endswith(".tar"))
    assert names1 == ["part-train-000001.tar", "part-train-000003.tar"]
    assert not (two / "train" / "manifest.json").exists()
    _ingest(src, two, "--num-jobs", "2", "--job-index", "0")
    assert shards_main(["merge", str(two / "train")]) == 0

    a, b = _samples(one / "train"), _samples(two / "train")
    assert len(a) == 11 and sorted(a) == sorted(b)
    assert all(a[k] == b[k] for k in a)  # identical bytes of every member
    for name in sorted(n for n in os.listdir(one / "train") if n.endswith(".tar")):
        assert (one / "train" / name).read_bytes() == (two / "train" / name).read_bytes()
    m1 = json.loads((one / "train" / "manifest.json").read_text())
    m2 = json.loads((two / "train" / "manifest.json").read_text())
    assert m1["stats"] == m2["stats"] and m1["shards"] == m2["shards"] and m1["labels"] == m2["labels"]


def test_ingest_merge_builds_manifests_and_names_missing_shards(tmp_path, capsys):
    src = tmp_path / "audio"
    rng = np.random.default_rng(1)
    for i in range(7):
        src.mkdir(exist_ok=True)
        encode_wav(str(src / f"clip_{i:02d}.wav"), (0.1 * rng.standard_normal(8000)).astype(np.float32))
    out = tmp_path / "arr"
    _ingest(src, out, "--num-jobs", "3", "--job-index", "0")  # shards 0 and 3 of 0..2 (3 per shard: 0, 1, 2)
    capsys.readouterr()
    _ingest(src, out, "--num-jobs", "3", "--merge")
    summary = json.loads(capsys.readouterr().out)
    assert summary["missing_shards"] == ["part-train-000001.tar", "part-train-000002.tar"]
    assert summary["written_shards"] == 0 and summary["manifests"]["train"]["clips"] == 3
    for j in (1, 2):
        _ingest(src, out, "--num-jobs", "3", "--job-index", str(j))
    capsys.readouterr()
    _ingest(src, out, "--merge")
    assert json.loads(capsys.readouterr().out)["missing_shards"] == []
    m = json.loads((out / "train" / "manifest.json").read_text())
    assert m["totals"]["clips"] == 7 and m["totals"]["shards"] == 3


def test_segments_cover_the_recording_without_loss():
    from ingest.engine import segments

    sr = 100
    assert segments(1000, sr, 0) == [(0, 1000)]  # off
    assert segments(1400, sr, 10) == [(0, 1400)]  # shorter than 1.5 clips: whole
    assert segments(2400, sr, 10) == [(0, 1000), (1000, 2400)]  # remainder 400 < 500 extends the last clip
    assert segments(2600, sr, 10) == [(0, 1000), (1000, 2000), (2000, 2600)]  # remainder 600 is its own clip
    for n in range(1500, 5000, 37):
        cuts = segments(n, sr, 10)
        assert cuts[0][0] == 0 and cuts[-1][1] == n and all(a[1] == b[0] for a, b in zip(cuts, cuts[1:]))
        assert all(500 <= b - a < 1500 for a, b in cuts)


def test_long_recordings_are_cut_into_clips(tmp_path):
    from shards import read_manifest

    src = tmp_path / "audio"
    src.mkdir()
    rng = np.random.default_rng(2)
    wav = (0.1 * rng.standard_normal(16000 * 25)).astype(np.float32)
    wav[16000 * 10:16000 * 20] = 0.0  # the second 10-s clip is silent
    encode_wav(str(src / "long.wav"), wav)
    encode_wav(str(src / "short.wav"), wav[:16000 * 12])
    out = tmp_path / "seg"
    _ingest(src, out, "--segment-seconds", "10")
    got = _samples(out / "train")
    metas = {k: json.loads(v["json"]) for k, v in got.items()}
    long_keys = sorted(k for k in metas if k.startswith("long"))
    assert [k.rsplit("_", 1)[1] for k in long_keys] == ["0000000000", "0000020000"]  # 10-20 s silent: recorded
    first, last = (metas[k] for k in long_keys)
    assert (first["start"], first["duration"]) == (0.0, 10.0) and (last["start"], last["duration"]) == (20.0, 5.0)
    assert first["recording"] == last["recording"] == long_keys[0].rsplit("_", 1)[0]
    assert [m["duration"] for k, m in metas.items() if k.startswith("short")] == [12.0]  # < 1.5 clips: whole
    fails = [json.loads(line) for line in (out / "train" / "failures.jsonl").read_text().splitlines()]
    assert [f["reason_class"] for f in fails] == ["silent"] and fails[0]["key"].endswith("_0000010000")
    assert read_manifest(str(out / "train"))["totals"]["clips"] == 3


class _PidSource:
    """A folder source whose ``load`` records the decoding process and, the first time, waits (up to 60 s)
    until a second process has started decoding too: both workers must take items of the one shard."""

    def __init__(self, root, marks, wait=True):
        from ingest.sources.folder import FolderSource

        self.wait = wait
        self.inner = FolderSource(str(root), dataset="busy")
        self.dataset = "busy"
        self.marks = str(marks)

    def items(self):
        return self.inner.items()

    def load(self, item, sample_rate):
        import time

        import torch

        with open(os.path.join(self.marks, f"{os.getpid()}.{item.key}"), "w") as f:
            f.write(str(torch.get_num_threads()))  # the intra-op threads of the decoding process
        deadline = time.time() + 60
        while self.wait and len({n.split(".")[0] for n in os.listdir(self.marks)}) < 2 and time.time() < deadline:
            time.sleep(0.02)
        return self.inner.load(item, sample_rate)


def test_two_workers_share_one_shard_and_write_the_same_bytes(tmp_path):
    import torch

    from ingest.engine import IngestConfig, run_ingest, usable_cores

    src = tmp_path / "audio"
    src.mkdir()
    rng = np.random.default_rng(3)
    for i in range(12):
        encode_wav(str(src / f"c{i:02d}.wav"), (0.1 * rng.standard_normal(4000 + 400 * i)).astype(np.float32))
    marks, marks1 = tmp_path / "marks", tmp_path / "marks1"
    marks.mkdir()
    marks1.mkdir()
    outs = {}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    for workers in (1, 2):
        outs[workers] = tmp_path / f"w{workers}"
        s = run_ingest(_PidSource(src, marks) if workers == 2 else _PidSource(src, marks1, wait=False),
                       IngestConfig(out=str(outs[workers]), workers=workers, decode_batch=2, progress=False))
        assert s["planned_shards"] == 1 and s["ingested"] == 12
        assert len(s["workers"]) == workers and sum(w["items"] for w in s["workers"].values()) == 12
        assert s["threads_per_worker"] == max(1, usable_cores() // workers)
    assert torch.get_num_threads() == 1  # --workers 1 set this process's threads for the run only
    torch.set_num_threads(before)
    threads = {w: {(m / n).read_text() for n in os.listdir(m)} for w, m in ((1, marks1), (2, marks))}
    assert threads == {1: {str(usable_cores())}, 2: {str(max(1, usable_cores() // 2))}}  # cores // workers each
    pids = {n.split(".")[0] for n in os.listdir(marks)}
    assert len(pids) == 2 and str(os.getpid()) not in pids  # two worker processes decoded items of the one shard
    assert len(os.listdir(marks)) == 12  # each item decoded exactly once
    assert {n.split(".")[0] for n in os.listdir(marks1)} == {str(os.getpid())}  # --workers 1: in this process
    names = sorted(n for n in os.listdir(outs[1] / "train") if n.endswith(".tar"))
    assert names == ["busy-train-000000.tar"]
    assert (outs[1] / "train" / names[0]).read_bytes() == (outs[2] / "train" / names[0]).read_bytes()
    m1, m2 = (json.loads((outs[w] / "train" / "manifest.json").read_text()) for w in (1, 2))
    assert m1["stats"] == m2["stats"] and m1["shards"] == m2["shards"]


def test_shard_size_by_count_and_bytes():
    from ingest.engine import Item, plan, shard_limits

    assert shard_limits("1000,256MB") == (1000, 256e6)
    assert shard_limits("200MB") == (None, 200e6) and shard_limits("7") == (7, None)
    for bad in ("1,2", "1MB,2MB", "", "1000;256MB"):
        try:
            shard_limits(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")
    items = [Item(key=f"k{i:02d}", source_id=str(i), origin="", start=0.0, end=float(s))
             for i, s in enumerate([10, 10, 10, 3600, 10, 10, 10, 10])]
    size = {it.key: it.end * 10_000 for it in items}  # 10 kB/s
    tasks = plan(items, "d", 3, 1e6, lambda it: size[it.key])
    assert [[it.key for it in t.items] for t in tasks] == [["k00", "k01", "k02"], ["k03"], ["k04", "k05", "k06"], ["k07"]]
    assert [t.name for t in tasks] == [f"d-train-{i:06d}.tar" for i in range(4)]
    assert [len(t.items) for t in plan(items, "d", None, 250_000, lambda it: size[it.key])] == [2, 1, 1, 2, 2]
    assert [len(t.items) for t in plan(items, "d", 5)] == [5, 3]  # count only: as before


def test_folder_estimate_counts_long_recordings(tmp_path):
    from ingest.engine import estimate_bytes
    from ingest.sources.folder import FolderSource
    from shards.frontend import get_preset

    encode_wav(str(tmp_path / "long.wav"), np.zeros(16000 * 30, dtype=np.float32))
    (tmp_path / "x.mp3").write_bytes(b"\0" * 5000)
    src = FolderSource(str(tmp_path))
    its = {it.source_id: it for it in src.items()}
    fe = get_preset("byol_a")
    assert estimate_bytes(src, its["long.wav"], fe) == 0.8 * 2 * 64 * 3001  # 30 s from the header
    assert estimate_bytes(src, its["x.mp3"], fe) == 5000.0  # no header read: the file's size


def test_realistic_corpus_is_deterministic_and_noisy(tmp_path):
    from ingest.demo import SCENES, make_realistic_clip, write_realistic_corpus

    a, scene = make_realistic_clip(0, 3, seconds=2.0)
    b, _ = make_realistic_clip(0, 3, seconds=2.0)
    assert np.array_equal(a, b) and scene == SCENES[3] and a.dtype == np.float32 and a.size == 32000
    assert not np.array_equal(a, make_realistic_clip(1, 3, seconds=2.0)[0])
    peak_db = 20 * np.log10(np.abs(a).max())
    assert -21 < peak_db <= -0.9  # peaks at -20 to -1 dB FS
    frames = a[: 32000 // 320 * 320].reshape(-1, 320)  # 20-ms frames: the background never stops
    assert (np.sqrt((frames ** 2).mean(axis=1)) > 1e-4).all()
    paths = write_realistic_corpus(str(tmp_path), 5, seconds=1.0)
    assert [os.path.basename(os.path.dirname(p)) for p in paths] == list(SCENES)


def test_threads_per_worker(monkeypatch):
    import ingest.engine as eng

    monkeypatch.setattr(eng, "usable_cores", lambda: 8)
    got = {(w, t): eng.threads_per_worker(eng.IngestConfig(out="x", workers=w, threads=t))
           for w, t in ((1, 0), (2, 0), (3, 0), (16, 0), (2, 5))}
    assert got == {(1, 0): 8, (2, 0): 4, (3, 0): 2, (16, 0): 1, (2, 5): 5}
    with pytest.raises(ValueError, match="--threads"):
        eng.threads_per_worker(eng.IngestConfig(out="x", threads=-1))
