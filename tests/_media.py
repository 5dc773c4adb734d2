"""Small audio clips (FLAC / MP3 / WAV made by ffmpeg), WebDataset tars and shard readers for the wds and
parquet ingest tests."""
from __future__ import annotations

import io
import json
import os
import tarfile

import numpy as np

from ingest.decode import encode_wav, transcode
from shards.reader import decode_members, iter_tar_samples

MIDS = ["/m/09x0r", "/m/04rlf", "/m/0jbk", "/t/dd00088"]


def make_clips(folder, n: int = 4, seconds: float = 1.2, fmt=("flac", "mp3")) -> list[str]:
    """``n`` distinct noisy tones as ``clip_<i>.<fmt>`` (formats taken in turn; FLAC at 44.1 kHz stereo, so
    resampling and channel mixing are exercised); returns their paths."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    for i in range(n):
        t = np.arange(int(seconds * 16000)) / 16000
        wav = (0.3 * np.sin(2 * np.pi * (220 + 90 * i) * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
        src = os.path.join(folder, f".src_{i}.wav")
        encode_wav(src, wav)
        ext = fmt[i % len(fmt)]
        dst = os.path.join(folder, f"clip_{i}.{ext}")
        transcode(src, dst, ["-ar", "44100", "-ac", "2"] if ext == "flac" else [])
        os.unlink(src)
        paths.append(dst)
    return paths


def add_member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    tar.addfile(ti, io.BytesIO(data))


def tar_bytes(samples: list[tuple[str, dict[str, bytes]]]) -> bytes:
    """A tar of ``[(key, {ext: bytes})]`` in WebDataset layout (``key.ext`` members, in order)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            for ext, data in members.items():
                add_member(tar, f"{key}.{ext}", data)
    return buf.getvalue()


def label_json(i: int) -> bytes:
    return json.dumps({"labels": MIDS[i % len(MIDS)], "id": i}).encode()


def mels(split_dir) -> dict[str, tuple[np.ndarray, dict]]:
    """key -> (mel, meta) of every sample in a shard folder."""
    out: dict[str, tuple[np.ndarray, dict]] = {}
    for name in sorted(os.listdir(split_dir)):
        if name.endswith(".tar"):
            for key, members in iter_tar_samples(os.path.join(split_dir, name)):
                assert key not in out
                out[key] = decode_members(key, members)
    return out


def shard_hashes(split_dir) -> dict[str, str]:
    m = json.loads(open(os.path.join(split_dir, "manifest.json")).read())
    return {s["name"]: s["sha256"] for s in m["shards"]}


def failures(split_dir) -> dict[str, str]:
    """key -> reason class of ``failures.jsonl``."""
    with open(os.path.join(split_dir, "failures.jsonl")) as f:
        return {r["key"]: r["reason_class"] for r in map(json.loads, f) if r}
