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
    assert set(exs[0]) == {"x"} and len(s.memory) == 0  # batched: both views are made in collate
    batch = {"x": np.stack([e["x"] for e in exs]), "valid": np.ones(32, bool)}
    batch = s.collate(batch, rng)
    assert len(s.memory) == 32 and set(batch) == {"x1", "x2", "valid"}
    both = np.concatenate([batch["x1"], batch["x2"]])
    assert batch["x1"].shape == (32, 1, 64, 96) and abs(both.mean()) < 1e-4 and abs(both.std() - 1) < 1e-3
    plain = bound("views", mixup=False, rrc=False, post_norm=False, per_example=True)
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


def _views_batches(s, rng, mel, batches, b, invalid=()):
    """Run ``s`` (batched views) over ``batches`` batches of ``b`` crops; yields (x, valid, x1, x2, params)."""
    for _ in range(batches):
        x = np.stack([s(mel, {}, rng)["x"] for _ in range(b)])
        valid = np.ones(b, bool)
        valid[list(invalid)] = False
        out = s.collate({"x": x.copy(), "valid": valid}, rng)
        yield x[:, 0], valid, out["x1"], out["x2"], s.last_params


def test_batched_views_equal_the_per_example_functions():
    """Every view equals log-mixup-exp (Eq. 2, log domain) with the drawn memory entry and lambda, then the
    random resize crop with the drawn (i, j, h, w); row r mixes only with the last `size` inputs pushed
    before it (earlier batches and the valid rows before r in its own batch), padding rows are never pushed."""
    from pipeline.augment import log_mixup_exp, random_resize_crop

    rng = np.random.default_rng(11)
    mel = rng.normal(-5, 2, size=(64, 400)).astype(np.float32)
    s = bound("views", memory_size=5, post_norm=False)
    pushed: list[np.ndarray] = []
    for x, valid, x1, x2, p in _views_batches(s, rng, mel, 4, 8, invalid=(3,)):
        t0 = len(pushed)
        before = np.cumsum(valid) - valid
        for v, out in enumerate((x1, x2)):
            for r in range(8):
                num, lam = int(p["number"][v, r]), float(p["lam"][v, r])
                avail = min(t0 + before[r], 5)
                if avail:
                    assert t0 + before[r] - avail <= num < t0 + before[r]  # the FIFO as it was before row r
                else:
                    assert lam == 0.0
                xk = pushed[num] if num < t0 else x[np.flatnonzero(valid)[num - t0]]
                mixed = log_mixup_exp(x[r], xk, lam) if lam > 0 else x[r]
                want = random_resize_crop(mixed, (int(p["i"][v, r]), int(p["j"][v, r]), int(p["h"][v, r]), int(p["w"][v, r])))
                np.testing.assert_allclose(out[r, 0], want, rtol=1e-5, atol=1e-4)
        pushed += [x[r] for r in range(8) if valid[r]]
    assert len(s.memory) == 5 and s.memory.total == len(pushed) == 28


def test_batched_views_draw_like_the_per_example_path(monkeypatch):
    """Crop sizes and places, mixup ratios and memory ages: the batched draws and the per-example path's
    draws (recorded from augment.rrc_params / augment.mixup) come from the same distributions."""
    from scipy.stats import ks_2samp

    import pipeline.samplers.views as views_mod

    rng = np.random.default_rng(12)
    mel = rng.normal(-5, 2, size=(64, 400)).astype(np.float32)
    rec = {"crop": [], "lam": []}
    real_rrc, real_mix = views_mod.rrc_params, views_mod.mixup

    def rrc_spy(*a, **k):
        out = real_rrc(*a, **k)
        rec["crop"].append(out)
        return out

    def mix_spy(*a, **k):
        out = real_mix(*a, **k)
        rec["lam"].append(out[1])
        return out

    monkeypatch.setattr(views_mod, "rrc_params", rrc_spy)
    monkeypatch.setattr(views_mod, "mixup", mix_spy)
    one = bound("views", memory_size=64, per_example=True)
    for _ in range(1500):
        one(mel, {}, rng)
    ex_crop = np.array(rec["crop"][128:])  # (i, j, h, w), past the first 64 inputs (memory filling)
    ex_lam = np.array(rec["lam"][128:])
    bat = bound("views", memory_size=64)
    crops, lams, ages = [], [], []
    for x, valid, x1, x2, p in _views_batches(bat, rng, mel, 24, 64):
        crops.append(np.stack([p[k].ravel() for k in ("i", "j", "h", "w")], axis=1))
        lams.append(p["lam"].ravel())
        ages.append((bat.memory.total - 64 + np.arange(64) - 1 - p["number"]).ravel())  # 0 = the input just before
    b_crop, b_lam, b_age = np.concatenate(crops[2:]), np.concatenate(lams[2:]), np.concatenate(ages[2:])
    for col in range(4):
        assert ks_2samp(ex_crop[:, col], b_crop[:, col]).pvalue > 1e-3, ("crop", col)
    assert ks_2samp(ex_lam, b_lam).pvalue > 1e-3
    assert 0 <= b_lam.min() and b_lam.max() < 0.4 and abs(b_lam.mean() - 0.2) < 0.01
    assert chisquare(np.bincount(b_age, minlength=64)).pvalue > 1e-3 and b_age.max() == 63  # uniform over the FIFO
    hs, ws = b_crop[:, 2], b_crop[:, 3]
    assert abs((hs == 64).mean() - 5 / 9) < 0.03  # min(U(0.6, 1.5), 1) = 1 with probability 5/9
    assert 57 <= ws.min() and ws.max() <= 144
