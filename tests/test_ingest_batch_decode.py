"""Batched decoding: one ffmpeg process per group of files, bit-identical to decoding them one by one."""
from __future__ import annotations

import glob
import hashlib
import json
import os
import subprocess

import numpy as np
import pytest

from ingest.decode import DecodeError, decode_audio, decode_many, encode_wav, transcode
from ingest.engine import IngestConfig, Item, SkipItem, _batch_loader, run_ingest
from ingest.sources.folder import FolderSource
from tests.conftest import tone


def _clip(seed: int, seconds: float = 2.0, sr: int = 16000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return tone(300 + 70 * seed, seconds, sr) + (0.02 * rng.standard_normal(int(seconds * sr))).astype(np.float32)


def _encoded(d, name: str, seed: int, sr: int = 16000, extra: list[str] | None = None) -> str:
    """A clip written as WAV at ``sr``, then transcoded to ``name`` (format from its extension)."""
    wav = str(d / f"{name}.src.wav")
    encode_wav(wav, _clip(seed, sr=sr), sr)
    dst = str(d / name)
    transcode(wav, dst, extra)
    os.remove(wav)
    return dst


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype == np.float32 and a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.fixture(scope="module")
def coded(tmp_path_factory):
    """FLAC (16 kHz mono and 44.1 kHz stereo), Ogg Vorbis, MP3, and a WAV for the direct read."""
    d = tmp_path_factory.mktemp("coded")
    paths = [_encoded(d, "a.flac", 0), _encoded(d, "b.flac", 1, sr=44100, extra=["-ac", "2"]),
             _encoded(d, "c.ogg", 2, sr=22050), _encoded(d, "d.mp3", 3)]
    encode_wav(str(d / "e.wav"), _clip(4))
    return paths + [str(d / "e.wav")]


def test_decode_many_matches_decode_audio_in_one_process(coded, monkeypatch):
    calls = []
    real_run = subprocess.run

    def counting_run(args, *a, **kw):
        calls.append(args)
        return real_run(args, *a, **kw)

    monkeypatch.setattr(subprocess, "run", counting_run)
    got = decode_many(coded)
    assert len(calls) == 1  # the four coded files share one ffmpeg; the WAV is read directly
    assert sum(a == "-i" for a in calls[0]) == 4
    monkeypatch.setattr(subprocess, "run", real_run)
    for p, wav in zip(coded, got):
        assert isinstance(wav, np.ndarray), (p, wav)
        assert _same_bits(wav, decode_audio(p)), p


def test_decode_many_keeps_good_files_of_a_failing_group(coded, tmp_path):
    bad = tmp_path / "corrupt.flac"
    bad.write_bytes(b"fLaC" + os.urandom(3000))
    empty = tmp_path / "empty.flac"
    empty.write_bytes(b"")
    paths = [coded[0], str(bad), coded[2], str(empty), coded[3], str(tmp_path / "missing.ogg")]
    got = decode_many(paths)
    for i in (0, 2, 4):
        assert _same_bits(got[i], decode_audio(paths[i]))
    for i in (1, 3, 5):
        assert isinstance(got[i], DecodeError)
        reason = str(got[i])
        assert reason and "\n" not in reason
        with pytest.raises(DecodeError) as e:
            decode_audio(paths[i])
        assert reason.split("@")[0] == str(e.value).split("@")[0]  # same reason (ffmpeg logs an address)


def test_subclass_overriding_load_is_not_bypassed():
    class Wrapped(FolderSource):
        def load(self, item, sample_rate):
            return super().load(item, sample_rate)

    assert _batch_loader(FolderSource(".")) is not None
    assert _batch_loader(Wrapped(".")) is None


def _tar_hashes(out) -> dict[str, str]:
    return {os.path.basename(p): hashlib.sha256(open(p, "rb").read()).hexdigest()
            for p in sorted(glob.glob(os.path.join(out, "train", "*.tar")))}


def test_folder_ingest_batched_equals_one_by_one(tmp_path, monkeypatch):
    src = tmp_path / "audio"
    (src / "sub").mkdir(parents=True)
    for i in range(7):
        _encoded(src if i % 2 else src / "sub", f"g{i}.flac", i, sr=(16000, 44100)[i % 2])
    _encoded(src, "h.ogg", 9)
    encode_wav(str(src / "w.wav"), _clip(8))
    (src / "corrupt.flac").write_bytes(b"fLaC" + os.urandom(2000))
    (src / "empty.flac").write_bytes(b"")
    encode_wav(str(tmp_path / "silent.wav"), np.zeros(16000, np.float32))
    transcode(str(tmp_path / "silent.wav"), str(src / "sub" / "silent.flac"))
    calls: list[list[str]] = []
    real_run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda args, *a, **kw: calls.append(args) or real_run(args, *a, **kw))
    runs, spawned = {}, {}
    for batch in (16, 1):
        out = tmp_path / f"out{batch}"
        calls.clear()
        s = run_ingest(FolderSource(str(src), dataset="mix"),
                       IngestConfig(out=str(out), shard_size="5", progress=False, decode_batch=batch))
        fails = sorted((os.path.basename(r["origin"]), r["reason_class"], r["reason"])
                       for r in map(json.loads, open(out / "train" / "failures.jsonl")))
        runs[batch] = (s["ingested"], s["failed"], _tar_hashes(out), fails)
        spawned[batch] = len(calls)
    assert spawned[1] == 10 and spawned[16] < spawned[1]  # the WAV is read directly, the empty file never decoded
    assert runs[16][:2] == (9, 3)
    assert len(runs[16][2]) == 3 and runs[16][2] == runs[1][2]  # same shards, byte for byte
    assert [f[:2] for f in runs[16][3]] == [("corrupt.flac", "undecodable"), ("empty.flac", "empty"),
                                            ("silent.flac", "silent")]
    assert [f[2].split("@")[0] for f in runs[16][3]] == [f[2].split("@")[0] for f in runs[1][3]]


class _Synthetic:
    """A network-like source: reuses the clips of a redone shard; item ``k2`` fails transiently once."""

    dataset = "syn"
    reuse_samples = True

    def __init__(self):
        self.loaded: list[list[str]] = []
        self.flaky = True

    def items(self) -> list[Item]:
        return [Item(key=f"k{i}", source_id=f"s{i}", origin=f"mem:{i}") for i in range(6)]

    def load(self, item: Item, sample_rate: int) -> np.ndarray:
        raise AssertionError("load_many is used")

    def load_many(self, items: list[Item], sample_rate: int) -> list:
        self.loaded.append([it.key for it in items])
        return [SkipItem("unavailable", "try later", permanent=False) if it.key == "k2" and self.flaky
                else _clip(int(it.key[1:]), 1.0) for it in items]


def test_reused_items_are_not_decoded_again(tmp_path):
    src = _Synthetic()
    cfg = IngestConfig(out=str(tmp_path / "out"), shard_size="6", progress=False, decode_batch=4)
    assert run_ingest(src, cfg)["failed"] == 1
    assert src.loaded == [["k0", "k1", "k2", "k3"], ["k4", "k5"]]
    src.loaded, src.flaky = [], False
    s = run_ingest(src, cfg)
    assert (s["ingested"], s["failed"]) == (6, 0)
    assert src.loaded == [["k2"]]  # the shard was redone; only its failed item was decoded
    import shards

    assert [meta["key"] for _, meta in shards.iter_dir(str(tmp_path / "out" / "train"))] == [f"k{i}" for i in range(6)]
