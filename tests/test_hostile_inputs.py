"""The hostile-input sweep (issue 11): the CLIs as a careless or hostile user would use them.

Every case asserts the exit status, a one-line message (no ``Traceback`` on stderr) and that finished
work is intact (shard and checkpoint hashes, key sets).  The CLIs' ``main(argv)`` run in-process
(stderr captured) except where a real process boundary matters (``sys.exit(main())``,
``MELSTREAM_DEBUG``).  SIGKILL during ingest then a rerun is ``test_ingest_robustness.py::
test_sigkill_then_rerun_resumes``; the AudioSet rows are checked where they are parsed.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import torch

import shards
from ingest.decode import encode_wav
from tests.conftest import ROOT, tone

PY = sys.executable


# ------------------------------------------------------------------------------------------ helpers

def snapshot(root) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``root``: finished work, byte for byte."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for fn in files:
            p = os.path.join(dirpath, fn)
            out[os.path.relpath(p, root)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def error_lines(err: str) -> list[str]:
    """What a command printed for the user on stderr (log records and argparse's usage lines aside)."""
    return [ln for ln in err.splitlines()
            if ln.strip() and not ln.startswith(("INFO ", "WARNING ", "DEBUG ", "usage:", " "))]


def assert_one_line(err: str, *words: str) -> str:
    assert "Traceback" not in err, err
    lines = error_lines(err)
    assert len(lines) == 1 and "error:" in lines[0], err
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


def cli(main, argv, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def pretrain_main(argv):
    from train.pretrain import main
    return main(argv)


def ingest_main(argv):
    from ingest.__main__ import main
    return main(argv)


def shards_main(argv):
    from shards.__main__ import main
    return main(argv)


def eval_main(argv):
    from eval.__main__ import main
    return main(argv)


def import_main(argv):
    from train.import_weights import main
    return main(argv)


def train_args(shard_dir, out, *extra, steps=2):
    return ["--method", "temporal_gap", "--shards", shard_dir, "--out", out, "--steps", str(steps), "--batch-size", "8",
            "--num-workers", "0", "--log-every", "1", "--save-every", "1", "--shuffle-buffer", "16", "--tracker", "none",
            *extra]


# ------------------------------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def run_dir(demo_small, tmp_path_factory):
    """A finished two-step run (checkpoints step 1 and 2, the exported encoder)."""
    from train.pretrain import main

    out = str(tmp_path_factory.mktemp("hostile") / "run")
    assert main(train_args(os.path.join(demo_small[0], "pretrain"), out)) == 0
    return out


@pytest.fixture()
def run_copy(run_dir, tmp_path):
    """A copy of the finished run for commands that point at it (a failure cannot spoil the next case)."""
    dst = str(tmp_path / "run_copy")
    shutil.copytree(run_dir, dst)
    return dst


@pytest.fixture(scope="module")
def pretrain_dir(demo_small):
    return os.path.join(demo_small[0], "pretrain")


@pytest.fixture(scope="module")
def folder_corpus(tmp_path_factory):
    """Two good WAVs, a symlink loop and a dangling symlink, ingested once with the CLI."""
    base = tmp_path_factory.mktemp("symlinks")
    src, out = base / "src", base / "out"
    (src / "a").mkdir(parents=True)
    encode_wav(str(src / "a" / "good1.wav"), tone(440, 1.0))
    encode_wav(str(src / "a" / "good2.wav"), tone(660, 1.0))
    os.symlink("loop.wav", src / "a" / "loop.wav")  # points at itself: ELOOP
    os.symlink("nowhere/missing.wav", src / "a" / "dangling.wav")
    rc = ingest_main(["folder", str(src), "--out", str(out), "--no-progress", "--workers", "1"])
    failures = [json.loads(ln) for ln in open(out / "train" / "failures.jsonl")]
    return rc, out, failures


def _flip_in_mel(path: str, which: int = 0) -> str:
    """Flip one byte in the middle of each chunk of sample ``which``'s mel data (so that any crop meets
    one: samplers decompress only the chunks they read); returns its key."""
    key, members = list(shards.iter_tar_index(path))[which]
    off, size = members["mel.npy.zst"]
    meta = json.loads(dict(shards.iter_tar_samples(path))[key]["json"])
    bounds = meta["mel_chunks"]["offsets"] + [size]
    data = bytearray(open(path, "rb").read())
    for a, b in zip(bounds[:-1], bounds[1:]):
        data[off + (a + b) // 2] ^= 0x40  # inside the chunk's compressed bytes
    open(path, "wb").write(bytes(data))
    return key


@pytest.fixture()
def shard_copy(demo_small, tmp_path):
    d = tmp_path / "train"
    shutil.copytree(os.path.join(demo_small[0], "train"), d)
    return str(d)


# ------------------------------------------------------------------------------------------ the CLI boundary

def test_boundary_turns_any_exception_into_one_line(capsys, monkeypatch):
    from shards.cli import cli_main

    @cli_main("demo-cmd")
    def boom(argv=None):
        raise RuntimeError("something deep\nsecond line")

    monkeypatch.delenv("MELSTREAM_DEBUG", raising=False)
    rc, _, err = cli(boom, [], capsys)
    assert rc == 2 and assert_one_line(err) == "error: demo-cmd: RuntimeError: something deep"
    from shards.cli import error_line
    assert error_line(FileNotFoundError(2, "No such file or directory", "/x/y"), "cmd") == \
        "error: /x/y: No such file or directory"
    assert error_line(ValueError("cfg.yaml: steps: expected int"), "cmd") == "error: cfg.yaml: steps: expected int"
    assert error_line(KeyError("unknown encoder 'x'"), "cmd") == "error: cmd: unknown encoder 'x'"

    @cli_main("demo-cmd")
    def leaves(argv=None):
        raise SystemExit("error: already one line")

    rc, _, err = cli(leaves, [], capsys)
    assert rc == 2 and err == "error: demo-cmd: already one line\n"
    monkeypatch.setenv("MELSTREAM_DEBUG", "1")  # developers get the traceback
    with pytest.raises(RuntimeError, match="something deep"):
        boom([])


def test_real_process_one_line_and_debug_traceback(tmp_path):
    """``sys.exit(main())`` in a real process (``python -m shards``: the lightest CLI): a file where a
    shard directory should be gives one line and exit 2; ``MELSTREAM_DEBUG=1`` gives the traceback."""
    f = tmp_path / "not_a_dir"
    f.write_text("x")
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    env.pop("MELSTREAM_DEBUG", None)
    cmd = [PY, "-m", "shards", "verify", str(f)]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert p.returncode == 2
    assert_one_line(p.stderr, str(f), "Not a directory")
    p = subprocess.run(cmd, capture_output=True, text=True, env={**env, "MELSTREAM_DEBUG": "1"}, timeout=300, cwd=ROOT)
    assert p.returncode == 1 and "Traceback" in p.stderr and "NotADirectoryError" in p.stderr


# ------------------------------------------------------------------------------------------ ingest

def test_folder_symlink_loop_is_a_failure_of_its_own(folder_corpus):  # row 1
    rc, out, failures = folder_corpus
    assert rc == 0
    by_origin = {os.path.basename(f["origin"]): f for f in failures}
    assert by_origin["loop.wav"]["reason_class"] == "unreadable"
    m = shards.read_manifest(str(out / "train"))
    assert m["totals"]["clips"] == 2 and m["failures"]["by_reason"] == {"unreadable": 2}


def test_folder_dangling_symlink_is_a_failure_of_its_own(folder_corpus):  # row 2
    rc, out, failures = folder_corpus
    assert rc == 0
    assert {os.path.basename(f["origin"]): f["reason_class"] for f in failures}["dangling.wav"] == "unreadable"
    keys = {meta["source_id"] for _, meta in shards.iter_dir(str(out / "train"))}
    assert keys == {os.path.join("a", "good1.wav"), os.path.join("a", "good2.wav")}  # the good files went in


def test_parts_records_have_the_mode_of_the_shards(folder_corpus):  # also seen: .parts were 0600
    _, out, _ = folder_corpus
    d = out / "train"
    shard_mode = os.stat(d / shards.read_manifest(str(d))["shards"][0]["name"]).st_mode & 0o777
    for p in (d / ".parts").iterdir():
        assert os.stat(p).st_mode & 0o777 == shard_mode
    assert os.stat(d / "manifest.json").st_mode & 0o777 == shard_mode


def test_missing_source_folder(tmp_path, capsys):
    rc, _, err = cli(ingest_main, ["folder", tmp_path / "nope", "--out", tmp_path / "o", "--no-progress"], capsys)
    assert rc == 2
    assert_one_line(err, "nope")


def test_label_csv_path_outside_root(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    encode_wav(str(src / "x.wav"), tone(440, 1.0))
    (tmp_path / "labels.csv").write_text("path,label\n../../etc/passwd,evil\n")
    rc, _, err = cli(ingest_main, ["folder", src, "--out", tmp_path / "o", "--labels", tmp_path / "labels.csv",
                                   "--no-progress"], capsys)
    assert rc == 2
    assert_one_line(err, "outside")
    assert not (tmp_path / "o" / "train" / "manifest.json").exists()


def _segments(tmp_path, rows: list[str], bom: bool = False, crlf: bool = False) -> str:
    head = ["# Segments csv created Sun Mar  5 10:54:31 2017", "# num_ytids=9, num_segs=9, num_unique_labels=2",
            "# YTID, start_seconds, end_seconds, positive_labels"]
    nl = "\r\n" if crlf else "\n"
    p = tmp_path / "segments.csv"
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + nl.join(head + rows).encode() + nl.encode())
    return str(p)


GOOD_ROW = '--PJHxphWEs, 30.000, 40.000, "/m/09x0r,/t/dd00088"'


@pytest.mark.parametrize("row,reason", [
    ('#NAME?, 30.000, 40.000, "/m/09x0r"', "bad_ytid"),  # a spreadsheet mangled the ID
    ('$(rm -rf ~)x, 30.000, 40.000, "/m/09x0r"', "bad_ytid"),  # shell characters never reach a shell
    ('abcdefghij;, 30.000, 40.000, "/m/09x0r"', "bad_ytid"),
    ('--PJHxphWEt, -5.000, 4.000, "/m/09x0r"', "bad_time"),  # negative
    ('--PJHxphWEu, 40.000, 30.000, "/m/09x0r"', "bad_time"),  # inverted
    ('--PJHxphWEv, nan, 40.000, "/m/09x0r"', "bad_time"),
    ('--PJHxphWEw, 0, 1e12, "/m/09x0r"', "bad_time"),  # also seen: 1e12 s would be fetched
])
def test_audioset_rows_are_rejected_and_counted(tmp_path, row, reason):
    from ingest.sources.audioset import parse_segments

    parsed = parse_segments(_segments(tmp_path, [GOOD_ROW, row]))
    assert dict(parsed.rejected) == {reason: 1}
    assert [s.ytid for s in parsed.segments] == ["--PJHxphWEs"]  # the good row is kept


def test_audioset_bom_and_crlf(tmp_path):
    from ingest.sources.audioset import parse_segments

    parsed = parse_segments(_segments(tmp_path, [GOOD_ROW], bom=True, crlf=True))
    assert not parsed.rejected and len(parsed.segments) == 1
    assert parsed.segments[0].labels == ["/m/09x0r", "/t/dd00088"] and parsed.declared == 9


# ------------------------------------------------------------------------------------------ shards

def test_flipped_mel_byte_fails_decoding_is_counted_and_named(shard_copy, capsys):  # row 3
    from pipeline import build_loader

    m = shards.read_manifest(shard_copy)
    victim = os.path.join(shard_copy, m["shards"][0]["name"])
    key = _flip_in_mel(victim)
    members = dict(shards.iter_tar_samples(victim))[key]
    with pytest.raises(shards.CodecError, match="chunk 0"):  # zstd's content checksum
        shards.decode_members(key, members)
    loader, info = build_loader([shard_copy], "crop", 4, mode="eval", return_keys=True)
    keys = [k for b in loader for k, v in zip(b["__key__"], b["valid"]) if v]
    assert key not in keys and len(set(keys)) == m["totals"]["clips"] - 1
    assert info.skipped.corrupt_samples == 1 and int(info.skipped) == 1  # the sample, not the shard
    rc, out, err = cli(shards_main, ["verify", shard_copy], capsys)
    assert rc == 1 and "Traceback" not in err
    assert f"CORRUPT {m['shards'][0]['name']}: sample {key}: chunk 0: zstd" in out


def test_format_version_1_shards_still_read(tmp_path, capsys):
    """A v1 shard written the old way (frames without checksums, no mel_checksum, manifest v1) reads
    and verifies; its flipped bytes go unnoticed by the codec, which is why v2 exists."""
    rng = np.random.default_rng(0)
    d = str(tmp_path / "v1")
    w = shards.ShardWriter(d, shards.shard_name("old", "train", 0), checksum=False,
                           common={"dataset": "old", "split": "train", "frontend": {"n_mels": 16}, "frontend_hash": "x"})
    mels = {f"k{i}": rng.normal(-5, 2, (16, 250)).astype(np.float32) for i in range(3)}
    for k, mel in mels.items():
        w.add(k, mel, {"duration": 2.5, "labels": []})
    w.close()
    m = shards.build_manifest(d)
    m["format_version"] = 1
    json.dump(m, open(os.path.join(d, "manifest.json"), "w"))
    members = dict(shards.iter_tar_samples(os.path.join(d, m["shards"][0]["name"])))
    assert "mel_checksum" not in json.loads(members["k0"]["json"])
    for mel, meta in shards.iter_dir(d):
        np.testing.assert_array_equal(mel, mels[meta["key"]].astype(np.float16).astype(np.float32))
    rc, out, _ = cli(shards_main, ["verify", d], capsys)
    assert rc == 0 and "OK: 1 shards, 3 samples" in out
    from pipeline import build_loader
    loader, info = build_loader([d], "crop", 3, mode="eval", sampler_kwargs={"n_frames": 96})
    assert sum(int(b["valid"].sum()) for b in loader) == 3 and int(info.skipped) == 0


def test_v2_samples_refuse_frames_without_checksum():
    mel = np.random.default_rng(1).normal(-5, 2, (16, 150)).astype(np.float32)
    old, _, _ = shards.encode_mel(mel, "f16chunks", checksum=False)
    _, extra, _ = shards.encode_mel(mel, "f16chunks")
    meta = {"n_mels": 16, "frames": 150, **extra}
    meta["mel_chunks"] = {"frames_per_chunk": 100, "offsets": shards.encode_mel(mel, "f16chunks", checksum=False)[1]
                          ["mel_chunks"]["offsets"]}
    with pytest.raises(shards.CodecError, match="no content checksum"):  # stripped checksums are not a way around it
        shards.decode_mel(old, meta)


def test_tar_member_with_parent_path(shard_copy, capsys):
    m = shards.read_manifest(shard_copy)
    victim = os.path.join(shard_copy, m["shards"][0]["name"])
    with tarfile.open(victim, "w", format=tarfile.USTAR_FORMAT) as t:
        ti = tarfile.TarInfo("../evil.json")
        ti.size = 2
        t.addfile(ti, io.BytesIO(b"{}"))
    before = snapshot(os.path.dirname(shard_copy))
    rc, out, err = cli(shards_main, ["verify", shard_copy], capsys)
    assert rc == 1 and "Traceback" not in err and "unsafe member name '../evil.json'" in out
    assert not os.path.exists(os.path.join(os.path.dirname(shard_copy), "evil.json"))
    assert snapshot(os.path.dirname(shard_copy)) == before


@pytest.mark.parametrize("tamper,words", [
    (lambda m: "{not json", ["invalid JSON"]),
    (lambda m: json.dumps({**m, "shards": [{**m["shards"][0], "name": "../x.tar"}]}), ["invalid shard file name"]),
    (lambda m: json.dumps({**m, "format_version": 99}), ["format_version 99"]),
])
def test_tampered_manifest(shard_copy, capsys, tamper, words):
    p = os.path.join(shard_copy, "manifest.json")
    text = tamper(json.load(open(p)))
    open(p, "w").write(text)
    before = snapshot(shard_copy)
    for cmd, want_rc in (("inspect", 2), ("verify", 1)):
        rc, out, err = cli(shards_main, [cmd, shard_copy], capsys)
        assert rc == want_rc and "Traceback" not in err
        text = err if cmd == "inspect" else out
        assert all(w in text for w in words), text
    assert_one_line(cli(shards_main, ["inspect", shard_copy], capsys)[2], *words)
    assert snapshot(shard_copy) == before


def test_mismatched_frontends(demo_small, tmp_path, capsys):
    other = tmp_path / "other"
    shutil.copytree(os.path.join(demo_small[0], "train"), other)
    p = other / "manifest.json"
    m = json.load(open(p))
    m["frontend"] = {**m["frontend"], "n_mels": 80}
    m["frontend_hash"] = "0" * 16
    json.dump(m, open(p, "w"))
    out = tmp_path / "run"
    argv = train_args(os.path.join(demo_small[0], "pretrain"), out, steps=1)
    i = argv.index("--shards")
    rc, _, err = cli(pretrain_main, argv[:i + 2] + [str(other)] + argv[i + 2:], capsys)
    assert rc == 2
    assert_one_line(err, "frontend")
    assert not (out / "config.yaml").exists()


# ------------------------------------------------------------------------------------------ training: configs

def _bad_run(capsys, run_dir, argv, *words):
    """A refused command pointed at a finished run (a copy of it, ``argv`` naming it): exit 2, one line,
    the run untouched."""
    before = snapshot(run_dir)
    rc, _, err = cli(pretrain_main, argv, capsys)
    assert rc == 2, err
    line = assert_one_line(err, *words)
    assert snapshot(run_dir) == before
    return line


@pytest.mark.parametrize("yaml_text,words", [
    ("method: temporal_gap\nbatch_size: [1, 2]\n", ["batch_size", "expected int", "[1, 2]"]),  # row 6
    ("method: temporal_gap\nsteps: three\n", ["steps", "expected int", "'three'"]),  # row 7
    ("method: temporal_gap\nsteps: [1\n  lr: :\n", ["cfg.yaml:3:", "invalid YAML"]),  # row 8
    ("method: temporal_gap\nsteps_typo: 5\n", ["unknown fields"]),
    ("method: temporal_gap\nhparams: 3\n", ["hparams", "mapping"]),
    ("- a\n- b\n", ["expected a mapping"]),
])
def test_bad_yaml(pretrain_dir, run_copy, tmp_path, capsys, yaml_text, words):
    p = tmp_path / "cfg.yaml"
    p.write_text(yaml_text)
    _bad_run(capsys, run_copy, ["--config", p, "--shards", pretrain_dir, "--out", run_copy], *words)


@pytest.mark.parametrize("extra,words", [
    (["--hp", "lr=abc"], ["--hp lr", "expected float", "'abc'"]),  # row 9
    (["--encoder-arg", "d=-1"], ["bad --encoder-arg d=-1"]),  # row 10
    (["--encoder-arg", "foo=1"], ["bad --encoder-arg foo=1", "valid: n_mels, d, width"]),  # row 11
    (["--sampler-arg", "bogus=1"], ["bad --sampler-arg bogus=1", "valid: n_frames"]),  # row 12
    (["--batch-size", "0"], ["--batch-size", ">= 1"]),  # row 13
    (["--sampler", "nope"], ["unknown sampler 'nope'"]),  # also seen: config.yaml was written first
    (["--sampler-arg", "n_frames=-4"], ["bad --sampler-arg n_frames=-4", ">= 1"]),
    (["--encoder", "audio_ntt", "--encoder-arg", "dropout=2.0"], ["bad --encoder-arg dropout=2.0", "dropout"]),
    (["--hp", "betas=[0.9]"], ["--hp betas", "expected tuple"]),
    (["--encoder-arg", "d=abc"], ["bad --encoder-arg d=abc", "expected int"]),
    (["--steps", "0"], ["--steps", ">= 1"]),
])
def test_bad_flags(pretrain_dir, run_copy, capsys, extra, words):
    argv = train_args(pretrain_dir, run_copy, *extra)
    if "--batch-size" in extra or "--steps" in extra:  # the later flag wins in argparse; drop the defaults
        i = argv.index(extra[0])
        argv = argv[:i] + argv[i + 2:]
    _bad_run(capsys, run_copy, argv, *words)


def test_bad_flags_leave_no_new_run_dir(pretrain_dir, tmp_path, capsys):
    out = tmp_path / "fresh"
    for extra in (["--sampler", "nope"], ["--sampler-arg", "bogus=1"], ["--encoder-arg", "d=-1"]):
        rc, _, err = cli(pretrain_main, train_args(pretrain_dir, out, *extra), capsys)
        assert rc == 2 and "Traceback" not in err
        assert not (out / "config.yaml").exists() and not (out / "metrics.jsonl").exists()


@pytest.mark.parametrize("argv,words", [
    (["--method", "nope"], ["--method", "invalid choice"]),
    (["--method", "temporal_gap", "--encoder", "nope"], ["--encoder", "invalid choice"]),
])
def test_unknown_method_and_encoder(capsys, argv, words):
    with pytest.raises(SystemExit) as e:
        pretrain_main(argv)
    assert e.value.code == 2
    assert_one_line(capsys.readouterr().err, *words)


# ------------------------------------------------------------------------------------------ weights files

def _pth(tmp_path, name, obj=None, raw=None):
    p = tmp_path / name
    if raw is not None:
        p.write_bytes(raw)
    else:
        torch.save(obj, p)
    return str(p)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):  # unpickling would create the marker file: code would have run
        return (open, (self.marker, "w"))


def test_weights_files(pretrain_dir, run_copy, tmp_path, capsys):
    from models import build_encoder
    marker = str(tmp_path / "code_ran")
    good = {k: v for k, v in build_encoder("mobile").state_dict().items()}
    cases = [
        (_pth(tmp_path, "garbage.safetensors", raw=b"\x10\x00\x00\x00\x00\x00\x00\x00{garbage"),
         ["garbage.safetensors", "not a readable safetensors"]),  # row 4
        (_pth(tmp_path, "text.pth", raw=b"these are not weights\n"), ["text.pth", "not a PyTorch checkpoint"]),  # also seen
        (_pth(tmp_path, "pickled.pth", raw=pickle.dumps({"w": _Evil(marker)}, protocol=2)), ["pickled.pth", "not a plain tensor"]),
        (_pth(tmp_path, "shapes.pth", {k: torch.zeros(3) if v.dim() else v for k, v in good.items()}), ["shapes.pth", "size mismatch"]),
        (str(tmp_path / "missing.pth"), ["missing.pth", "no such file"]),
    ]
    for path, words in cases:
        _bad_run(capsys, run_copy, train_args(pretrain_dir, run_copy, "--init", path), *words)
        rc, _, err = cli(import_main, ["--encoder", "mobile", "--weights", path, "--preset", "tagliasacchi",
                                       "--out", tmp_path / "imported"], capsys)
        assert rc == 2
        assert_one_line(err, os.path.basename(path))
        assert not (tmp_path / "imported" / "encoder.json").exists()
    assert not os.path.exists(marker)  # the pickled object never ran


# ------------------------------------------------------------------------------------------ checkpoints

def test_resume_falls_back_past_a_truncated_checkpoint(pretrain_dir, run_dir, tmp_path, capsys, caplog):  # row 5
    run = str(tmp_path / "run")
    shutil.copytree(run_dir, run)
    newest = os.path.join(run, "checkpoints", "step_0000002")
    weights = os.path.join(newest, "model.safetensors")
    data = open(weights, "rb").read()
    open(weights, "wb").write(data[:len(data) // 2])
    older = snapshot(os.path.join(run, "checkpoints", "step_0000001"))
    rc, out, err = cli(pretrain_main, train_args(pretrain_dir, run, "--resume", steps=3), capsys)
    assert rc == 0 and "Traceback" not in err
    assert "resumed from" in out and "step_0000001 (step 1)" in out
    assert "model.safetensors is" in caplog.text and "truncated" in caplog.text
    rows = [json.loads(ln) for ln in open(os.path.join(run, "metrics.jsonl"))]
    assert [r["step"] for r in rows] == [1, 2, 3]  # steps 2 and 3 trained again from step 1
    assert json.load(open(os.path.join(run, "encoder.json")))["step"] == 3
    from train.checkpoint import check_checkpoint, list_checkpoints
    assert [s for s, _ in list_checkpoints(run)] == [1, 2, 3]
    assert all(check_checkpoint(p) is None for _, p in list_checkpoints(run))
    assert older == snapshot(os.path.join(run, "checkpoints", "step_0000001"))


def test_resume_names_an_unreadable_optimizer_state(pretrain_dir, run_dir, tmp_path, capsys):
    """A checkpoint written before the index (COMPLETE holds only the step) with a truncated optimizer.bin:
    "unreadable", not "changed method?"; with nothing older to fall back to, the run stops."""
    run = str(tmp_path / "run")
    shutil.copytree(run_dir, run)
    shutil.rmtree(os.path.join(run, "checkpoints", "step_0000001"))
    ck = os.path.join(run, "checkpoints", "step_0000002")
    open(os.path.join(ck, "COMPLETE"), "w").write("2\n")
    opt = os.path.join(ck, "optimizer.bin")
    data = open(opt, "rb").read()
    open(opt, "wb").write(data[:len(data) // 3])
    before = snapshot(run)
    rc, _, err = cli(pretrain_main, train_args(pretrain_dir, run, "--resume", steps=3), capsys)
    assert rc == 2
    line = assert_one_line(err, "unreadable", "no intact checkpoint")
    assert "changed method" not in line
    assert snapshot(run) == before


def test_checkpoint_index_catches_changes(run_dir, tmp_path):
    from train.checkpoint import check_checkpoint

    ck = str(tmp_path / "ck")
    shutil.copytree(os.path.join(run_dir, "checkpoints", "step_0000001"), ck)
    assert check_checkpoint(ck) is None
    p = os.path.join(ck, "model.safetensors")
    data = bytearray(open(p, "rb").read())
    data[-3] ^= 1  # same size, one bit
    open(p, "wb").write(bytes(data))
    assert "SHA-256" in check_checkpoint(ck)
    os.unlink(p)
    assert "missing" in check_checkpoint(ck)


# ------------------------------------------------------------------------------------------ eval

def test_encoder_json_with_wrong_kwarg_types(run_dir, tmp_path, capsys):  # row 14
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    meta = json.load(open(run / "encoder.json"))
    meta["kwargs"]["d"] = "wide"
    json.dump(meta, open(run / "encoder.json", "w"))
    rc, _, err = cli(eval_main, ["run", "--model", run, "--tasks", "demo_family", "--out", tmp_path / "rep"], capsys)
    assert rc == 2
    assert_one_line(err, f"{run}/encoder.json: bad kwargs d=wide", "expected int")
    meta["kwargs"]["d"] = -3  # the right type, an impossible value
    json.dump(meta, open(run / "encoder.json", "w"))
    rc, _, err = cli(eval_main, ["run", "--model", run, "--tasks", "demo_family", "--out", tmp_path / "rep"], capsys)
    assert rc == 2
    assert_one_line(err, f"{run}/encoder.json: bad kwargs")


def test_garbage_exported_weights(run_dir, tmp_path, capsys):
    from train.export import load_encoder
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    (run / "encoder.safetensors").write_bytes(b"\x00" * 5)
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_encoder(str(run))


def test_one_class_task_is_refused(tmp_path, capsys):  # row 15
    root = tmp_path / "task"
    for split in ("train", "test"):
        for i in range(3):
            os.makedirs(root / split / "dog", exist_ok=True)
            encode_wav(str(root / split / "dog" / f"{i}.wav"), tone(300 + 50 * i, 1.0))
    rc, _, err = cli(eval_main, ["run", "--model", "spectrogram", "--tasks", "folder", "--data", f"folder={root}",
                                    "--out", tmp_path / "rep"],
                     capsys)
    assert rc == 2
    assert_one_line(err, "at least 2 classes")
    assert not (tmp_path / "rep" / "results.json").exists()


@pytest.mark.parametrize("argv,words", [
    (["--model", "spectrogram", "--tasks", "no_such_task"], ["no_such_task"]),  # unknown task
    (["--model", "/nonexistent/model", "--tasks", "demo_family"], ["/nonexistent/model"]),  # nonexistent model path
])
def test_eval_unknown_task_and_missing_model(tmp_path, capsys, argv, words):
    rc, _, err = cli(eval_main, ["run", *argv, "--out", tmp_path / "rep"], capsys)
    assert rc == 2
    assert_one_line(err, *words)
