"""patch_mask stage (masking invariants, seeding, composition, the real loader) and BYOL-A v2's fader."""
from __future__ import annotations

import os

import numpy as np
import pytest

from pipeline import build_loader, build_sampler
from pipeline.samplers.patch_mask import n_masked, random_mask
from pipeline.samplers.views_v2 import random_linear_fader


def test_mask_count_and_uniformity() -> None:
    rng = np.random.default_rng(0)
    assert n_masked(190, 0.7) == 133 and n_masked(512, 0.8) == 410 and n_masked(4, 0.99) == 3
    masks = np.stack([random_mask(190, 0.7, rng) for _ in range(4000)])
    assert (masks.sum(1) == 133).all()  # the same count in every example: a dense visible tensor
    freq = masks.mean(0)  # every patch is masked with probability 133/190 (unstructured, uniform)
    assert np.abs(freq - 133 / 190).max() < 5 * np.sqrt(0.7 * 0.3 / 4000)
    # pairs of patches are masked independently of their distance (no block structure)
    co = (masks[:, 0] & masks[:, 1]).mean(), (masks[:, 0] & masks[:, 150]).mean()
    assert abs(co[0] - co[1]) < 0.04


def test_composed_with_crop_seeded_and_checked() -> None:
    s = build_sampler("crop+patch_mask", n_frames=96, mask_ratio=0.75, patch_size=16)
    assert s.keys == ("x", "labels", "mask")
    mel = np.random.default_rng(1).standard_normal((64, 500)).astype(np.float32)
    a = s(mel, {}, np.random.default_rng(7))
    b = s(mel, {}, np.random.default_rng(7))
    c = s(mel, {}, np.random.default_rng(8))
    assert a["x"].shape == (1, 64, 96) and a["mask"].shape == (24,) and a["mask"].dtype == bool
    assert a["mask"].sum() == 18
    assert np.array_equal(a["mask"], b["mask"]) and np.array_equal(a["x"], b["x"])
    assert not np.array_equal(a["mask"], c["mask"])
    with pytest.raises(ValueError, match="whole number of 16x16 patches"):
        build_sampler("crop+patch_mask", n_frames=100)(mel, {}, np.random.default_rng(0))
    with pytest.raises(ValueError, match="mask_ratio"):
        build_sampler("patch_mask", mask_ratio=1.0)


def test_loader_batches_are_dense_and_reproducible(demo_small) -> None:
    d = os.path.join(demo_small[0], "pretrain")

    def first():
        loader, info = build_loader([d], "crop+patch_mask", 6, mode="train", seed=3, num_workers=0,
                                    sampler_kwargs={"n_frames": 96, "mask_ratio": 0.7, "patch_size": 16})
        return next(iter(loader))

    b1, b2 = first(), first()
    assert b1["x"].shape == (6, 1, 64, 96) and b1["mask"].shape == (6, 24)
    assert (b1["mask"].sum(1) == 17).all()
    assert b1["mask"].dtype.is_floating_point is False
    assert (b1["mask"] == b2["mask"]).all() and (b1["x"] == b2["x"]).all()
    assert not (b1["mask"][0] == b1["mask"][1]).all()


def test_random_linear_fader_is_a_linear_gain_ramp() -> None:
    """BYOL-A v2, Sec. III-A: the same gain for every mel bin, linear in time from a to b in [-1, 1]."""
    x = np.random.default_rng(0).standard_normal((64, 96)).astype(np.float32)
    for seed in range(20):
        y, a, b = random_linear_fader(x, np.random.default_rng(seed), gain=1.0)
        d = y - x
        assert -1 <= a <= 1 and -1 <= b <= 1
        assert np.allclose(d, d[:1], atol=1e-6)  # identical across mel bins
        assert np.allclose(d[0], a + (b - a) * np.arange(96) / 95, atol=1e-5)


def test_views_v2_adds_the_fader_to_views() -> None:
    mel = np.random.default_rng(2).standard_normal((64, 300)).astype(np.float32)
    v1 = build_sampler("views", n_frames=96, mixup=False, rrc=False, per_example=True)
    v2 = build_sampler("views_v2", n_frames=96, mixup=False, rrc=False, per_example=True)
    off = build_sampler("views_v2", n_frames=96, mixup=False, rrc=False, fader=False, per_example=True)
    e1, e2, e0 = (s(mel, {}, np.random.default_rng(5)) for s in (v1, v2, off))
    assert np.array_equal(e1["x1"], e0["x1"])
    d = e2["x1"][0] - e1["x1"][0]
    assert np.allclose(d, d[:1], atol=1e-5) and np.abs(d).max() > 1e-3
    assert v2.config()["fader"] is True and "mixup" in v2.config()
    dev = build_sampler("views_v2", augment_on="device", fader_gain=0.5)
    aug = dev.device_transform()
    assert set(dev.provides) == {"x1", "x2"} and aug.fader and aug.fader_gain == 0.5


def test_views_v2_fader_on_the_device() -> None:
    """``ViewsAugment(fader=True)`` adds per view and row a ramp constant over mel bins, linear in time, end
    points in [-gain, gain], drawn afresh for each view; with the fader off the views are unchanged."""
    import torch

    from pipeline.device import ViewsAugment

    x = torch.randn(8, 1, 64, 96)
    kw = dict(mixup=False, rrc=False, post_norm=False, seed=3)
    off = ViewsAugment(**kw)({"x": x})
    on = ViewsAugment(fader=True, fader_gain=0.5, **kw)({"x": x})
    assert torch.equal(off["x1"], x) and torch.equal(off["x2"], x)
    t = torch.arange(96, dtype=torch.float32) / 95
    starts = []
    for k in ("x1", "x2"):
        d = on[k] - x
        assert torch.allclose(d, d[:, :, :1].expand_as(d), atol=1e-6)  # constant over mel bins
        a, b = d[:, 0, 0, 0], d[:, 0, 0, -1]
        assert torch.allclose(d[:, 0, 0], a[:, None] + (b - a)[:, None] * t[None], atol=1e-5)  # linear in time
        assert float(torch.cat([a, b]).abs().max()) <= 0.5 + 1e-6
        starts.append(a)
    assert not torch.allclose(starts[0], starts[1])  # each view draws its own ramp
    with pytest.raises(ValueError, match="fader_gain"):
        ViewsAugment(fader=True, fader_gain=-1.0)


def test_augment_on_auto_follows_the_training_device() -> None:
    """``augment_on='auto'`` (the default of ``views`` / ``views_v2``) becomes ``device`` on CUDA and ``worker``
    elsewhere; explicit values and samplers that cannot augment on the device pass unchanged."""
    from pipeline.samplers import resolve_augment_on

    assert resolve_augment_on("views", {}, "cuda") == {"augment_on": "device"}
    assert resolve_augment_on("views_v2", {"augment_on": "auto", "alpha": 0.2}, "cuda") == {"augment_on": "device",
                                                                                          "alpha": 0.2}
    assert resolve_augment_on("views", {}, "cpu") == {"augment_on": "worker"}
    assert resolve_augment_on("views", {"augment_on": "worker"}, "cuda") == {"augment_on": "worker"}
    assert resolve_augment_on("crop", {}, "cuda") == {}
    assert build_sampler("views").augment_on == "worker"  # outside the trainer, 'auto' reads as 'worker'
    with pytest.raises(ValueError, match="augment_on"):
        build_sampler("views", augment_on="gpu")


def test_views_v2_fader_in_batched_views() -> None:
    """The batched path (the default: both views of a batch in ``collate``) adds the same fader: per view and
    row a ramp constant over mel bins, linear in time, with end points in [-gain, gain], drawn afresh."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 64, 96)).astype(np.float32)
    kw = dict(n_frames=96, mixup=False, rrc=False, post_norm=False)
    on, off = build_sampler("views_v2", fader_gain=0.5, **kw), build_sampler("views_v2", fader=False, **kw)
    assert on.batched and off.batched
    b_on = on.collate({"x": x[:, None].copy()}, np.random.default_rng(7))
    b_off = off.collate({"x": x[:, None].copy()}, np.random.default_rng(7))
    ends = []
    for k in ("x1", "x2"):
        d = (b_on[k] - b_off[k])[:, 0]  # [B, F, T]
        assert np.allclose(d, d[:, :1], atol=1e-5)  # identical across mel bins
        for row in d[:, 0]:
            a, b = float(row[0]), float(row[-1])
            assert np.allclose(row, a + (b - a) * np.arange(96) / 95, atol=1e-5)
            assert -0.5 - 1e-6 <= a <= 0.5 + 1e-6 and -0.5 - 1e-6 <= b <= 0.5 + 1e-6
            ends += [a, b]
    assert len(set(np.round(ends, 6))) == len(ends)  # independent draws per row and view
