"""Samplers on in-memory clips: exact positions, distributions, keys and shapes."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import chisquare

from pipeline import SAMPLERS, build_sampler
from pipeline.augment import pitch_shift
from shards.frontend import get_preset

FE = get_preset("byol_a").to_dict()
FACTS = SimpleNamespace(mean=-5.0, std=2.0, frontend=FE, vocabulary=["a", "b", "c"])


def indexed_clip(frames: int, clip_id: int = 7, n_mels: int = 64) -> np.ndarray:
    """Row 0 holds the clip id, row 1 the frame index, the rest a smooth pattern."""
    mel = np.tile(np.sin(np.arange(n_mels) / 5.0)[:, None], (1, frames)).astype(np.float32)
    mel[0] = clip_id
    mel[1] = np.arange(frames)
    return mel


def bound(name, **kw):
    s = build_sampler(name, **kw)
    s.bind(FACTS)
    return s


def test_registry_has_every_sampler():
    assert {"crop", "temporal_gap", "clip_pair", "triplet", "context", "views", "pitch_shift", "mix_views"} <= set(SAMPLERS)
    with pytest.raises(ValueError, match="unknown sampler"):
        build_sampler("nope")
    with pytest.raises(TypeError):
        build_sampler("clip_pair+pitch_shift", bogus=1)


def test_temporal_gap_uniform_and_target_matches_positions():
    s = bound("temporal_gap")
    n, span = 96, 9
    mel = indexed_clip(n + span)
    rng = np.random.default_rng(0)
    gaps, orders = [], set()
    for _ in range(5000):
        ex = s(mel, {}, rng)
        i, j = int(ex["x1"][0, 1, 0]), int(ex["x2"][0, 1, 0])
        assert 0 <= min(i, j) and max(i, j) + n <= n + span
        assert ex["target"] == pytest.approx(abs(i - j) / span, abs=1e-7)  # d = D / (Nmax - N)
        assert np.array_equal(ex["x1"][0, 1], np.arange(i, i + n))  # contiguous slices
        gaps.append(abs(i - j))
        orders.add(i < j)
    counts = np.bincount(gaps, minlength=span + 1)
    assert counts.size == span + 1 and counts.min() > 0
    assert chisquare(counts).pvalue > 1e-3  # D ~ U{0..Nmax-N}
    assert orders == {True, False}  # no temporal order imposed
    short = s(indexed_clip(50), {}, rng)
    assert short["target"] == 0.0 and short["x1"].shape == (1, 64, 96)


def test_context_offsets_are_i_plus_p_times_n_plus_g():
    s = bound("context")
    assert (s.n_frames, s.n_side, s.gap) == (96, 2, 2)
    mel = indexed_clip(1001)
    rng = np.random.default_rng(1)
    starts = set()
    for _ in range(200):
        ex = s(mel, {}, rng)
        assert ex["context"].shape == (4, 1, 64, 96) and ex["center"].shape == (1, 64, 96)
        i = int(ex["center"][0, 1, 0])
        starts.add(i)
        for k, p in enumerate([-2, -1, 1, 2]):
            assert int(ex["context"][k, 0, 1, 0]) == i + p * (96 + 2)
            assert np.array_equal(ex["context"][k, 0, 1], np.arange(i + p * 98, i + p * 98 + 96))
    assert min(starts) >= 2 * 98 and max(starts) <= 1001 - 96 - 2 * 98 and len(starts) > 100


def test_triplet_negative_never_from_anchor_clip():
    s = bound("triplet", pool_size=4)
    rng = np.random.default_rng(2)
    out = []
    for step in range(300):
        cid = int(rng.integers(0, 5))  # few clips, often repeated: the pool holds the anchor's clip too
        out += s(indexed_clip(300, cid), {"key": f"clip{cid}"}, rng)
    out += s.flush(rng)
    assert len(out) == 300
    for ex in out:
        assert ex["anchor"][0, 0, 0] == ex["positive"][0, 0, 0]
        assert ex["negative"][0, 0, 0] != ex["anchor"][0, 0, 0]
    first = bound("triplet")
    assert first(indexed_clip(300, 1), {"key": "a"}, rng) == []  # no other clip yet: held back
    got = first(indexed_clip(300, 2), {"key": "b"}, rng)
    assert [e["__key__"] for e in got] == ["a", "b"]
    # clips cut from one recording share its source_id: never each other's negatives
    rec = bound("triplet", pool_size=8)
    got = []
    for step in range(200):
        cid = int(rng.integers(0, 6))
        got += rec(indexed_clip(300, cid), {"key": f"clip{cid}", "source_id": f"file{cid // 2}"}, rng)
    assert got and all(int(e["negative"][0, 0, 0]) // 2 != int(e["anchor"][0, 0, 0]) // 2 for e in got)
    shift = bound("triplet", max_shift=10)
    for _ in range(100):
        ex = shift(indexed_clip(1001, 3), {"key": "x"}, rng)
        for e in ex:
            assert abs(e["anchor"][0, 1, 0] - e["positive"][0, 1, 0]) <= 10


def test_crop_pads_short_clips_and_labels():
    s = bound("crop")
    rng = np.random.default_rng(3)
    ex = s(indexed_clip(40), {"labels": ["c", "a", "zzz"]}, rng)
    assert ex["x"].shape == (1, 64, 96)
    assert np.array_equal(ex["labels"], np.array([1, 0, 1], np.float32))
    row = ex["x"][0, 1]
    assert np.all(ex["x"][0, :, :28] == 0) and np.all(ex["x"][0, :, 68:] == 0)  # centred, zeros both sides
    assert np.array_equal(row[28:68], np.arange(40))
    starts = {int(s(indexed_clip(200), {}, rng)["x"][0, 1, 0]) for _ in range(500)}
    assert min(starts) == 0 and max(starts) == 104
    norm = bound("crop", normalize=True)
    np.testing.assert_allclose(norm(np.full((64, 100), -1.0, np.float32), {}, rng)["x"], 2.0)
    assert norm.input_norm == {"mean": -5.0, "std": 2.0}


def test_views_blocks_and_ablations():
    rng = np.random.default_rng(4)
    mel = rng.normal(-5, 2, size=(64, 300)).astype(np.float32)
    s = bound("views")
    assert (s.n_frames, s.alpha, s.memory_size, s.virtual_crop) == (96, 0.4, 2048, 1.5)
    exs = [s(mel, {}, rng) for _ in range(32)]
    assert len(s.memory) == 32
    batch = {k: np.stack([e[k] for e in exs]) for k in ("x1", "x2")}
    batch["valid"] = np.ones(32, bool)
    batch = s.collate(batch, rng)
    both = np.concatenate([batch["x1"], batch["x2"]])
    assert batch["x1"].shape == (32, 1, 64, 96) and abs(both.mean()) < 1e-4 and abs(both.std() - 1) < 1e-3
    plain = bound("views", mixup=False, rrc=False, post_norm=False)
    ex = plain(mel, {}, rng)
    assert np.array_equal(ex["x1"], ex["x2"])
    i = next(t for t in range(205) if np.allclose((mel[:, t:t + 96] - -5.0) / 2.0, ex["x1"][0], atol=1e-5))  # pre-norm
    assert i >= 0
    noise = bound("views", mixup=False, noise=True, rrc=False, post_norm=False)
    ex = noise(mel, {}, rng)
    assert not np.array_equal(ex["x1"], ex["x2"])
    dev = bound("views", augment_on="device")
    assert set(dev(mel, {}, rng)) == {"x"} and dev.device_transform() is not None
    assert s.input_norm == {"mean": -5.0, "std": 2.0}


def test_pitch_shift_alone_and_composed():
    rng = np.random.default_rng(5)
    mel = rng.normal(-5, 2, size=(64, 200)).astype(np.float32)
    alone = bound("pitch_shift")
    ex = alone(mel, {}, rng)
    assert set(ex) == {"x1", "x_pitch", "pitch_factor"}
    combo = bound("clip_pair+pitch_shift", n_frames=64, pitch_shift={"low": 0.9, "high": 1.1})
    assert combo.keys == ("x1", "x2", "x_pitch", "pitch_factor")
    factors = []
    for _ in range(200):
        ex = combo(mel, {}, rng)
        assert ex["x1"].shape == ex["x_pitch"].shape == (1, 64, 64)
        a = float(ex["pitch_factor"])
        factors.append(a)
        np.testing.assert_allclose(ex["x_pitch"][0], pitch_shift(ex["x1"][0], FE, a), atol=1e-4)  # a stored as float32
    assert 0.9 <= min(factors) < 0.92 and 1.08 < max(factors) <= 1.1
    with pytest.raises(ValueError, match="mels"):
        bound("pitch_shift")(rng.normal(size=(80, 200)).astype(np.float32), {}, rng)


def test_mix_views_crops_standardises_and_mixes_in_batch():
    rng = np.random.default_rng(6)
    s = bound("mix_views")
    assert s.n_frames == 300 and s.beta == (5.0, 2.0)
    exs = [s(indexed_clip(1001, cid) + rng.normal(size=(64, 1001)).astype(np.float32), {}, rng) for cid in range(8)]
    for e in exs:
        assert e["x1"].shape == (1, 64, 300)
        assert abs(e["x1"].mean()) < 1e-4 and abs(e["x1"].std() - 1) < 1e-3  # per-example standardisation
    batch = {k: np.stack([e[k] for e in exs]) for k in ("x1", "x2")}
    batch["valid"] = np.ones(8, bool)
    before = batch["x1"].copy()
    out = s.collate(dict(batch), rng)
    assert out["x1"].shape == before.shape and not np.allclose(out["x1"], before)
