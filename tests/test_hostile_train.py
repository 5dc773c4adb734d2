"""Issue 22, the trainer's rows: runs, locks, credentials and bounds on a shared node.

Each row asserts the exit status, exactly one ``error:`` line without a traceback, and that finished
work is byte-for-byte intact (the helpers and the finished-run fixtures of ``test_hostile_inputs``).
Row 2 runs a real trainer process next to this one (stopped with SIGSTOP while it holds the run
directory, then SIGKILLed to leave a stale lock).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tracemalloc

import pytest

import tests.test_hostile_inputs as hostile
from shards.lock import LOCK_NAME, read_holder
from tests._http_server import MediaServer
from tests.conftest import ROOT
from tests.test_hostile_inputs import assert_one_line, cli, pretrain_main, snapshot, train_args

# the finished two-step run (module scope), a copy of it per test, the demo pretrain shards
run_dir, run_copy, pretrain_dir = hostile.run_dir, hostile.run_copy, hostile.pretrain_dir


def _children() -> set[int]:
    """Live child processes of this process (from /proc)."""
    me, kids = os.getpid(), set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                stat = open(f"/proc/{name}/stat").read()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[1]) == me and fields[0] != "Z":
                kids.add(int(name))
    return kids


def _refused(capsys, argv, run, *words) -> str:
    """``argv`` aimed at finished run ``run``: exit 2, one line with ``words``, every file unchanged."""
    before = snapshot(run)
    rc, _, err = cli(pretrain_main, argv, capsys)
    assert rc == 2, err
    line = assert_one_line(err, *words)
    assert snapshot(run) == before
    return line


# ------------------------------------------------------------------------------------------ row 1

def test_row1_finished_run_is_not_overwritten(pretrain_dir, run_copy, tmp_path, capsys):
    line = _refused(capsys, train_args(pretrain_dir, run_copy, "--method", "triplet", steps=1), run_copy,
                    f"--out {run_copy}: holds a temporal_gap run at step 2", "checkpoints", "encoder.safetensors",
                    "--resume", "--overwrite")
    assert line.startswith("error: ")
    # --overwrite replaces the run's own files, and only them, never following a symlink out of --out
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("keep me\n")
    os.symlink(outside, os.path.join(run_copy, "checkpoints", "link_out"))
    os.unlink(os.path.join(run_copy, "run_summary.json"))
    os.symlink(outside / "precious", os.path.join(run_copy, "run_summary.json"))
    with open(os.path.join(run_copy, "notes.txt"), "w") as f:
        f.write("a user's own file\n")
    rc, _, err = cli(pretrain_main, train_args(pretrain_dir, run_copy, "--method", "triplet", "--overwrite", steps=1),
                     capsys)
    assert rc == 0 and "Traceback" not in err
    assert (outside / "precious").read_text() == "keep me\n" and os.listdir(outside) == ["precious"]
    assert open(os.path.join(run_copy, "notes.txt")).read() == "a user's own file\n"
    assert json.load(open(os.path.join(run_copy, "encoder.json")))["method"] == "triplet"
    assert sorted(os.listdir(os.path.join(run_copy, "checkpoints"))) == ["latest", "step_0000001"]
    assert [json.loads(r)["step"] for r in open(os.path.join(run_copy, "metrics.jsonl"))] == [1]
    assert not os.path.islink(os.path.join(run_copy, "run_summary.json"))
    assert not any(n.startswith(".melstream") for n in os.listdir(run_copy))  # no lock, no trash left
    rc, _, err = cli(pretrain_main, train_args(pretrain_dir, run_copy, "--resume", "--overwrite"), capsys)
    assert rc == 2 and assert_one_line(err, "--resume", "--overwrite")


# ------------------------------------------------------------------------------------------ row 2

def _wait_for(path: str, proc: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not os.path.exists(path):
        if proc.poll() is not None:
            raise AssertionError(f"trainer exited early ({proc.returncode}): {proc.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"no {path} after {seconds} s")
        time.sleep(0.2)


def test_row2_one_writer_per_run_directory(pretrain_dir, tmp_path, capsys, caplog):
    out = str(tmp_path / "shared_run")
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    env.pop("MELSTREAM_DEBUG", None)
    first = subprocess.Popen([sys.executable, os.path.join(ROOT, "train", "pretrain.py"),
                              *train_args(pretrain_dir, out, steps=100_000)],
                             env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(os.path.join(out, "checkpoints", "latest"), first)
        os.kill(first.pid, signal.SIGSTOP)  # holding the run directory, mid-run
        holder = read_holder(os.path.join(out, LOCK_NAME))
        assert holder["pid"] == first.pid and holder["host"] == socket.gethostname()
        before = snapshot(out)
        for extra in ([], ["--resume"], ["--overwrite"]):  # a second trainer, however it is started
            rc, _, err = cli(pretrain_main, train_args(pretrain_dir, out, *extra, steps=3), capsys)
            assert rc == 2, err
            assert_one_line(err, f"run directory {out} is in use by pid {first.pid} on host {socket.gethostname()}")
            assert snapshot(out) == before
        os.kill(first.pid, signal.SIGKILL)  # dies holding the lock: the lock file stays behind
        first.wait(60)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(60)
        first.stderr.close()
    assert read_holder(os.path.join(out, LOCK_NAME))["pid"] == first.pid
    from train.checkpoint import latest_checkpoint

    step = latest_checkpoint(out)[0]
    rc, _, err = cli(pretrain_main, train_args(pretrain_dir, out, "--resume", steps=step + 1), capsys)
    assert rc == 0 and "Traceback" not in err, err
    assert f"taking over a stale lock left by pid {first.pid}" in caplog.text
    rows = [json.loads(r)["step"] for r in open(os.path.join(out, "metrics.jsonl"))]
    assert rows == list(range(1, step + 2))  # one writer: no step twice
    assert not os.path.exists(os.path.join(out, LOCK_NAME))  # released at the end


# ------------------------------------------------------------------------------------------ row 3

SECRET = "secretpw"


def _all_text(root: str) -> str:
    out = []
    for dirpath, _, files in os.walk(root):
        for fn in files:
            out.append(open(os.path.join(dirpath, fn), "rb").read().decode("utf-8", "replace"))
    return "\n".join(out)


def test_row3_credentials_never_written_or_printed(pretrain_dir, tmp_path, capsys, caplog):
    m = json.load(open(os.path.join(pretrain_dir, "manifest.json")))
    with MediaServer() as srv:
        srv.add("/data/manifest.json", open(os.path.join(pretrain_dir, "manifest.json"), "rb").read())
        for s in m["shards"][1:]:  # the first shard is missing on the server: warnings name its URL
            srv.add(f"/data/{s['name']}", open(os.path.join(pretrain_dir, s["name"]), "rb").read())
        url = f"http://user:{SECRET}@127.0.0.1:{srv.port}/data"
        out = str(tmp_path / "run")
        rc, so, err = cli(pretrain_main, train_args(url, out, "--save-every", "2"), capsys)
        assert rc == 0, err
        assert srv.hits[f"/data/{m['shards'][1]['name']}"] > 0  # the real URL opened the shards
        assert "skipping the rest of shard http://***@127.0.0.1" in caplog.text  # the warnings were there
        cfg = open(os.path.join(out, "config.yaml")).read()
        assert f"http://***@127.0.0.1:{srv.port}/data" in cfg
        for text in (so, err, caplog.text, _all_text(out)):
            assert SECRET not in text
        # the manifest 404 (and a signed-URL token) in the one error line
        bad = f"http://user:{SECRET}@127.0.0.1:{srv.port}/nowhere?X-Amz-Signature=sig{SECRET}&sig=s{SECRET}"
        rc, so, err = cli(pretrain_main, train_args(bad, str(tmp_path / "run2")), capsys)
        assert rc == 2
        line = assert_one_line(err, "manifest.json", "404", "***@127.0.0.1")
        assert SECRET not in line + so + caplog.text
        assert not os.path.exists(tmp_path / "run2")


def test_row3_credentials_from_the_environment(monkeypatch):
    from pipeline.urls import env_credentials

    monkeypatch.setenv("MELSTREAM_HTTP_USER", "ana")
    monkeypatch.setenv("MELSTREAM_HTTP_PASSWORD", SECRET)
    assert env_credentials("https://host/data/manifest.json") == {"auth": ("ana", SECRET)}
    assert env_credentials("https://bob:pw@host/data") == {}  # the URL's own userinfo wins
    monkeypatch.delenv("MELSTREAM_HTTP_USER")
    monkeypatch.setenv("MELSTREAM_HTTP_TOKEN", "tok")
    assert env_credentials("https://host/x") == {"headers": {"Authorization": "Bearer tok"}}


# ------------------------------------------------------------------------------------------ row 4

def _bomb(levels: int = 9, width: int = 9, flow: bool = False) -> str:
    items = ", ".join(["x"] * width)
    rows = [f"&a0 [{items}]" if flow else f"a0: &a0 [{items}]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * width)
        rows.append(f"&a{i} [{refs}]" if flow else f"a{i}: &a{i} [{refs}]")
    return "[" + ", ".join(rows) + "]" if flow else "\n".join("  " + r for r in rows)


def test_row4_yaml_alias_bomb_is_refused_in_bounded_memory(pretrain_dir, run_copy, tmp_path, capsys):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("method: temporal_gap\nhparams:\n" + _bomb() + "\n")
    tracemalloc.start()
    try:
        _refused(capsys, ["--config", bomb, "--shards", pretrain_dir, "--out", run_copy], run_copy,
                 "bomb.yaml", "alias bomb")
        _refused(capsys, train_args(pretrain_dir, run_copy, "--hp", "x=" + _bomb(flow=True)), run_copy,
                 "--hp x", "alias bomb")
        _refused(capsys, ["--config", "/dev/zero", "--out", run_copy], run_copy, "/dev/zero", "larger than 1,048,576 bytes")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak  # the expanded bomb would be 9**9 nodes
    # a structure that is huge once expanded never has its full repr built for a message
    from shards.typed import ConfigError, coerce

    shared: list = ["x"] * 9
    for _ in range(8):
        shared = [shared] * 9
    with pytest.raises(ConfigError) as e:
        coerce(shared, int, "steps")
    assert len(str(e.value)) <= 300


def test_row4_bounded_readers(tmp_path):
    """``shards.bounded``: the readers every package uses for files from outside."""
    from shards.bounded import BoundError, load_json_bounded, load_yaml_bounded, parse_yaml_bounded

    assert parse_yaml_bounded("a: &x [1, 2]\nb: *x\n", "ok.yaml") == {"a": [1, 2], "b": [1, 2]}  # aliases as such are fine
    for text, words in (("a: &x [*x]\n", "cycle"), ("a: !!python/object/apply:os.system [ls]\n", "invalid YAML"),
                        ("[" * 20_000, "nested too deeply")):
        with pytest.raises(BoundError, match=words):
            parse_yaml_bounded(text, "t.yaml")
    big = tmp_path / "big.json"
    big.write_text("[" + "0," * 600_000 + "0]")
    with pytest.raises(BoundError, match="big.json: JSON file is larger than 1,048,576 bytes"):
        load_json_bounded(str(big))
    assert len(load_json_bounded(str(big), limit=2 << 20)) == 600_001
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(BoundError, match="deep.json: JSON nested too deeply"):
        load_json_bounded(str(tmp_path / "deep.json"))
    (tmp_path / "latin1.yaml").write_bytes(b"a: \xe9\n")
    with pytest.raises(BoundError, match="latin1.yaml: not UTF-8"):
        load_yaml_bounded(str(tmp_path / "latin1.yaml"))


# ------------------------------------------------------------------------------------------ row 5

@pytest.mark.parametrize("extra,words", [
    (["--num-workers", "100000"], ["--num-workers", "must be <=", "CPUs"]),
    (["--shuffle-buffer", "1000000000"], ["--shuffle-buffer", "must be <= 100000"]),
    (["--batch-size", "100000000"], ["--batch-size", "must be <= 65536"]),
    (["--grad-accum", "100000"], ["--grad-accum", "must be <= 1024"]),
    (["--keep-last", "1000000"], ["--keep-last", "must be <= 1000"]),
    (["--init-timeout-s", "100000000"], ["--init-timeout-s", "must be <= 86400"]),
    (["--seed", "-1"], ["--seed", ">= 0"]),
    (["--hp", "n_frames=100000000"], ["--hp n_frames", "must be <= 100000"]),
    (["--encoder-arg", "d=1000000000"], ["bad --encoder-arg d=1000000000", "must be <= 65536"]),
    (["--sampler-arg", "n_frames=100000000"], ["bad --sampler-arg n_frames=100000000", "must be <="]),
])
def test_row5_resource_sizes_are_bounded_before_anything_starts(pretrain_dir, run_copy, capsys, extra, words):
    kids = _children()
    _refused(capsys, train_args(pretrain_dir, run_copy, *extra), run_copy, *words)
    assert _children() <= kids  # not one worker was started


# ------------------------------------------------------------------------------------------ row 8

@pytest.fixture()
def shards_80(pretrain_dir, tmp_path):
    """The demo shards with a manifest that claims an 80-mel frontend."""
    d = tmp_path / "mel80"
    shutil.copytree(pretrain_dir, d)
    m = json.load(open(d / "manifest.json"))
    m["frontend"] = {**m["frontend"], "n_mels": 80, "name": "hares"}
    json.dump(m, open(d / "manifest.json", "w"))
    return str(d)


def test_row8_resume_must_match_method_encoder_and_frontend(pretrain_dir, run_copy, shards_80, capsys):
    _refused(capsys, train_args(pretrain_dir, run_copy, "--resume", "--method", "triplet", steps=3), run_copy,
             f"--resume {run_copy}: method differs: run has temporal_gap, asked for triplet")
    _refused(capsys, train_args(shards_80, run_copy, "--resume", steps=3), run_copy,
             "frontend differs: run has byol_a (64 mels), the shards have hares (80 mels)", "n_mels")
    _refused(capsys, train_args(pretrain_dir, run_copy, "--resume", "--encoder", "audio_ntt", steps=3), run_copy,
             "encoder differs: run has mobile, asked for audio_ntt")
    _refused(capsys, train_args(pretrain_dir, run_copy, "--resume", "--encoder-arg", "d=256", steps=3), run_copy,
             "encoder arguments differ: d='(default)' vs 256")


# ------------------------------------------------------------------------------------------ row 13

@pytest.mark.parametrize("extra,words", [
    (["--clip-grad", "nan"], ["--clip-grad", "expected a finite number"]),
    (["--hp", "lr=1e999"], ["--hp lr", "expected a finite number"]),
    (["--max-minutes", "inf"], ["--max-minutes", "expected a finite number"]),
    (["--encoder", "audio_ntt", "--encoder-arg", "dropout=nan"], ["--encoder-arg dropout", "expected a finite number"]),
])
def test_row13_non_finite_values_are_refused(pretrain_dir, run_copy, capsys, extra, words):
    _refused(capsys, train_args(pretrain_dir, run_copy, *extra), run_copy, *words)


def test_row13_divergence_names_only_a_checkpoint_that_exists(pretrain_dir, run_dir, tmp_path, capsys):
    out = str(tmp_path / "diverges")
    # SGD at lr 1e30: step 1 is finite, then the weights overflow; no checkpoint before step 1000
    rc, _, err = cli(pretrain_main, train_args(pretrain_dir, out, "--save-every", "1000", "--hp", "optimizer=sgd",
                                               "--hp", "lr=1e30", steps=8), capsys)
    assert rc == 3
    line = assert_one_line(err, "non-finite loss", "at step 2", "No checkpoint was written")
    assert "last good" not in line and "checkpoints is intact" not in line
    assert not os.path.exists(os.path.join(out, LOCK_NAME))  # the lock went with the run
    from train.loop import non_finite_message

    assert "step_0000002 (step 2), is kept" in non_finite_message(float("nan"), 3, run_dir)
