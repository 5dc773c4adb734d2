"""Issue 22 rows 6 and 7: the eval caches are verified like shards, and one process writes an entry.

A clean ``eval run`` (spectrogram baseline, a 12-clip k-fold CSV task) fills a cache once per module;
each case copies that cache, damages it as a careless user or a failing disk would, runs the same
``eval run`` again and checks: rc 0, a warning naming the damaged file, the entry rebuilt (its files
match their manifest again) and results equal to the clean run's.  The concurrency case runs two real
``python -m eval run`` processes on one empty cache.
"""
from __future__ import annotations

import ast
import dataclasses
import glob
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest

from eval import cache as C
from eval.cache_check import MAX_MANIFEST_BYTES, lock_dir
from shards.lock import DirLock
from tests._eval_support import wav, write
from tests.conftest import ROOT

ARGS = ["--model", "spectrogram", "--tasks", "csv", "--protocols", "knn,linear", "--seeds", "1", "--max-epochs", "20",
        "--patience", "5", "--no-plots", "--no-progress", "--threads", "1"]


def _tone_csv(root: str) -> str:
    rows = ["path,label,fold"]
    for i in range(12):
        lab = "low" if i % 2 else "high"
        rel = f"a/{i}.wav"
        wav(os.path.join(root, rel), seconds=0.6, freq=300 + 20 * i if lab == "low" else 3000 + 100 * i)
        rows.append(f"{rel},{lab},{i % 3 + 1}")
    return write(os.path.join(root, "labels.csv"), "\n".join(rows) + "\n")


def eval_run(data: str, cache: str, out: str, *extra: str) -> dict:
    from eval.__main__ import main

    rc = main(["run", *ARGS, "--data", f"csv={data}", "--cache-dir", cache, "--out", out, *extra])
    assert rc == 0
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


def scores(results: dict, protocols: tuple[str, ...] = ("knn", "linear")) -> dict:
    res = results["models"]["spectrogram"]["results"]["csv"]
    return {p: {k: v for k, v in res[p].items() if "second" not in k} for p in protocols}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """``(data dir, clean cache, clean results)``: the cache of one clean run, never modified."""
    base = tmp_path_factory.mktemp("hostile_cache")
    data, cache = str(base / "data"), str(base / "cache")
    _tone_csv(data)
    return data, cache, eval_run(data, cache, str(base / "report"))


@pytest.fixture
def cache_copy(clean, tmp_path):
    data, cache, ref = clean
    dst = str(tmp_path / "cache")
    shutil.copytree(cache, dst)
    return data, dst, ref


def emb_shards(cache: str, kind: str = "clip") -> list[str]:
    return sorted(glob.glob(os.path.join(cache, "emb", "*", "csv", "*", kind, "*.tar")))


def mel_shards(cache: str) -> list[str]:
    return sorted(glob.glob(os.path.join(cache, "mels", "csv", "*", "all", "*.tar")))


def member_offset(path: str, suffix: str) -> tuple[int, int]:
    with tarfile.open(path) as tar:
        ti = next(t for t in tar if t.name.endswith(suffix))
        return ti.offset_data, ti.size


def flip(path: str, offset: int, n: int = 16) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        b = bytearray(f.read(n))
        f.seek(offset)
        f.write(bytes(x ^ 0x5A for x in b))


def matches_manifest(shard: str) -> bool:
    with open(os.path.join(os.path.dirname(shard), "manifest.json")) as f:
        m = json.load(f)
    s = next(s for s in m["shards"] if s["name"] == os.path.basename(shard))
    return C.sha256_file(shard) == s["sha256"] and os.path.getsize(shard) == s["bytes"]


def warned_about(caplog, path: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and path in r.getMessage()]


# ------------------------------------------------------------------------------------------ row 6

def test_flipped_bytes_in_a_cached_embedding_are_found_and_rebuilt(cache_copy, tmp_path, caplog):  # row 6
    data, cache, ref = cache_copy
    shard = emb_shards(cache)[0]
    off, size = member_offset(shard, ".emb.npy")
    flip(shard, off + size - 64, 32)  # float data, past the .npy header: the tar and np.load still read it
    assert not matches_manifest(shard)
    caplog.set_level(logging.WARNING)
    got = eval_run(data, cache, str(tmp_path / "rep"))
    assert warned_about(caplog, shard), caplog.text
    assert matches_manifest(shard)
    assert scores(got) == scores(ref)


def test_embedding_manifest_is_read_with_a_size_bound(cache_copy, tmp_path, caplog):
    data, cache, ref = cache_copy
    mp = os.path.join(os.path.dirname(emb_shards(cache)[0]), "manifest.json")
    with open(mp, "w") as f:
        f.write(" " * (MAX_MANIFEST_BYTES + 10))
    caplog.set_level(logging.WARNING)
    got = eval_run(data, cache, str(tmp_path / "rep"))
    assert any("larger than" in m for m in warned_about(caplog, mp)), caplog.text
    assert scores(got) == scores(ref)
    assert os.path.getsize(mp) < MAX_MANIFEST_BYTES and C.read_embeddings(os.path.dirname(mp))


# ------------------------------------------------------------------------------------------ row 7

def test_truncated_embedding_tar_is_named_and_rebuilt(cache_copy, tmp_path, caplog):  # row 7
    data, cache, ref = cache_copy
    shard = emb_shards(cache, "proj")[0]
    with open(shard, "r+b") as f:
        f.truncate(os.path.getsize(shard) // 2)
    caplog.set_level(logging.WARNING)
    got = eval_run(data, cache, str(tmp_path / "rep"))
    assert any("truncated" in m for m in warned_about(caplog, shard)), caplog.text
    assert matches_manifest(shard) and scores(got) == scores(ref)


def test_corrupt_chunk_in_the_mel_cache_is_named_and_rebuilt(cache_copy, tmp_path, caplog):  # row 7
    data, cache, ref = cache_copy
    shutil.rmtree(os.path.join(cache, "emb"))  # the rerun needs the log-mels again
    shard = mel_shards(cache)[0]
    off, size = member_offset(shard, ".mel.npy.zst")
    flip(shard, off + size // 2)
    caplog.set_level(logging.WARNING)
    got = eval_run(data, cache, str(tmp_path / "rep"))
    assert warned_about(caplog, shard), caplog.text
    assert matches_manifest(shard) and scores(got) == scores(ref)


def test_undecodable_mel_chunk_behind_a_consistent_manifest(cache_copy, tmp_path, caplog, monkeypatch):
    """A chunk that was bad when written (its hash recorded after the damage): decoding names it, the shard
    is discarded and rebuilt in the same run (with a relative --cache-dir, like the default one)."""
    data, cache, ref = cache_copy
    shutil.rmtree(os.path.join(cache, "emb"))
    shard = mel_shards(cache)[0]
    off, size = member_offset(shard, ".mel.npy.zst")
    flip(shard, off + size // 2)
    new_sha = C.sha256_file(shard)
    split_dir = os.path.dirname(shard)
    for p in (os.path.join(split_dir, "manifest.json"), os.path.join(split_dir, ".parts", os.path.basename(shard) + ".json")):
        with open(p) as f:
            rec = json.load(f)
        for s in rec.get("shards", [rec]):
            if s["name"] == os.path.basename(shard):
                s["sha256"] = new_sha
        with open(p, "w") as f:
            json.dump(rec, f)
    caplog.set_level(logging.WARNING)
    monkeypatch.chdir(os.path.dirname(cache))
    got = eval_run(data, os.path.basename(cache), str(tmp_path / "rep"))
    rel = os.path.relpath(shard, os.path.dirname(cache))
    assert any("zstd" in m or "unreadable" in m for m in warned_about(caplog, rel)), caplog.text
    assert C.sha256_file(shard) != new_sha and matches_manifest(shard)
    assert scores(got) == scores(ref)


def test_mel_manifest_pointing_at_dev_zero(cache_copy, tmp_path, caplog):
    data, cache, ref = cache_copy
    shutil.rmtree(os.path.join(cache, "emb"))
    mp = os.path.join(os.path.dirname(mel_shards(cache)[0]), "manifest.json")
    os.unlink(mp)
    os.symlink("/dev/zero", mp)
    caplog.set_level(logging.WARNING)
    got = eval_run(data, cache, str(tmp_path / "rep"))
    assert any("larger than" in m for m in warned_about(caplog, mp)), caplog.text
    assert not os.path.islink(mp) and scores(got) == scores(ref)


# ------------------------------------------------------------------------------------------ one writer

def test_two_processes_build_one_cache_entry_once(clean, tmp_path):
    """Two real ``eval run`` processes on an empty cache: one builds the entry, the other waits for it and
    uses it; both report the clean run's scores and the entry matches the clean one bit for bit."""
    data, ref_cache, ref = clean
    entry_rel = os.path.relpath(os.path.dirname(os.path.dirname(emb_shards(ref_cache)[0])), ref_cache)
    cache = str(tmp_path / "cache")
    hold = DirLock(lock_dir(cache, os.path.join(cache, entry_rel)), "test hold")
    hold.acquire()  # both start, then race for the entry at the same moment
    procs, errs = [], []
    try:
        for i in range(2):
            err = open(tmp_path / f"err{i}.txt", "w+")
            errs.append(err)
            argv = [sys.executable, "-m", "eval", "run", *ARGS, "--protocols", "knn", "--data", f"csv={data}",
                    "--cache-dir", cache, "--out", str(tmp_path / f"rep{i}")]
            procs.append(subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err))
        t0 = time.time()
        while not all(f"pid {os.getpid()}" in open(e.name).read() for e in errs):
            assert time.time() - t0 < 240 and all(p.poll() is None for p in procs), [open(e.name).read() for e in errs]
            time.sleep(0.2)
    finally:
        hold.release()
    rcs = [p.wait(timeout=300) for p in procs]
    logs = [open(e.name).read() for e in errs]
    assert rcs == [0, 0], logs
    assert sum(log.count("embedding csv [spectrogram] into") for log in logs) == 1, logs
    for i in range(2):
        with open(tmp_path / f"rep{i}" / "results.json") as f:
            assert scores(json.load(f), ("knn",)) == scores(ref, ("knn",))
    for kind in ("clip", "proj"):
        got = C.read_embeddings(os.path.join(cache, entry_rel, kind))
        want = C.read_embeddings(os.path.join(ref_cache, entry_rel, kind))
        assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in want)
    assert not glob.glob(os.path.join(cache, "**", "*.tmp"), recursive=True)


# ------------------------------------------------------------------------------------------ issue 25

def test_decode_to_mels_takes_a_frontend_that_is_no_preset(tmp_path):
    from ingest import decode_to_mels
    from shards import read_manifest
    from shards.frontend import get_preset

    fe = dataclasses.replace(get_preset("byol_a"), name="my_own", n_mels=48)
    clips = [C.Clip(key=f"k{i}", path=wav(str(tmp_path / f"{i}.wav"), 0.5, 400 + 100 * i), labels=("x",))
             for i in range(3)]
    with pytest.raises(ValueError, match="--workers 100000"):
        decode_to_mels(C.TaskSource("t", clips), str(tmp_path / "out"), fe, workers=100000)
    assert not (tmp_path / "out").exists()
    summary = decode_to_mels(C.TaskSource("t", clips), str(tmp_path / "out"), fe, progress=False, shard_size="2")
    m = read_manifest(str(tmp_path / "out" / "all"))
    assert summary["ingested"] == 3 and m["totals"]["shards"] == 2
    assert m["frontend_hash"] == fe.hash() and m["frontend"]["n_mels"] == 48
    assert {k: v.shape[0] for k, v in C.iter_mels([str(tmp_path / "out" / "all")])} == {"k0": 48, "k1": 48, "k2": 48}


@pytest.mark.parametrize("module", ["eval/cache.py", "eval/embed.py", "eval/cache_check.py"])
def test_eval_cache_imports_no_private_ingest_name(module):
    tree = ast.parse(open(os.path.join(ROOT, module)).read())
    private = [(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
               and n.module.split(".")[0] in ("ingest", "shards", "models", "train", "pipeline")
               for a in n.names if a.name.startswith("_")]
    assert private == []
