"""ClipWindows: fine-tuning windows cut on demand from the shards equal make_windows bit for bit."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import shards
from eval import windows as W
from eval.embed import make_windows
from eval.tasks import Window
from shards.frontend import get_preset

FRAMES = (40, 96, 130, 250, 1000, 3000)  # shorter than a window, exactly one, ragged, a long capped one


def _mel(frames: int, seed: int, n_mels: int = 64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n_mels, frames)) * 2 - 5).astype(np.float32)


def _write(root: str, codec: str, per_shard: int = 2) -> tuple[str, dict[str, np.ndarray]]:
    fe = get_preset("byol_a")
    common = {"dataset": "t", "split": "all", "frontend": fe.to_dict(), "frontend_hash": fe.hash()}
    mels = {}
    for si in range(-(-len(FRAMES) // per_shard)):
        w = shards.ShardWriter(root, shards.shard_name("t", "all", si), codec=codec, common=common)
        for i, frames in enumerate(FRAMES[si * per_shard:(si + 1) * per_shard]):
            key = f"k{si}_{i}"
            w.add(key, _mel(frames, seed=frames), {"labels": []})
            mels[key] = _mel(frames, seed=frames)
        w.close()
    shards.build_manifest(root, command=["test"])
    decoded = {meta["key"]: mel for mel, meta in shards.iter_dir(root)}  # what the codec stores
    assert decoded.keys() == mels.keys()
    return root, decoded


@pytest.mark.parametrize("codec", shards.CODECS)
@pytest.mark.parametrize("window", [Window("sliding", 96, max_windows=7), Window("crop", 100)])
def test_windows_equal_make_windows(tmp_path, codec, window, monkeypatch):
    monkeypatch.setattr(W, "MAX_OPEN", 2)  # three shards through two descriptors: the LRU closes and reopens
    d, decoded = _write(str(tmp_path / codec), codec)
    keys = sorted(decoded)[::-1] + ["not_there"]
    cw = W.ClipWindows([d], keys, window, pad=-9.0)
    assert cw.keys == sorted(decoded)[::-1] and len(cw) == len(FRAMES)
    for i, key in enumerate(cw.keys):
        want = make_windows(decoded[key], window, -9.0)
        assert cw.n_windows[i] == want.shape[0]
        got = cw.clip(i)
        assert got.dtype == np.float32 and np.array_equal(got, want), (codec, key)
        for k in range(want.shape[0]):  # one window on its own (what a training step draws)
            one = cw.window(i, k)
            assert one.dtype == np.float32 and np.array_equal(one, want[k]), (codec, key, k)
    assert len(cw._fds) <= 2
    # batched over clips: every window once, owners in order, and batches never exceed the size
    idx = [3, 0, 5]
    parts = list(cw.batches(idx, 5))
    assert all(len(x) <= 5 for x, _ in parts)
    x = np.concatenate([p[0] for p in parts])
    owner = np.concatenate([p[1] for p in parts])
    assert np.array_equal(owner, np.repeat(np.arange(3), cw.n_windows[idx]))
    assert np.array_equal(x, np.concatenate([cw.clip(i) for i in idx]))
    cw.close()
    assert not cw._fds


def test_sliding_windows_counted_and_capped(tmp_path):
    d, decoded = _write(str(tmp_path / "d"), "f16chunks")
    cw = W.ClipWindows([d], sorted(decoded), Window("sliding", 96, max_windows=7), pad=0.0)
    by_frames = dict(zip((decoded[k].shape[1] for k in cw.keys), cw.n_windows.tolist()))
    # 40 -> padded, 96 -> 1, 130 -> starts 0 and 34, 250 -> 0 48 96 144 154, longer ones capped at 7
    assert by_frames == {40: 1, 96: 1, 130: 2, 250: 5, 1000: 7, 3000: 7}


def test_corrupt_sample_fails_when_built(tmp_path):
    d, decoded = _write(str(tmp_path / "d"), "f16chunks", per_shard=len(FRAMES))
    path = shards.shard_paths(d)[0]
    key, where = next(shards.iter_tar_index(path))
    off, size = where["mel.npy.zst"]
    with open(path, "r+b") as f:  # wreck a chunk of the first sample's log-mel
        f.seek(off + size - 8)
        f.write(b"\xff" * 8)
    with pytest.raises(ValueError, match=key):
        W.ClipWindows([d], sorted(decoded), Window("sliding", 96), pad=0.0)


def test_tar_index_points_at_the_members(tmp_path):
    d, _ = _write(str(tmp_path / "d"), "f16")
    path = shards.shard_paths(d)[0]
    raw = open(path, "rb").read()
    for (key, where), (key2, members) in zip(shards.iter_tar_index(path), shards.iter_tar_samples(path)):
        assert key == key2 and where.keys() == members.keys()
        for ext, (off, size) in where.items():
            assert raw[off:off + size] == members[ext]
        assert json.loads(members["json"])["key"] == key
    assert os.path.getsize(path) == len(raw)


class _Enc(torch.nn.Module):
    embedding_dim = 5

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 5, 3)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3))


@pytest.mark.parametrize("aggregate", ["mean", "naive_bayes"])
@pytest.mark.parametrize("multilabel", [False, True])
def test_streamed_clip_scores_match_direct_formula(tmp_path, aggregate, multilabel):
    from eval.finetune import _clip_scores, _Net

    d, decoded = _write(str(tmp_path / "d"), "f16chunks")
    window = Window("sliding", 96, max_windows=7)
    cw = W.ClipWindows([d], sorted(decoded), window, pad=-9.0)
    torch.manual_seed(0)
    net = _Net(_Enc(), 3, None)
    idx = np.array([5, 1, 2, 0])
    got = _clip_scores(net, cw, idx, multilabel, aggregate, batch=4)
    with torch.no_grad():
        want = []
        for i in idx:
            x = torch.from_numpy(make_windows(decoded[cw.keys[i]], window, -9.0))[:, None]
            e = net.encoder(x)
            if aggregate == "mean":
                want.append(net.head(e.mean(0)))
            else:
                z = net.head(e)
                want.append((z if multilabel else torch.log_softmax(z, 1)).sum(0))
    np.testing.assert_allclose(got, torch.stack(want).numpy(), rtol=1e-5, atol=1e-5)
