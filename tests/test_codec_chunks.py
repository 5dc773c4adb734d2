"""The time-chunked codec ``f16chunks``: layout, partial decoding, hostile indexes, pipeline equivalence."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch
import zstandard

import shards
from shards.codec import CHUNK_FRAMES, ChunkIndex

C = CHUNK_FRAMES
LENGTHS = [1, 37, C - 1, C, C + 1, 2 * C, 3 * C, 3 * C + 1, 1001]


def mel_of(frames: int, n_mels: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(-5, 3, size=(n_mels, frames)).astype(np.float32)


def encoded(frames: int, n_mels: int = 64, seed: int = 0) -> tuple[np.ndarray, bytes, dict]:
    """``(mel, member bytes, sample JSON)`` as ``ShardWriter`` would store them."""
    mel = mel_of(frames, n_mels, seed)
    data, extra, _ = shards.encode_mel(mel, "f16chunks")
    return mel, data, {"n_mels": n_mels, "frames": frames, "codec": "f16chunks", **extra}


def read_across_frames(data: bytes) -> bytes:
    """What ``zstd -d`` writes: every frame decompressed, concatenated."""
    with zstandard.ZstdDecompressor().stream_reader(data, read_across_frames=True) as r:
        return r.read()


@pytest.mark.parametrize("frames", LENGTHS)
def test_roundtrip_equals_f16(frames):
    mel, data, meta = encoded(frames)
    f16 = mel.astype(np.float16).astype(np.float32)
    _, extra, decoded = shards.encode_mel(mel, "f16chunks")
    k = -(-frames // C)
    assert extra["mel_chunks"]["frames_per_chunk"] == C and len(extra["mel_chunks"]["offsets"]) == k
    np.testing.assert_array_equal(decoded, f16)
    np.testing.assert_array_equal(shards.decode_mel(data, meta), f16)
    np.testing.assert_array_equal(shards.decode_mel_frames(data, meta, 0, frames), f16)
    # the index-free paths (WebDataset decoder, a JSON without mel_chunks) decode everything
    no_index = {k: v for k, v in meta.items() if k != "mel_chunks"}
    np.testing.assert_array_equal(shards.decode_mel(data, no_index), f16)
    np.testing.assert_array_equal(shards.payload_to_mel(shards.load_payload(data), meta), f16)
    sample = {"json": meta, "mel.npy.zst": shards.wds_decoder("x.mel.npy.zst", data)}
    np.testing.assert_array_equal(shards.to_example(sample)[0], f16)


@pytest.mark.parametrize("frames", LENGTHS)
def test_member_is_the_documented_npy(frames):
    mel, data, meta = encoded(frames, n_mels=16)
    k = -(-frames // C)
    arr = np.load(io.BytesIO(read_across_frames(data)), allow_pickle=False)
    assert arr.dtype == np.uint8 and arr.shape == (k, 2, 16, C)
    planes = arr.transpose(1, 2, 0, 3).reshape(2, 16, k * C)
    assert not planes[:, :, frames:].any()  # the last chunk is zero-padded
    h = (planes[0, :, :frames].astype(np.uint16) | (planes[1, :, :frames].astype(np.uint16) << 8)).view(np.float16)
    np.testing.assert_array_equal(h, mel.astype(np.float16))
    # frame 0 is the bare .npy header; chunk k is the zstd frame at offsets[k]
    offs = meta["mel_chunks"]["offsets"] + [len(data)]
    head = zstandard.ZstdDecompressor().decompress(data[:offs[0]])
    assert head.startswith(b"\x93NUMPY") and len(head) % 64 == 0
    for i in range(k):
        chunk = zstandard.ZstdDecompressor().decompress(data[offs[i]:offs[i + 1]])
        np.testing.assert_array_equal(np.frombuffer(chunk, np.uint8).reshape(2, 16, C), arr[i])


@pytest.mark.skipif(shutil.which("zstd") is None, reason="no zstd command")
def test_zstd_command_line_reads_the_member(tmp_path):
    _, data, _ = encoded(250)
    p = tmp_path / "m.mel.npy.zst"
    p.write_bytes(data)
    out = subprocess.run(["zstd", "-d", "-c", str(p)], capture_output=True, check=True).stdout
    assert out == read_across_frames(data)
    assert np.load(io.BytesIO(out)).shape == (3, 2, 64, C)


@pytest.mark.parametrize("codec", ["f16chunks", "f16planes", "f16", "u8"])
def test_decode_frames_equals_slice_of_full_decode(codec):
    rng = np.random.default_rng(1)
    for frames in (1, 99, 100, 101, 1001):
        mel = mel_of(frames, seed=frames)
        data, extra, _ = shards.encode_mel(mel, codec)
        meta = {"n_mels": 64, "frames": frames, **extra}
        full = shards.decode_mel(data, meta)
        spans = [(0, frames), (0, 0), (frames, frames), (frames - 1, frames)]
        spans += [tuple(sorted(rng.integers(0, frames + 1, size=2))) for _ in range(20)]
        for a, b in spans:
            got = shards.decode_mel_frames(data, meta, int(a), int(b))
            assert got.dtype == np.float32 and got.shape == (64, b - a)
            np.testing.assert_array_equal(got, full[:, a:b])
        with pytest.raises(ValueError):
            shards.decode_mel_frames(data, meta, 0, frames + 1)


def test_partial_decode_reads_only_the_needed_chunks():
    _, data, meta = encoded(1001)
    offs = meta["mel_chunks"]["offsets"]
    bad = bytearray(data)
    bad[offs[7]:offs[8]] = bytes(offs[8] - offs[7])  # wipe chunk 7 (frames 700-799)
    bad = bytes(bad)
    ref = shards.decode_mel(data, meta)
    np.testing.assert_array_equal(shards.decode_mel_frames(bad, meta, 150, 246), ref[:, 150:246])
    np.testing.assert_array_equal(shards.decode_mel_frames(bad, meta, 800, 1001), ref[:, 800:])
    with pytest.raises(shards.CodecError, match="chunk 7"):
        shards.decode_mel_frames(bad, meta, 650, 746)
    with pytest.raises(shards.CodecError):
        shards.decode_mel(bad, meta)  # a full decode (shards verify) checks every chunk


def _with(meta: dict, **mc) -> dict:
    return {**meta, "mel_chunks": {**meta["mel_chunks"], **mc}}


def test_hostile_chunk_index_is_rejected():
    _, data, meta = encoded(350)
    offs = meta["mel_chunks"]["offsets"]
    assert len(offs) == 4
    bad_metas = [
        _with(meta, offsets=offs[::-1]),                       # not monotonic
        _with(meta, offsets=[offs[0], offs[2], offs[1], offs[3]]),
        _with(meta, offsets=[offs[0], offs[0], offs[2], offs[3]]),  # repeated
        _with(meta, offsets=offs[:3] + [len(data)]),           # past the member
        _with(meta, offsets=offs[:3] + [len(data) + 1000]),
        _with(meta, offsets=[0] + offs[1:]),                   # no header frame
        _with(meta, offsets=[-5] + offs[1:]),
        _with(meta, offsets=offs[:3]),                         # too few for 350 frames
        _with(meta, offsets=offs + [len(data) - 1]),           # too many
        _with(meta, offsets=[float(o) for o in offs]),
        _with(meta, offsets=[True] + offs[1:]),
        _with(meta, offsets=",".join(map(str, offs))),
        _with(meta, frames_per_chunk=0),
        _with(meta, frames_per_chunk=-100),
        _with(meta, frames_per_chunk=50),                      # count no longer matches
        _with(meta, frames_per_chunk="100"),
        _with(meta, frames_per_chunk=10 ** 9),
        {**meta, "mel_chunks": [1, 2]},
        {**meta, "frames": 401},                               # 4 chunks cannot hold 401 frames
        {**meta, "frames": "350"},
        {**meta, "n_mels": 0},
        {k: v for k, v in meta.items() if k != "frames"},
    ]
    for bad in bad_metas:
        with pytest.raises(shards.CodecError):
            ChunkIndex.from_meta(bad, len(data))
        with pytest.raises(shards.CodecError):
            shards.decode_mel(data, bad)
        with pytest.raises(shards.CodecError):
            shards.decode_mel_frames(data, bad, 0, 10)
    # offsets that pass the index checks but do not fall on frame boundaries fail at decode time
    wrongs = ([offs[0], offs[1] + 3, offs[2], offs[3]], [offs[0] - 1] + offs[1:], [offs[0]] + [o + 1 for o in offs[1:]])
    for wrong in wrongs:
        m = _with(meta, offsets=wrong)
        with pytest.raises(shards.CodecError):
            shards.decode_mel(data, m)
        with pytest.raises(shards.CodecError):
            shards.decode_mel_frames(data, m, 0, 350)
    with pytest.raises(shards.CodecError):  # a wrong n_mels makes every chunk the wrong size
        shards.decode_mel_frames(data, {**meta, "n_mels": 32}, 0, 10)
    with pytest.raises(shards.CodecError):
        shards.decode_mel(data[:-10], meta)  # truncated member
    with pytest.raises(shards.CodecError):
        shards.payload_to_mel(shards.load_payload(data), {})  # the full stored array needs `frames`


def test_header_and_padding_are_checked_by_full_decode():
    _, data, meta = encoded(150)
    offs = meta["mel_chunks"]["offsets"]
    cctx = zstandard.ZstdCompressor(write_checksum=True)  # format version 2 frames carry checksums
    from shards.codec import _npy_header

    other = cctx.compress(_npy_header((2, 2, 32, C), np.uint8))  # header of another shape
    shift = len(other) - offs[0]
    m = _with(meta, offsets=[o + shift for o in offs])
    with pytest.raises(shards.CodecError, match="header"):
        shards.decode_mel(other + data[offs[0]:], m)
    last = np.ones((2, 64, C), np.uint8)  # non-zero padding in the last chunk
    tampered = data[:offs[1]] + cctx.compress(last.tobytes())
    with pytest.raises(shards.CodecError, match="padding"):
        shards.decode_mel(tampered, meta)


def test_writer_verify_and_stale_codec_fields(tmp_path):
    from shards.frontend import get_preset

    fe = get_preset("byol_a")
    d = str(tmp_path / "d")
    common = {"dataset": "t", "split": "x", "frontend": fe.to_dict(), "frontend_hash": fe.hash()}
    w = shards.ShardWriter(d, shards.shard_name("t", "x", 0), common=common)
    assert w.codec == shards.DEFAULT_CODEC == "f16chunks"
    for i, frames in enumerate((50, 100, 257)):
        w.add(f"k{i}", mel_of(frames, seed=i), {"labels": [], "mel_chunks": {"frames_per_chunk": 7, "offsets": [1]}})
    w.close()
    shards.build_manifest(d, command=["test"])
    rep = shards.verify_dir(d)
    assert rep.ok and rep.samples == 3, rep.problems
    got = list(shards.iter_dir(d))
    for i, (mel, meta) in enumerate(got):
        assert meta["mel_chunks"]["frames_per_chunk"] == C  # the writer's own index, not the stale one
        np.testing.assert_array_equal(mel, mel_of(meta["frames"], seed=i).astype(np.float16).astype(np.float32))
    key, members = next(shards.iter_tar_samples(shards.shard_paths(d)[0]))
    meta = json.loads(members["json"])
    meta["mel_chunks"]["offsets"][0] += 1
    with pytest.raises(ValueError):
        shards.decode_members(key, {**members, "json": json.dumps(meta).encode()})
    w = shards.ShardWriter(str(tmp_path / "p"), shards.shard_name("t", "x", 0), codec="f16planes")
    w.add("k0", mel_of(20), {"mel_chunks": got[0][1]["mel_chunks"]})
    w.close()
    (_, meta), = list(_iter_one(str(tmp_path / "p")))
    assert "mel_chunks" not in meta


def _iter_one(d: str):
    for p in sorted(os.listdir(d)):
        if p.endswith(".tar"):
            for key, members in shards.iter_tar_samples(os.path.join(d, p)):
                yield shards.decode_members(key, members)


# ---------------------------------------------------------------- the pipeline

def test_clip_decodes_chunks_lazily():
    from pipeline.tario import Clip, CorruptSample, decode_clip

    mel, data, meta = encoded(1001)
    clip = decode_clip("k", {"json": json.dumps(meta).encode(), "mel.npy.zst": data})
    assert isinstance(clip, Clip) and clip.shape == (64, 1001) and "chunks" in repr(clip)
    ref = mel.astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(clip[:, 150:246], ref[:, 150:246])
    assert sorted(clip._arr._chunks) == [1, 2]  # only the chunks of frames 150-245 were decompressed
    np.testing.assert_array_equal(np.asarray(clip), ref)
    offs = meta["mel_chunks"]["offsets"]
    with pytest.raises(CorruptSample, match="offsets"):
        decode_clip("k", {"json": json.dumps(_with(meta, offsets=offs[::-1])).encode(), "mel.npy.zst": data})
    bad = data[:offs[3]] + bytes(offs[4] - offs[3]) + data[offs[4]:]
    clip = decode_clip("k", {"json": json.dumps(meta).encode(), "mel.npy.zst": bad})
    np.testing.assert_array_equal(clip[:, 0:96], ref[:, 0:96])
    with pytest.raises(CorruptSample, match="chunk 3"):
        clip[:, 290:386]
    no_index = {k: v for k, v in meta.items() if k != "mel_chunks"}  # falls back to a full decode
    clip = decode_clip("k", {"json": json.dumps(no_index).encode(), "mel.npy.zst": data})
    np.testing.assert_array_equal(np.asarray(clip), ref)


@pytest.fixture(scope="module")
def same_audio(tmp_path_factory):
    """The same WAVs ingested with f16planes and with f16chunks: ``{codec: shard dir}``."""
    from ingest.decode import encode_wav
    from ingest.engine import IngestConfig, run_ingest
    from ingest.sources.folder import FolderSource
    from tests.conftest import tone

    base = tmp_path_factory.mktemp("same_audio")
    src = base / "audio"
    os.makedirs(src / "a")
    for i, seconds in enumerate((0.5, 0.99, 1.0, 2.0, 2.6, 10.0, 4.3)):
        encode_wav(str(src / "a" / f"c{i}.wav"), tone(200 + 150 * i, seconds) + 0.01 * np.random.default_rng(i).normal(
            size=int(seconds * 16000)).astype(np.float32))
    out = {}
    for codec in ("f16planes", "f16chunks"):
        cfg = IngestConfig(out=str(base / codec), codec=codec, shard_size="3", progress=False)
        run_ingest(FolderSource(str(src), dataset="same"), cfg)
        out[codec] = str(base / codec / "train")
    return out


@pytest.mark.parametrize("sampler", ["crop", "temporal_gap", "context", "clip_pair"])
def test_pipeline_same_examples_from_chunks_and_planes(same_audio, sampler):
    from pipeline import build_loader

    assert shards.read_manifest(same_audio["f16chunks"])["codec"]["name"] == "f16chunks"
    for mode, kw in (("eval", {}), ("train", {"shuffle_buffer": 4})):
        got = {}
        for codec, d in same_audio.items():
            loader, _ = build_loader([d], sampler, 3, mode=mode, seed=7, return_keys=True, **kw)
            it = iter(loader)
            got[codec] = [next(it) for _ in range(3)]
        for a, b in zip(got["f16planes"], got["f16chunks"]):
            assert a["__key__"] == b["__key__"] and a.keys() == b.keys()
            for k in a:
                if k != "__key__":
                    assert torch.equal(a[k], b[k]), (mode, k)
