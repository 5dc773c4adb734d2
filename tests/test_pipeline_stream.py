"""The streaming loader over real shard files: seeds, DDP evaluation semantics, corruption, URLs, frontends."""
from __future__ import annotations

import functools
import http.server
import importlib.util
import io
import os
import shutil
import tarfile
import threading
from collections import Counter

import numpy as np
import pytest
import torch

from pipeline import FrontendMismatch, build_loader, read_manifests
from pipeline.tario import TruncatedShard, iter_tar_stream
from shards import ShardWriter, build_manifest, iter_dir, iter_tar_samples, shard_name
from shards.frontend import get_preset

SIZES = [7, 3, 5, 1, 4]  # uneven on purpose: 20 clips in 5 shards


def indexed_clip(frames: int, clip_id: int, n_mels: int) -> np.ndarray:
    mel = np.tile(np.cos(np.arange(n_mels) / 7.0)[:, None] - 4.0, (1, frames)).astype(np.float32)
    mel[0] = clip_id
    mel[1] = np.arange(frames)
    return mel


def write_dir(root: str, split: str, sizes: list[int], first_id: int = 0, preset: str = "byol_a", frames: int = 300) -> str:
    fe = get_preset(preset)
    common = {"dataset": "synth", "split": split, "frontend": fe.to_dict(), "frontend_hash": fe.hash()}
    cid = first_id
    for si, n in enumerate(sizes):
        w = ShardWriter(root, shard_name("synth", split, si), common=common)
        for _ in range(n):
            w.add(f"c{cid:05d}", indexed_clip(frames, cid, fe.n_mels), {"labels": [f"tag{cid % 3}"], "duration": frames / 100})
            cid += 1
        w.close()
    build_manifest(root, command=["test"])
    return root


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> str:
    return write_dir(str(tmp_path_factory.mktemp("synth_a")), "a", SIZES)


@pytest.fixture(scope="session")
def synth_b(tmp_path_factory) -> str:
    return write_dir(str(tmp_path_factory.mktemp("synth_b")), "b", [6], first_id=100, frames=400)


@pytest.fixture(scope="session")
def hares(tmp_path_factory) -> str:
    return write_dir(str(tmp_path_factory.mktemp("synth_h")), "h", [3], first_id=200, preset="hares")


@pytest.fixture(scope="session")
def demo(tmp_path_factory) -> str:
    from ingest.__main__ import main

    root = tmp_path_factory.mktemp("demo")
    rc = main(["demo", "--out", str(root / "shards"), "--audio-dir", str(root / "audio"), "--seconds", "3",
               "--pretrain-clips", "8", "--train-clips", "4", "--test-clips", "4", "--no-progress"])
    assert rc == 0
    return str(root / "shards")


def last_member_middle(path: str) -> int:
    with tarfile.open(path) as t:
        last = t.getmembers()[-1]
    return last.offset_data + last.size // 2


def last_member_end(path: str) -> int:
    """Cut after the last member's padding: the end-of-archive marker is missing."""
    with tarfile.open(path) as t:
        last = t.getmembers()[-1]
    return last.offset_data + (last.size + 511) // 512 * 512


def all_keys(d: str) -> list[str]:
    return [m["key"] for _, m in iter_dir(d)]


def valid_keys(batches) -> list[str]:
    return [k for b in batches for k, v in zip(b["__key__"], b["valid"].tolist()) if v]


def take(loader, n: int) -> list[dict]:
    it = iter(loader)
    return [next(it) for _ in range(n)]


def same(b1: dict, b2: dict) -> bool:
    return b1.keys() == b2.keys() and all(torch.equal(b1[k], b2[k]) for k in b1 if k != "__key__")


# ---------------------------------------------------------------- format, manifests, frontends

def test_tar_reader_matches_shards_reader(synth, tmp_path):
    path = os.path.join(synth, shard_name("synth", "a", 0))
    with open(path, "rb") as f:
        assert list(iter_tar_stream(f)) == list(iter_tar_samples(path))
    pax = tmp_path / "pax.tar"  # a re-tarred shard with pax headers still reads
    with tarfile.open(pax, "w", format=tarfile.PAX_FORMAT) as t:
        for key, members in iter_tar_samples(path):
            for ext, data in members.items():
                ti = tarfile.TarInfo(f"{key}.{ext}")
                ti.size = len(data)
                ti.pax_headers = {"comment": "x" * 10}
                t.addfile(ti, io.BytesIO(data))
    with open(pax, "rb") as f:
        assert list(iter_tar_stream(f)) == list(iter_tar_samples(path))
    data = open(path, "rb").read()
    for cut in (len(data) // 2, last_member_middle(path), 512 * 3 + 7, last_member_end(path)):
        with pytest.raises(TruncatedShard):
            list(iter_tar_stream(io.BytesIO(data[:cut])))


def test_mapped_and_streamed_reads_agree(synth, tmp_path, monkeypatch):
    import pipeline.dataset as D
    from pipeline.tario import MemoryStream, map_file

    path = os.path.join(synth, shard_name("synth", "a", 0))
    got = [(k, {e: bytes(v) for e, v in m.items()}) for k, m in iter_tar_stream(map_file(path))]
    assert got == list(iter_tar_samples(path))
    data = open(path, "rb").read()
    for cut in (len(data) // 2, last_member_middle(path), 512 * 3 + 7):
        with pytest.raises(TruncatedShard):
            list(iter_tar_stream(MemoryStream(data[:cut])))
    empty = tmp_path / "empty.tar"
    empty.write_bytes(b"")
    assert map_file(str(empty)) is None  # cannot be mapped: read as a stream (and counted as corrupt)
    kw = dict(batch_size=8, mode="train", shuffle_buffer=16, seed=2)
    monkeypatch.setattr(D, "USE_MMAP", True)
    a = take(build_loader([synth], "views", **kw)[0], 3)
    monkeypatch.setattr(D, "USE_MMAP", False)
    b = take(build_loader([synth], "views", **kw)[0], 3)
    assert all(same(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("codec", ["f16", "f16planes", "u8"])
def test_every_codec_decodes_like_shards_reader(tmp_path, codec):
    from pipeline.tario import decode_clip
    from shards import decode_members

    w = ShardWriter(str(tmp_path), shard_name("synth", "c", 0), codec=codec)
    rng = np.random.default_rng(0)
    for i in range(3):
        w.add(f"k{i}", rng.normal(-5, 3, size=(64, 150 + i)).astype(np.float32), {"labels": []})
    w.close()
    for key, members in iter_tar_samples(os.path.join(str(tmp_path), shard_name("synth", "c", 0))):
        want, _ = decode_members(key, members)
        clip = decode_clip(key, members)
        assert clip.shape == want.shape
        np.testing.assert_array_equal(np.asarray(clip), want)
        np.testing.assert_array_equal(clip[:, 17:113], want[:, 17:113])


def test_read_manifests_merges_stats_and_vocabulary(synth, synth_b):
    facts = read_manifests([synth, synth_b])
    assert facts.num_clips == 26 and facts.num_shards == 6 and facts.n_mels == 64
    values = np.concatenate([mel.ravel() for d in (synth, synth_b) for mel, _ in iter_dir(d)]).astype(np.float64)
    assert facts.mean == pytest.approx(values.mean(), rel=1e-9)
    assert facts.std == pytest.approx(values.std(), rel=1e-9)
    assert facts.vocabulary == ["tag0", "tag1", "tag2"]


def test_frontend_checks_stop_with_a_clear_message(synth, hares):
    with pytest.raises(FrontendMismatch, match="different frontends.*n_mels: 64 vs 80"):
        read_manifests([synth, hares])
    with pytest.raises(FrontendMismatch, match="64 mel bins.*expects 80"):
        build_loader([synth], "crop", 4, expect_n_mels=80)
    with pytest.raises(FrontendMismatch, match="'byol_a' \\(64 mels\\) but 'hares' \\(80 mels\\)"):
        build_loader([synth], "crop", 4, expect_frontend=get_preset("hares"))
    loader, info = build_loader([hares], "views", 2, expect_frontend=get_preset("hares"), expect_n_mels=80, mode="eval")
    assert info.n_mels == 80 and next(iter(loader))["x1"].shape == (2, 1, 80, 96)


# ---------------------------------------------------------------- seeds

def test_same_seed_same_batches_and_resume_changes_them(synth):
    kw = dict(batch_size=8, mode="train", shuffle_buffer=16)
    a = take(build_loader([synth], "temporal_gap", seed=3, **kw)[0], 4)
    b = take(build_loader([synth], "temporal_gap", seed=3, **kw)[0], 4)
    assert all(same(x, y) for x, y in zip(a, b))
    for other in (dict(seed=4), dict(seed=3, resume_step=1000), dict(seed=3, rank=1, world_size=2)):
        c = take(build_loader([synth], "temporal_gap", **{**kw, **other})[0], 4)
        assert not all(same(x, y) for x, y in zip(a, c)), other


def test_same_seed_same_batches_with_two_workers(synth):
    kw = dict(batch_size=8, mode="train", shuffle_buffer=16, num_workers=2, seed=5)
    a = take(build_loader([synth], "views", **kw)[0], 4)
    b = take(build_loader([synth], "views", **kw)[0], 4)
    assert all(same(x, y) for x, y in zip(a, b))
    assert a[0]["x1"].shape == (8, 1, 64, 96) and a[0]["valid"].all()


# ---------------------------------------------------------------- evaluation semantics

@pytest.mark.parametrize("sampler,batch", [("crop", 4), ("triplet", 3)])
def test_eval_two_ranks_two_workers_read_each_clip_once(synth, sampler, batch):
    per_rank = []
    for rank in range(2):
        loader, info = build_loader([synth], sampler, batch, mode="eval", rank=rank, world_size=2, num_workers=2,
                                    return_keys=True)
        batches = list(loader)
        assert len(batches) == len(loader) == info.batches_per_rank
        assert all(b["valid"].shape == (batch,) for b in batches)
        per_rank.append(batches)
    assert len(per_rank[0]) == len(per_rank[1])  # DDP ranks stay in step
    keys = valid_keys(per_rank[0]) + valid_keys(per_rank[1])
    assert Counter(keys) == Counter(all_keys(synth))  # every clip exactly once
    padded = sum(int((~b["valid"]).sum()) for r in per_rank for b in r)
    assert padded == batch * len(per_rank[0]) * 2 - 20
    if batch == 4:  # shards 7+3 vs 5+4+1 over 2 workers each: 3 vs 4 batches, one rank adds a whole repeat batch
        assert sum(1 for r in per_rank for b in r if not b["valid"].any()) == 1
    if sampler == "triplet":
        for b in per_rank[0] + per_rank[1]:
            assert torch.all(b["negative"][:, 0, 0, 0] != b["anchor"][:, 0, 0, 0])


def test_eval_examples_do_not_depend_on_ranks_or_workers(synth):
    def by_key(world):
        out = {}
        for rank in range(world):
            loader, _ = build_loader([synth], "crop", 4, mode="eval", rank=rank, world_size=world, return_keys=True)
            for b in loader:
                for i, (k, v) in enumerate(zip(b["__key__"], b["valid"].tolist())):
                    if v:
                        out[k] = b["x"][i]
        return out

    one, three = by_key(1), by_key(3)
    assert one.keys() == three.keys() and all(torch.equal(one[k], three[k]) for k in one)


# ---------------------------------------------------------------- corruption

def test_truncated_shard_is_skipped_and_counted(synth, tmp_path):
    bad = str(tmp_path / "bad")
    shutil.copytree(synth, bad)
    victim = os.path.join(bad, shard_name("synth", "a", 0))  # 7 clips
    data = open(victim, "rb").read()
    with open(victim, "wb") as f:
        f.write(data[: len(data) // 2])
    batches, counted = [], 0
    for rank in range(2):
        loader, info = build_loader([bad], "crop", 4, mode="eval", rank=rank, world_size=2, num_workers=2,
                                    return_keys=True)
        got = list(loader)
        assert len(got) == info.batches_per_rank
        batches.append(got)
        counted += info.skipped.corrupt_shards
    assert counted == 1  # read by exactly one worker of one rank
    assert len(batches[0]) == len(batches[1])  # the rank that lost clips still yields its planned batches
    keys = valid_keys(batches[0]) + valid_keys(batches[1])
    intact = [k for k in all_keys(synth) if int(k[1:]) >= 7]
    assert len(keys) == len(set(keys)) and set(intact) <= set(keys) and 13 <= len(keys) < 20
    loader, info = build_loader([bad], "clip_pair", 4, mode="train", shuffle_buffer=4, num_workers=2, seed=1)
    take(loader, 12)
    assert info.skipped.corrupt_shards >= 1  # counted across worker processes, training goes on


def test_truncated_shard_counted_in_eval(synth, tmp_path):
    bad = str(tmp_path / "bad")
    shutil.copytree(synth, bad)
    victim = os.path.join(bad, shard_name("synth", "a", 2))  # 5 clips; cut inside the last one
    data, cut = open(victim, "rb").read(), last_member_middle(victim)
    open(victim, "wb").write(data[:cut])
    loader, info = build_loader([bad], "crop", 4, mode="eval", return_keys=True)
    keys = valid_keys(list(loader))
    assert info.skipped.corrupt_shards == 1 and info.skipped.corrupt_samples == 0 and info.skipped.lost_samples == 1
    assert int(info.skipped) == 1  # counted in samples: the one clip cut off
    assert len(keys) == 19 and len(set(keys)) == len(keys)


def test_corrupt_sample_is_skipped_and_counted(synth, tmp_path):
    bad = str(tmp_path / "bad")
    shutil.copytree(synth, bad)
    victim = os.path.join(bad, shard_name("synth", "a", 1))  # clips 7, 8, 9
    members = list(iter_tar_samples(victim))
    with tarfile.open(victim, "w", format=tarfile.USTAR_FORMAT) as t:
        for key, m in members:
            for ext in ("json", "mel.npy.zst"):
                data = m[ext] if not (key == "c00008" and ext == "mel.npy.zst") else b"\x28\xb5\x2f\xfd garbage" * 10
                ti = tarfile.TarInfo(f"{key}.{ext}")
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
    loader, info = build_loader([bad], "crop", 4, mode="eval", return_keys=True)
    keys = valid_keys(list(loader))
    assert info.skipped.corrupt_samples == 1 and info.skipped.corrupt_shards == 0
    assert sorted(keys) == sorted(k for k in all_keys(synth) if k != "c00008")


def test_all_shards_corrupt_raises_instead_of_hanging(synth, tmp_path):
    bad = str(tmp_path / "bad")
    shutil.copytree(synth, bad)
    for i in range(len(SIZES)):
        open(os.path.join(bad, shard_name("synth", "a", i)), "wb").close()
    loader, info = build_loader([bad], "crop", 4, mode="train")
    with pytest.raises(RuntimeError, match="no readable sample"):
        next(iter(loader))
    assert info.skipped.corrupt_shards > 20


# ---------------------------------------------------------------- URLs

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):  # keep pytest output clean
        pass


def test_http_and_fsspec_urls(synth):
    handler = functools.partial(_Quiet, directory=synth)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        loader, info = build_loader([url], "crop", 5, mode="eval", return_keys=True)
        batches = list(loader)
        assert info.num_clips == 20 and info.skipped.skipped == 0
    finally:
        server.shutdown()
        server.server_close()
    local, _ = build_loader([synth], "crop", 5, mode="eval", return_keys=True)
    assert all(same(a, b) and a["__key__"] == b["__key__"] for a, b in zip(batches, list(local)))
    import fsspec

    fs = fsspec.filesystem("memory")
    for name in os.listdir(synth):
        if os.path.isfile(os.path.join(synth, name)):
            fs.pipe(f"/melstream-test/{name}", open(os.path.join(synth, name), "rb").read())
    loader, info = build_loader(["memory://melstream-test"], "crop", 5, mode="eval", return_keys=True)
    assert Counter(valid_keys(list(loader))) == Counter(all_keys(synth))
    with pytest.raises(Exception, match="not found|no manifest|cannot read"):
        build_loader(["memory://nowhere"], "crop", 5)
    if importlib.util.find_spec("s3fs") is None:  # a missing backend says what to install
        with pytest.raises(Exception, match="s3fs"):
            build_loader(["s3://some-bucket/shards"], "crop", 5)


def test_pipe_urls_need_allow_pipe(synth):
    with pytest.raises(ValueError, match="allow_pipe"):
        build_loader([f"pipe:cat {synth}"], "crop", 4)


# ---------------------------------------------------------------- real demo shards, every sampler

CONTRACT = {
    "crop": {"x": (1, 64, 96), "labels": None},
    "temporal_gap": {"x1": (1, 64, 96), "x2": (1, 64, 96), "target": ()},
    "clip_pair": {"x1": (1, 64, 96), "x2": (1, 64, 96)},
    "triplet": {"anchor": (1, 64, 96), "positive": (1, 64, 96), "negative": (1, 64, 96)},
    "context": {"context": (4, 1, 64, 96), "center": (1, 64, 96)},
    "views": {"x1": (1, 64, 96), "x2": (1, 64, 96)},
    "pitch_shift": {"x1": (1, 64, 96), "x_pitch": (1, 64, 96), "pitch_factor": ()},
    "mix_views": {"x1": (1, 64, 300), "x2": (1, 64, 300)},
    "clip_pair+pitch_shift": {"x1": (1, 64, 96), "x2": (1, 64, 96), "x_pitch": (1, 64, 96), "pitch_factor": ()},
}


def test_every_sampler_on_demo_shards_follows_the_contract(demo):
    dirs = [os.path.join(demo, "pretrain"), os.path.join(demo, "train")]
    for name, spec in CONTRACT.items():
        loader, info = build_loader(dirs, name, 6, mode="train", expect_frontend=get_preset("byol_a"), shuffle_buffer=8, seed=0)
        b = next(iter(loader))
        assert set(b) == set(spec) | {"valid"}, name
        for k, shape in spec.items():
            want = (6, len(info.vocabulary)) if k == "labels" else (6,) + shape
            assert tuple(b[k].shape) == want and b[k].dtype == torch.float32, (name, k)
            assert torch.isfinite(b[k]).all(), (name, k)
        assert b["valid"].dtype == torch.bool and b["valid"].all()
    assert info.num_clips == 12 and len(info.vocabulary) > 4
    loader, info = build_loader(dirs, "crop", 5, mode="train", crops_per_clip=4, shuffle_buffer=4)
    assert next(iter(loader))["x"].shape == (5, 1, 64, 96)
