"""Masked modeling objectives (mae, m2d) and byol_a_v2: loss formulas on small tensors, the target sees only
masked patches and gets no gradient, EMA ramp, masks, pairing checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import models
from models.objectives import OBJECTIVES, build_objective
from models.objectives.m2d import normalized_mse, standardize_tokens
from models.objectives.mae import patch_targets
from models.objectives.masked_common import gather_rows, split_mask
from pipeline.samplers.patch_mask import random_mask

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SMALL = {"mae": dict(decoder_depth=1, decoder_dim=32, decoder_heads=4),
         "m2d": dict(predictor_depth=1, predictor_dim=32, predictor_heads=4)}


def vit(**kw):
    return models.build_encoder("vit_tiny", n_mels=32, n_frames=64, patch_size=8, depth=1, **kw)  # 4 x 8 patches


def batch(b=3, ratio=0.75, seed=0):
    rng = np.random.default_rng(seed)
    g = torch.Generator().manual_seed(seed)
    mask = torch.from_numpy(np.stack([random_mask(32, ratio, rng) for _ in range(b)]))
    return {"x": torch.randn(b, 1, 32, 64, generator=g), "mask": mask}


def obj(name, **kw):
    torch.manual_seed(0)
    return build_objective(name, vit(), n_frames=64, **{**SMALL[name], **kw})


def test_split_mask_invariants():
    b = batch(4, 0.75)
    vis, msk = split_mask(b["mask"])
    assert vis.shape == (4, 8) and msk.shape == (4, 24)
    for i in range(4):
        assert set(vis[i].tolist()).isdisjoint(msk[i].tolist())
        assert sorted(vis[i].tolist() + msk[i].tolist()) == list(range(32))
        assert b["mask"][i, msk[i]].all() and not b["mask"][i, vis[i]].any()
        assert (vis[i].diff() > 0).all() and (msk[i].diff() > 0).all()
    bad = b["mask"].clone()
    bad[0, vis[0, 0]] = True
    with pytest.raises(ValueError, match="same number"):
        split_mask(bad)


def test_mae_loss_formula_and_zero_at_target(monkeypatch):
    o = obj("mae")
    b = batch()
    out = o(b)
    # recompute by hand: decoder output vs per-patch-standardised masked patches
    enc = o.encoder
    patches = enc.patchify(b["x"])
    vis, msk = split_mask(b["mask"])
    z = enc.encode_tokens(enc.embed_patches(gather_rows(patches, vis), vis, 8))
    pred = o.decoder(z, vis, msk, b["mask"], 8)
    t = gather_rows(patches, msk)
    t = (t - t.mean(-1, keepdim=True)) / torch.sqrt(t.var(-1, unbiased=False, keepdim=True) + 1e-6)
    assert torch.allclose(out["loss"], ((pred - t) ** 2).mean(), atol=1e-6)
    assert torch.allclose(patch_targets(gather_rows(patches, msk), True), t)
    # a decoder that outputs exactly the normalised masked patches has zero loss
    monkeypatch.setattr(o.decoder, "forward", lambda z, v, m, mask, n: patch_targets(gather_rows(patches, m), True))
    assert o(b)["loss"].item() == pytest.approx(0.0, abs=1e-10)


def test_m2d_target_sees_only_masked_patches_and_gets_no_gradient(monkeypatch):
    o = obj("m2d")
    b = batch()
    seen = {}
    real = o.target_encoder.embed_patches

    def spy(patches, index, n_time=None):
        seen["patches"], seen["index"] = patches.clone(), index.clone()
        return real(patches, index, n_time)

    monkeypatch.setattr(o.target_encoder, "embed_patches", spy)
    out = o(b)
    out["loss"].backward()
    vis, msk = split_mask(b["mask"])
    all_patches = o.encoder.patchify(b["x"])
    assert torch.equal(seen["index"], msk)
    assert torch.equal(seen["patches"], gather_rows(all_patches, msk))  # the masked patches, nothing else
    assert seen["patches"].shape[1] == 24
    assert all(p.grad is None and not p.requires_grad for p in o.target_encoder.parameters())
    # every online parameter gets a gradient (DDP needs no find_unused_parameters)
    missing = [n for n, p in o.trainable_named_parameters() if p.grad is None]
    assert not missing, missing
    tgt_ids = {id(p) for p in o.target_encoder.parameters()}
    assert not tgt_ids & {id(p) for g in o.param_groups() for p in g["params"]}


def test_m2d_loss_formula_and_zero_when_prediction_equals_target(monkeypatch):
    p, t = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    cos = torch.nn.functional.cosine_similarity(p, t, dim=-1)
    assert torch.allclose(normalized_mse(p, t), (2 - 2 * cos).mean(), atol=1e-6)
    z = standardize_tokens(torch.randn(3, 4, 6) * 5 + 2)
    assert torch.allclose(z.mean(-1), torch.zeros(3, 4), atol=1e-5)
    assert torch.allclose(z.var(-1, unbiased=False), torch.ones(3, 4), atol=1e-3)
    o = obj("m2d")
    b = batch()
    vis, msk = split_mask(b["mask"])
    with torch.no_grad():
        tg = o.target_encoder
        target = standardize_tokens(tg.encode_tokens(tg.embed_patches(gather_rows(tg.patchify(b["x"]), msk), msk, 8)))
    monkeypatch.setattr(o.predictor, "forward", lambda *a: 3.0 * target)  # scale does not matter (l2-normalised)
    assert o(b)["loss"].item() == pytest.approx(0.0, abs=1e-6)


def test_m2d_ema_ramp_and_update():
    o = obj("m2d")
    hp = o.hparams
    assert (hp.ema_tau_start, hp.ema_tau, hp.mask_ratio, hp.n_frames) == (0.99995, 0.99999, 0.7, 64)
    assert OBJECTIVES["m2d"].default_hparams("icassp2023").mask_ratio == 0.6
    o.set_total_steps(5)
    taus = []
    for _ in range(6):
        taus.append(o.ema_tau_now())
        before = [p.clone() for p in o.target_encoder.parameters()]
        with torch.no_grad():
            for p in o.encoder.parameters():
                p.add_(0.01)
        o.after_step()
        tau = taus[-1]
        for p_t, p_b, p_o in zip(o.target_encoder.parameters(), before, o.encoder.parameters()):
            assert torch.allclose(p_t, tau * p_b + (1 - tau) * p_o, atol=1e-7)
    assert taus[0] == pytest.approx(0.99995) and taus[4] == pytest.approx(0.99999) and taus[5] == pytest.approx(0.99999)
    assert np.allclose(np.diff(taus[:5]), 0.00001, atol=1e-12)  # linear ramp
    assert int(o.state_dict()["ema_step"]) == 6  # checkpointed with the model: resume continues the ramp


def test_masked_objectives_refuse_non_patch_encoders():
    for name in ("mae", "m2d"):
        with pytest.raises(ValueError, match="needs a ViT patch encoder"):
            build_objective(name, models.build_encoder("audio_ntt", d=512), n_frames=96)
        with pytest.raises(ValueError, match="multiple of the 8-frame patch"):
            build_objective(name, vit(), n_frames=60)


def test_byol_a_v2_is_a_preset_of_byol_a():
    cls, base = OBJECTIVES["byol_a_v2"], OBJECTIVES["byol_a"]
    assert issubclass(cls, base) and cls.forward is base.forward
    assert cls.sampler == "views_v2" and cls.default_encoder == ("audio_ntt2022", {"d": 2048})
    hp, hp1 = cls.default_hparams(), base.default_hparams()
    assert (hp.lr, hp.ema_tau, hp.proj_hidden, hp.batch_size) == (hp1.lr, hp1.ema_tau, hp1.proj_hidden, hp1.batch_size)
    torch.manual_seed(0)
    o = build_objective("byol_a_v2", models.build_encoder("audio_ntt2022", d=64), proj_hidden=16, proj_dim=8)
    x = torch.randn(4, 1, 64, 32)
    out = o({"x1": x, "x2": x.flip(-1)})
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and o.encoder.fc[0].weight.grad is not None


def test_small_configs_build_and_pass_check():
    """The CPU-sized settings declared for health benchmarks build and fit their method."""
    for name in ("mae", "m2d"):
        sc = OBJECTIVES[name].small_config
        enc = models.build_encoder(sc["encoder"], n_mels=64, depth=1, **sc["encoder_kwargs"])
        o = build_objective(name, enc, **sc["hparams"])
        assert o.hparams.n_frames == 96 and enc.grid_t == 6
