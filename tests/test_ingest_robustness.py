"""Foundation: bad input is skipped and recorded; SIGKILL mid-ingest then rerun; verify finds corruption."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

import shards
from ingest.decode import encode_wav
from ingest.engine import IngestConfig, run_ingest
from ingest.sources.folder import FolderSource
from shards.__main__ import main as shards_main
from tests.conftest import ROOT, tone


def test_corrupt_and_empty_inputs_are_recorded(tmp_path):
    src = tmp_path / "audio"
    src.mkdir()
    for i in range(4):
        encode_wav(str(src / f"good{i}.wav"), tone(500 + 100 * i, 1.0))
    (src / "empty.wav").write_bytes(b"")
    (src / "garbage.mp3").write_bytes(os.urandom(3000))
    encode_wav(str(src / "silent.wav"), np.zeros(16000, np.float32))
    encode_wav(str(src / "tiny.wav"), tone(500, 0.01))
    (src / "notes.txt").write_text("not audio, ignored by extension")
    out = tmp_path / "out"
    summary = run_ingest(FolderSource(str(src), dataset="bad"), IngestConfig(out=str(out), shard_size="3", progress=False))
    assert summary["ingested"] == 4 and summary["failed"] == 4
    rows = [json.loads(line) for line in open(out / "train" / "failures.jsonl")]
    reasons = {os.path.basename(r["origin"]): r["reason_class"] for r in rows}
    assert reasons == {"empty.wav": "empty", "garbage.mp3": "undecodable", "silent.wav": "silent", "tiny.wav": "too_short"}
    assert all(r["reason"] and r["permanent"] for r in rows)
    m = shards.read_manifest(str(out / "train"))
    assert m["totals"]["clips"] == 4
    assert m["failures"] == {"count": 4, "by_reason": {"empty": 1, "silent": 1, "too_short": 1, "undecodable": 1}}


_SLOW_INGEST = """
import sys, time
sys.path.insert(0, {root!r})
from ingest.engine import IngestConfig, run_ingest
from ingest.sources.folder import FolderSource
class Slow(FolderSource):
    def load(self, item, sr):
        time.sleep(0.1)  # 24 clips take >= 2.4 s: room to see two shards finish, then kill, on a busy machine
        return super().load(item, sr)
run_ingest(Slow({src!r}, dataset="kill"), IngestConfig(out={out!r}, shard_size="3", progress=False))
"""


def _keys(d):
    m = shards.read_manifest(d)
    keys = [meta["key"] for _, meta in shards.iter_dir(d)]
    return m, keys


def test_sigkill_then_rerun_resumes(tmp_path):
    src = tmp_path / "audio"
    src.mkdir()
    for i in range(24):
        encode_wav(str(src / f"c{i:02d}.wav"), tone(200 + 30 * i, 0.5))
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_INGEST.format(root=ROOT, src=str(src), out=str(out))])
    parts = out / "train" / ".parts"
    deadline = time.time() + 60
    while time.time() < deadline and not (parts.exists() and len(list(parts.glob("*.json"))) >= 2):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "train" / "manifest.json").exists(), "the run finished before it could be killed"
    finished = sorted(p.name for p in parts.glob("*.json"))
    assert 2 <= len(finished) < 8
    stamps = {p.name: p.stat().st_mtime_ns for p in parts.glob("*.json")}
    summary = run_ingest(FolderSource(str(src), dataset="kill"), IngestConfig(out=str(out), shard_size="3", progress=False))
    assert summary["skipped_finished"] == len(finished)
    for name, ns in stamps.items():  # finished shards were kept, not rewritten
        assert (parts / name).stat().st_mtime_ns == ns
    m, keys = _keys(str(out / "train"))
    assert len(keys) == len(set(keys)) == 24
    ref = tmp_path / "ref"
    run_ingest(FolderSource(str(src), dataset="kill"), IngestConfig(out=str(ref), shard_size="3", progress=False))
    m_ref, keys_ref = _keys(str(ref / "train"))
    assert sorted(keys) == sorted(keys_ref)
    assert [s["sha256"] for s in m["shards"]] == [s["sha256"] for s in m_ref["shards"]]
    assert not list((out / "train").glob("*.tmp"))  # no half shard left behind in the listing
    assert shards.verify_dir(str(out / "train")).ok


def test_verify_names_flipped_byte(demo_small, tmp_path, capsys):
    import shutil

    out, _ = demo_small
    d = tmp_path / "copy"
    shutil.copytree(os.path.join(out, "pretrain"), d)
    assert shards_main(["verify", str(d)]) == 0
    m = shards.read_manifest(str(d))
    victim = m["shards"][1]["name"]
    p = d / victim
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    capsys.readouterr()
    assert shards_main(["verify", str(d)]) == 1
    printed = capsys.readouterr().out
    assert f"CORRUPT {victim}: sha256 mismatch" in printed
    others = [s["name"] for s in m["shards"] if s["name"] != victim]
    assert not any(f"CORRUPT {o}" in printed for o in others)


def test_inspect_and_merge_cli(demo_small, capsys):
    out, _ = demo_small
    assert shards_main(["inspect", os.path.join(out, "train")]) == 0
    text = capsys.readouterr().out
    assert "clips 16" in text and "byol_a" in text and "family=speech" in text
