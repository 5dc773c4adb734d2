"""Issue 22, the ingest and shard rows (9, 10, 11, 12, 14, 15) and the principles behind them: keys that
always fit the tar format, numbers through one typed parser with bounds, files from outside read with a
size bound, one writer per shard output directory (two real processes), the same shard never counted
twice.  Each case asserts the exit status, one ``error:`` line without a traceback (or the logged skip
with its reason) and that finished work is unchanged (hashes).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tarfile

import pytest

import shards
from ingest.decode import encode_wav, resolve_ffmpeg, transcode
from ingest.sources.folder import path_key
from shards.format import MAX_KEY_LEN, USTAR_NAME_MAX, key_digest
from tests.conftest import ROOT, tone
from tests.test_hostile_inputs import assert_one_line, cli, ingest_main, shards_main, snapshot

PY = sys.executable
ENV = {**{k: v for k, v in os.environ.items() if k != "MELSTREAM_DEBUG"}, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}


def _ingest(src, out, *extra):
    return ["folder", str(src), "--out", str(out), "--no-progress", *extra]


def _tar_hashes(d) -> dict[str, str]:
    """Hashes of the finished shards and their records (manifest.json aside: it carries a creation time)."""
    return {k: v for k, v in snapshot(d).items() if k.endswith(".tar") or k.endswith(".tar.json")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A folder of three clips ingested once: the finished work refused commands must leave alone."""
    base = tmp_path_factory.mktemp("finished")
    src, out = base / "src", base / "out"
    src.mkdir()
    for i in range(3):
        encode_wav(str(src / f"c{i}.wav"), tone(300 + 100 * i, 0.5))
    from ingest.__main__ import main
    assert main(_ingest(src, out, "--shard-size", "2")) == 0
    return src, out


# ------------------------------------------------------------------------------------------ row 9

LONG = "a-very-long-descriptive-field-recording-name-" * 3  # 135 characters
NON_ASCII = "Aufnahme-Größe-日本語の録音-" * 4


def test_row9_long_names_fit_the_tar_format(tmp_path, capsys):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    names = [f"{LONG}.wav", f"{NON_ASCII}.wav", "x" * 80 + ".wav", "x" * 79 + ".wav", "short.wav",
             os.path.join("sub", f"{LONG}.wav")]  # same stem in another folder: a distinct key
    for i, n in enumerate(names):
        encode_wav(str(src / n), tone(300 + 50 * i, 1.0))
    out, cut = tmp_path / "out", tmp_path / "cut"
    rc, stdout, err = cli(ingest_main, _ingest(src, out, "--shard-size", "2"), capsys)
    assert rc == 0 and "Traceback" not in err, err
    d = str(out / "train")
    m = shards.read_manifest(d)
    assert m["totals"]["clips"] == len(names) and m["failures"]["count"] == 0
    by_source = {meta["source_id"]: meta["key"] for _, meta in shards.iter_dir(d)}
    assert sorted(by_source) == sorted(names)  # the original file names are kept in every sample
    assert len(set(by_source.values())) == len(names)
    assert all(len(k) <= MAX_KEY_LEN for k in by_source.values())
    for name in m["shards"]:  # every member name fits the 100-byte USTAR field
        with tarfile.open(os.path.join(d, name["name"])) as t:
            assert all(len(ti.name.encode()) <= USTAR_NAME_MAX for ti in t)
    # names that always fitted keep their keys, so existing shards stay valid
    assert by_source["short.wav"] == f"short_{key_digest('short.wav')}"
    assert by_source["x" * 79 + ".wav"] == "x" * 79 + "_" + key_digest("x" * 79 + ".wav")
    assert by_source[f"{LONG}.wav"].endswith("_" + key_digest(f"{LONG}.wav"))
    assert shards.verify_dir(d).ok
    before = _tar_hashes(d)
    rc, _, _ = cli(ingest_main, _ingest(src, out, "--shard-size", "2"), capsys)  # a rerun keeps finished work
    assert rc == 0 and _tar_hashes(d) == before
    # cut into 0.5-s clips: segment keys of long keys are shortened too, and stay in time order
    rc, _, err = cli(ingest_main, _ingest(src, cut, "--segment-seconds", "0.5"), capsys)
    assert rc == 0 and "Traceback" not in err, err
    metas = [meta for _, meta in shards.iter_dir(str(cut / "train"))]
    assert len(metas) == 2 * len(names) and all(len(x["key"]) <= MAX_KEY_LEN for x in metas)
    long_clips = [x for x in metas if x["source_id"] == f"{LONG}.wav"]
    assert [x["start"] for x in sorted(long_clips, key=lambda x: x["key"])] == [0.0, 0.5]
    assert {x["recording"] for x in long_clips} == {path_key(f"{LONG}.wav")}


def test_row9_a_key_no_shard_can_hold_is_a_failure_of_its_own(tmp_path):
    """A source (a plugin, a future one) that makes a key too long or unsafe loses that item, never the run."""
    from ingest.engine import IngestConfig, run_ingest
    from ingest.sources.folder import FolderSource

    class BadKeys(FolderSource):
        def items(self):
            its = super().items()
            its[0].key = "k" * 150
            its[1].key = "has a space"
            return its

    src = tmp_path / "src"
    src.mkdir()
    for i in range(4):
        encode_wav(str(src / f"c{i}.wav"), tone(300 + 50 * i, 0.5))
    out = tmp_path / "out"
    s = run_ingest(BadKeys(str(src), dataset="keys"), IngestConfig(out=str(out), shard_size="2", progress=False))
    assert s["ingested"] == 2 and s["failed"] == 2
    rows = [json.loads(ln) for ln in open(out / "train" / "failures.jsonl")]
    assert {r["reason_class"] for r in rows} == {"bad_key"}
    assert {os.path.basename(r["origin"]) for r in rows} == {"c0.wav", "c1.wav"}
    assert shards.read_manifest(str(out / "train"))["failures"]["by_reason"] == {"bad_key": 2}


# ------------------------------------------------------------------------------------------ row 10

def test_row10_label_rows_for_missing_files_are_counted_and_listed(tmp_path, capsys, caplog):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    encode_wav(str(src / "a.wav"), tone(440, 0.5))
    encode_wav(str(src / "b.wav"), tone(660, 0.5))
    (src / "notes.txt").write_text("not audio")
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("path,label\na.wav,dog\nmissing.wav,cat\nb.wav,bird\nnotes.txt,x\nsub,y\n")
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING):
        rc, stdout, err = cli(ingest_main, _ingest(src, out, "--labels", csv_path), capsys)
    assert rc == 0 and "Traceback" not in err
    want = [{"line": 3, "path": "missing.wav", "reason": "no such file"},
            {"line": 5, "path": "notes.txt", "reason": "not an audio file extension (.txt)"},
            {"line": 6, "path": "sub", "reason": "is a folder"}]
    summary = json.loads(stdout)
    assert summary["labels_csv"]["unmatched"] == 3 and summary["labels_csv"]["matched"] == 2
    assert summary["labels_csv"]["unmatched_rows"] == want
    m = shards.read_manifest(str(out / "train"))
    assert m["labels_csv"]["unmatched_rows"] == want and m["labels"]["counts"] == {"bird": 1, "dog": 1}
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("3 of 5 paths" in t and "missing.wav: no such file" in t for t in logged), logged


def test_row10_labels_csv_from_dev_zero_is_refused_with_a_bound(finished, tmp_path, capsys):
    src, out = finished
    before = snapshot(out)
    rc, _, err = cli(ingest_main, _ingest(src, out, "--labels", "/dev/zero"), capsys)
    assert rc == 2
    assert_one_line(err, "/dev/zero", "longer than")
    assert snapshot(out) == before


# ------------------------------------------------------------------------------------------ row 11 (and 15's --level)

@pytest.mark.parametrize("flag,value,words", [
    ("--limit", "-1", ["--limit: must be between 1 and"]),  # row 11: was a Python slice (2 of 3 files)
    ("--workers", "-3", ["--workers: must be between 1 and"]),  # row 11: ran as 1 worker
    ("--workers", "100000", ["--workers: must be between 1 and"]),
    ("--limit", "0", ["--limit"]),
    ("--level", "99", ["--level: must be between 1 and 22, got 99"]),  # row 15
    ("--shard-size", "0MB", ["--shard-size: size must be between 1KB and 100GB, got 0MB"]),
    ("--shard-size", "-5", ["--shard-size: sample count must be between 1 and"]),
    ("--num-jobs", "0", ["--num-jobs"]),
    ("--job-index", "-1", ["--job-index"]),
    ("--threads", "-2", ["--threads"]),
    ("--decode-batch", "0", ["--decode-batch"]),
    ("--min-seconds", "nan", ["--min-seconds", "finite"]),
    ("--segment-seconds", "1e999", ["--segment-seconds", "finite"]),
    ("--segment-seconds", "0.01", ["--segment-seconds", "(or 0)"]),
    ("--workers", "2.5", ["--workers", "expected an integer"]),
])
def test_row11_numbers_out_of_bounds_are_refused(finished, capsys, flag, value, words):
    src, out = finished
    before = snapshot(out)
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        ingest_main(_ingest(src, out, flag, value))
    assert e.value.code == 2
    line = assert_one_line(capsys.readouterr().err, *words)
    assert line.startswith(f"error: {flag}")
    assert snapshot(out) == before


def test_row11_job_index_beyond_num_jobs_and_python_api(finished, capsys):
    from ingest.engine import IngestConfig, run_ingest
    from ingest.sources.folder import FolderSource
    from shards.cli_types import BoundError

    src, out = finished
    before = snapshot(out)
    rc, _, err = cli(ingest_main, _ingest(src, out, "--num-jobs", "2", "--job-index", "2"), capsys)
    assert rc == 2
    assert assert_one_line(err) == "error: --job-index: must be between 0 and 1, got 2"
    for bad in ({"limit": -1}, {"workers": -3}, {"level": 99}, {"shard_size": "0MB"}, {"min_seconds": float("inf")}):
        with pytest.raises(BoundError):  # the same bounds for callers of the Python API
            run_ingest(FolderSource(str(src)), IngestConfig(out=str(out), progress=False, **bad))
    assert snapshot(out) == before


def test_typed_parser_units():
    from shards.cli_types import BoundError, parse_float, parse_int, parse_size

    assert parse_size("200MB") == 200_000_000 and parse_size("64KiB") == 65536 and parse_size("7") == 7
    assert parse_size("1.5GB") == 1_500_000_000 and parse_int(" 12 ", 1, 22) == 12
    assert parse_float("0.25", 0, 1) == 0.25
    for bad in (lambda: parse_int("1e3"), lambda: parse_int("0x10"), lambda: parse_int("5", 6),
                lambda: parse_float("inf"), lambda: parse_float("nan", 0, 1), lambda: parse_size("12XB"),
                lambda: parse_size("0MB", 1000), lambda: parse_size("1iB")):
        with pytest.raises(BoundError):
            bad()


# ------------------------------------------------------------------------------------------ row 12

@pytest.fixture()
def shard_dir(demo_small, tmp_path):
    d = tmp_path / "train"
    shutil.copytree(os.path.join(demo_small[0], "train"), d)
    return str(d)


def _rewrite_manifest(d, change):
    p = os.path.join(d, "manifest.json")
    m = json.load(open(p))
    change(m)
    json.dump(m, open(p, "w"))


def test_row12_a_shard_listed_twice_is_refused_wherever_shards_are_read(shard_dir, capsys):
    from pipeline.manifests import read_manifests

    _rewrite_manifest(shard_dir, lambda m: m["shards"].append(dict(m["shards"][0])))
    before = snapshot(shard_dir)
    rc, _, err = cli(shards_main, ["inspect", shard_dir], capsys)
    assert rc == 2
    assert_one_line(err, "listed twice")
    rc, out, err = cli(shards_main, ["verify", shard_dir], capsys)
    assert rc == 1 and "listed twice" in out and "Traceback" not in err
    with pytest.raises(shards.ManifestError, match="listed twice"):
        read_manifests([shard_dir])  # what training and evaluation read
    assert snapshot(shard_dir) == before


def test_row12_manifest_totals_must_match_the_shard_list(shard_dir, capsys):
    _rewrite_manifest(shard_dir, lambda m: m["totals"].update(clips=m["totals"]["clips"] * 2))
    rc, _, err = cli(shards_main, ["inspect", shard_dir], capsys)
    assert rc == 2
    assert_one_line(err, "totals.clips")


def test_row12_the_same_directory_twice_is_read_once(shard_dir, tmp_path, caplog):
    from pipeline.manifests import read_manifests

    link = tmp_path / "link"
    os.symlink(shard_dir, link)
    one = read_manifests([shard_dir])
    with caplog.at_level(logging.WARNING):
        facts = read_manifests([shard_dir, shard_dir + "/", str(link), "file://" + shard_dir])
    assert facts.num_clips == one.num_clips and facts.num_shards == one.num_shards and facts.dirs == [shard_dir]
    assert sum("read once" in r.getMessage() for r in caplog.records) == 3


def test_manifest_from_dev_zero_is_refused_with_a_bound(shard_dir, capsys, monkeypatch):
    import shards.manifest as sm

    monkeypatch.setattr(sm, "MAX_MANIFEST_BYTES", 1 << 20)  # the bound, small: the test reads 1 MiB of zeros
    p = os.path.join(shard_dir, "manifest.json")
    os.unlink(p)
    os.symlink("/dev/zero", p)
    rc, _, err = cli(shards_main, ["inspect", shard_dir], capsys)
    assert rc == 2
    assert_one_line(err, "manifest is larger than 1,048,576 bytes")


# ------------------------------------------------------------------------------------------ row 14

def test_row14_video_without_audio_is_skipped_as_no_audio_stream(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    encode_wav(str(src / "good.wav"), tone(440, 0.5))
    encode_wav(str(tmp_path / "t.wav"), tone(550, 0.5))
    transcode(str(tmp_path / "t.wav"), str(src / "also_good.flac"))
    p = subprocess.run([resolve_ffmpeg(), "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                        "-i", "color=c=black:s=32x32:d=0.5", "-c:v", "mpeg4", str(src / "silent_film.mp4")],
                       capture_output=True, timeout=60)
    assert p.returncode == 0, p.stderr
    out = tmp_path / "out"
    rc, _, err = cli(ingest_main, _ingest(src, out), capsys)
    assert rc == 0 and "Traceback" not in err
    rows = [json.loads(ln) for ln in open(out / "train" / "failures.jsonl")]
    assert len(rows) == 1 and os.path.basename(rows[0]["origin"]) == "silent_film.mp4"
    assert rows[0]["reason_class"] == "no_audio_stream" and rows[0]["reason"].startswith("no audio stream")
    assert "trailing" not in rows[0]["reason"]
    m = shards.read_manifest(str(out / "train"))
    assert m["totals"]["clips"] == 2 and m["failures"]["by_reason"] == {"no_audio_stream": 1}


# ------------------------------------------------------------------------------------------ row 15

def test_row15_source_that_is_a_file(finished, tmp_path, capsys):
    _, out = finished
    f = tmp_path / "song.wav"
    encode_wav(str(f), tone(440, 0.5))
    before = snapshot(out)
    rc, _, err = cli(ingest_main, _ingest(f, out), capsys)
    assert rc == 2
    assert_one_line(err, str(f), "is not a folder")
    src, _ = finished
    rc, _, err = cli(ingest_main, _ingest(src, f), capsys)  # --out that is a file
    assert rc == 2
    assert_one_line(err, f"--out {f}: is not a folder")
    bad_csv = tmp_path / "labels.csv"
    bad_csv.write_bytes(b"path,label\nc0.wav,\xff\xfe\n")
    rc, _, err = cli(ingest_main, _ingest(src, out, "--labels", bad_csv), capsys)
    assert rc == 2
    assert_one_line(err, str(bad_csv), "not UTF-8")
    assert snapshot(out) == before


# ------------------------------------------------------------------------------------------ one writer per --out

_HOLD = """
import sys, time
sys.path.insert(0, {root!r})
from ingest.outlock import out_lock
with out_lock({out!r}, {jobs}, {index}):
    print("ready", flush=True)
    time.sleep(300)
"""


def _holder(out, jobs: int = 1, index: int = 0) -> subprocess.Popen:
    """A real process holding the lock an ingest into ``out`` takes (as a running ingest does)."""
    p = subprocess.Popen([PY, "-c", _HOLD.format(root=ROOT, out=str(out), jobs=jobs, index=index)],
                         stdout=subprocess.PIPE, text=True, env=ENV)
    assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    return p


def _kill(p: subprocess.Popen) -> None:
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)


def test_two_ingests_into_one_out_the_second_refuses(finished, tmp_path, capsys):
    src, fin = finished
    out = tmp_path / "out"
    shutil.copytree(fin, out)
    before = snapshot(out)
    holder = _holder(out)
    try:
        p = subprocess.run([PY, "-m", "ingest", *_ingest(src, out)], capture_output=True, text=True, env=ENV,
                           timeout=300, cwd=ROOT)
        assert p.returncode == 2
        assert_one_line(p.stderr, f"shard directory {out} is in use by pid {holder.pid}", "on host")
        assert {k: v for k, v in snapshot(out).items() if k != ".melstream.lock"} == before  # the holder's lock aside
    finally:
        _kill(holder)
    # the holder was killed: its lock is stale and the next ingest takes it over
    rc, _, err = cli(ingest_main, _ingest(src, out, "--shard-size", "2"), capsys)
    assert rc == 0, err
    assert _tar_hashes(out) == {k: v for k, v in before.items() if k.endswith((".tar", ".tar.json"))}
    assert not (out / ".melstream.lock").exists()


def test_jobs_of_an_array_lock_per_index(finished, tmp_path, capsys):
    src, _ = finished
    out = tmp_path / "out"
    holder = _holder(out, jobs=2, index=0)
    try:
        rc, _, err = cli(ingest_main, _ingest(src, out, "--shard-size", "1", "--num-jobs", "2", "--job-index", "1"), capsys)
        assert rc == 0, err  # another index of the same array runs side by side
        written = _tar_hashes(out)
        assert written and all("000001" in k for k in written)
        for argv in (_ingest(src, out, "--shard-size", "1", "--num-jobs", "2", "--job-index", "0"),
                     _ingest(src, out, "--shard-size", "1")):  # the same job twice; a plain ingest over the array
            rc, _, err = cli(ingest_main, argv, capsys)
            assert rc == 2
            assert_one_line(err, "job 0 of 2", f"in use by pid {holder.pid}")
            assert _tar_hashes(out) == written
    finally:
        _kill(holder)


# ------------------------------------------------------------------------------------------ secrets

def test_shard_records_never_hold_url_secrets(tmp_path):
    """Origins with userinfo or signed-URL tokens are written redacted: sample JSON, failures, manifest."""
    from ingest.engine import IngestConfig, Item, SkipItem, run_ingest

    url = "https://ana:secretpw@media.example.org/clips/{i}.wav?X-Amz-Signature=abc123sig&part=1"

    class Remote:
        dataset = "remote"

        def items(self):
            return [Item(key=f"r{i}", source_id=url.format(i=i), origin=url.format(i=i)) for i in range(3)]

        def load(self, item, sample_rate):
            if item.key == "r2":
                raise SkipItem("unavailable", f"HTTP 403 for {item.origin}")
            return tone(440, 0.5)

    out = tmp_path / "out"
    s = run_ingest(Remote(), IngestConfig(out=str(out), progress=False),
                   command=["python", "-m", "ingest", "--url", url.format(i=0)])
    assert s["ingested"] == 2 and s["failed"] == 1
    for dirpath, _, files in os.walk(out):
        for fn in files:
            data = open(os.path.join(dirpath, fn), "rb").read()
            assert b"secretpw" not in data and b"abc123sig" not in data, fn
    metas = [meta for _, meta in shards.iter_dir(str(out / "train"))]
    assert metas[0]["origin"] == "https://***@media.example.org/clips/0.wav?X-Amz-Signature=REDACTED&part=1"
