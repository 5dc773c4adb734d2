"""Foundation: audio -> shard -> decoded array, manifest totals, codecs, plain tar/WebDataset access."""
from __future__ import annotations

import json
import os
import subprocess
import tarfile

import numpy as np
import pytest
import webdataset as wds

import shards
from ingest.decode import decode_audio, encode_wav, transcode
from ingest.engine import IngestConfig, run_ingest, samples_per_shard
from ingest.sources.folder import FolderSource, path_key
from shards.frontend import PRESETS, get_preset, logmel
from tests.conftest import tone


def _corpus(root, n=5, seconds=2.0):
    os.makedirs(root, exist_ok=True)
    paths = []
    for i in range(n):
        lab = "low" if i % 2 else "high"
        os.makedirs(os.path.join(root, lab), exist_ok=True)
        p = os.path.join(root, lab, f"clip{i}.wav")
        encode_wav(p, tone(300 + 200 * i, seconds + 0.5 * i))
        paths.append(p)
    return paths


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_audio_to_shard_matches_frontend(tmp_path, preset):
    src = tmp_path / "audio"
    paths = _corpus(str(src), n=3)
    out = tmp_path / "shards"
    summary = run_ingest(FolderSource(str(src), dataset="toy", labels="dirname"),
                         IngestConfig(out=str(out), preset=preset, shard_size="2", progress=False))
    assert summary["ingested"] == 3 and summary["failed"] == 0
    fe = get_preset(preset)
    got = {meta["source_id"]: (mel, meta) for mel, meta in shards.iter_dir(str(out / "train"))}
    assert len(got) == 3
    for p in paths:
        rel = os.path.relpath(p, src)
        mel, meta = got[rel]
        ref = logmel(decode_audio(p, 16000), fe)
        assert mel.shape == ref.shape == (fe.n_mels, fe.frames_for(len(decode_audio(p, 16000))))
        # float16 keeps 11 significant bits: relative error <= 2^-11
        np.testing.assert_allclose(mel, ref, rtol=2 ** -10, atol=1e-3)
        assert meta["key"] == path_key(rel)
        assert meta["labels"] == [os.path.basename(os.path.dirname(p))]
        assert meta["frames"] == mel.shape[1] and meta["n_mels"] == fe.n_mels
        assert abs(meta["duration"] - len(decode_audio(p, 16000)) / 16000) < 1e-6
        assert meta["end"] - meta["start"] == pytest.approx(meta["duration"])
    m = shards.read_manifest(str(out / "train"))
    assert m["frontend"] == fe.to_dict() and m["frontend_hash"] == fe.hash()
    assert m["totals"]["clips"] == 3 and len(m["shards"]) == 2
    assert m["totals"]["hours"] == pytest.approx(sum(v[1]["duration"] for v in got.values()) / 3600)
    assert m["totals"]["bytes"] == sum(os.path.getsize(out / "train" / s["name"]) for s in m["shards"])
    allv = np.concatenate([v[0].ravel() for v in got.values()]).astype(np.float64)
    assert m["stats"]["mean"] == pytest.approx(allv.mean(), rel=1e-9)
    assert m["stats"]["std"] == pytest.approx(allv.std(), rel=1e-6)
    assert m["labels"]["vocabulary"] == ["high", "low"]
    assert [s["name"] for s in m["shards"]] == ["toy-train-000000.tar", "toy-train-000001.tar"]


def test_codecs_roundtrip_and_bounds():
    rng = np.random.default_rng(0)
    mel = rng.normal(-5, 3, size=(64, 301)).astype(np.float32)
    f16 = mel.astype(np.float16).astype(np.float32)
    for codec in ("f16", "f16planes"):
        data, extra, decoded = shards.encode_mel(mel, codec)
        assert extra == {"mel_checksum": "zstd-xxh64"}
        np.testing.assert_array_equal(shards.decode_mel(data), f16)
        np.testing.assert_array_equal(decoded, f16)
    data, extra, decoded = shards.encode_mel(mel, "u8")
    out = shards.decode_mel(data, extra)
    np.testing.assert_array_equal(out, decoded)
    bound = extra["mel_q"]["max_abs_error"]
    assert np.abs(out - mel).max() <= bound * (1 + 1e-5)
    assert bound == pytest.approx((mel.max() - mel.min()) / 255 / 2)
    with pytest.raises(shards.CodecError):
        shards.decode_mel(data)  # u8 needs its JSON parameters
    with pytest.raises(shards.CodecError):
        shards.decode_mel(b"not zstd at all")


def test_plain_tar_and_webdataset_access(demo_small):
    out, _ = demo_small
    d = os.path.join(out, "train")
    m = shards.read_manifest(d)
    first = os.path.join(d, m["shards"][0]["name"])
    listing = subprocess.run(["tar", "-tf", first], capture_output=True, text=True, check=True).stdout.split()
    assert listing and all(n.endswith((".json", ".mel.npy.zst")) for n in listing)
    assert len(listing) == 2 * m["shards"][0]["samples"]
    ds = wds.WebDataset([os.path.join(d, s["name"]) for s in m["shards"]], shardshuffle=False, empty_check=False)
    ds = ds.decode(shards.wds_decoder).map(shards.to_example)
    mels = list(ds)
    assert len(mels) == m["totals"]["clips"] == 16
    mel, meta = mels[0]
    assert mel.dtype == np.float32 and mel.shape == (64, meta["frames"]) == (64, 601)
    with tarfile.open(first) as tf:
        assert all(ti.mtime == 0 and ti.uid == 0 for ti in tf)


def test_shard_size_parsing():
    assert samples_per_shard("1000") == 1000
    assert samples_per_shard("200MB") == 2000
    assert samples_per_shard("1k") == 1  # 1 kB is below one clip: at least one sample per shard
    for bad in ("0", "-3", "abc", "1.5"):
        with pytest.raises(ValueError):
            samples_per_shard(bad)


def test_hostile_manifest_and_members(tmp_path):
    with pytest.raises(shards.ManifestError, match="no manifest.json"):
        shards.read_manifest(str(tmp_path))
    bad = {"format": "melstream-shards", "format_version": 1, "frontend": {"n_mels": 64},
           "shards": [{"name": "../../etc/passwd", "samples": 1, "sha256": "0" * 64}], "stats": {"mean": 0, "std": 1}}
    (tmp_path / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(shards.ManifestError, match="invalid shard file name"):
        shards.read_manifest(str(tmp_path))
    bad["format_version"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(bad))
    with pytest.raises(shards.ManifestError, match="format_version"):
        shards.read_manifest(str(tmp_path))
    from shards.reader import split_member
    for name in ("../x.json", "/abs.json", "a/b.json", "k.exe", ".hidden.json"):
        with pytest.raises(ValueError):
            split_member(name)
    assert split_member("ab-C_9.mel.npy.zst") == ("ab-C_9", "mel.npy.zst")


def test_decodes_compressed_formats(tmp_path):
    wav = tmp_path / "a.wav"
    encode_wav(str(wav), tone(440, 1.0))
    ref = decode_audio(str(wav))
    for ext in (".flac", ".mp3", ".ogg"):
        dst = str(tmp_path / ("a" + ext))
        transcode(str(wav), dst)
        got = decode_audio(dst)
        assert abs(len(got) - len(ref)) < 0.1 * 16000  # codec padding differs
        assert np.corrcoef(got[4000:12000], ref[4000:12000])[0, 1] > 0.9 if ext == ".flac" else got.size > 0


def test_wav_fast_path_is_bit_identical_to_ffmpeg(tmp_path):
    from ingest.decode import _read_wav_direct

    p = str(tmp_path / "x.wav")
    rng = np.random.default_rng(3)
    encode_wav(p, (0.5 * rng.standard_normal(20000)).astype(np.float32))
    fast = _read_wav_direct(p, 16000)
    via_ffmpeg = decode_audio(p, input_options={"threads": "1"})  # input options force the ffmpeg path
    assert fast is not None and np.array_equal(fast, via_ffmpeg)
    assert _read_wav_direct(p, 22050) is None  # other rates go through ffmpeg's resampler
