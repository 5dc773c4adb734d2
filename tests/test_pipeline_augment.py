"""Exact and statistical tests of pipeline.augment: log-mixup-exp, RRC, pitch shift, example mixing."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.augment import (
    MixupMemory,
    batch_normalize,
    bicubic_matrices_torch,
    bicubic_matrix,
    canvas_offset,
    gaussian_mix,
    log_mixup_exp,
    mel_centers,
    mix_examples,
    mixup,
    pitch_shift,
    random_resize_crop,
    rrc_params,
)
from pipeline.device import ViewsAugment
from shards.frontend import get_preset, logmel


def test_log_mixup_exp_formula():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 96)).astype(np.float32) * 3
    xk = rng.normal(size=(64, 96)).astype(np.float32) * 3
    for lam in (0.0, 0.01, 0.2, 0.4, 0.99):
        want = np.log((1 - lam) * np.exp(x.astype(np.float64)) + lam * np.exp(xk.astype(np.float64)))
        np.testing.assert_allclose(log_mixup_exp(x, xk, lam), want, rtol=1e-5, atol=1e-5)
    # stays finite far from zero (raw log-mels reach log(eps) ~ -16; shifted by the max)
    np.testing.assert_allclose(log_mixup_exp(x - 200, xk - 200, 0.3),
                               np.log(0.7 * np.exp(x.astype(np.float64)) + 0.3 * np.exp(xk.astype(np.float64))) - 200,
                               rtol=1e-5, atol=1e-4)


def test_mixup_against_memory_equals_the_formula():
    rng = np.random.default_rng(7)
    mem = MixupMemory(size=16)
    past = [rng.normal(size=(64, 96)).astype(np.float32) * 2 for _ in range(10)]
    for p in past:
        mem.push(p)
    for _ in range(50):
        x = rng.normal(size=(64, 96)).astype(np.float32) * 2
        twin = copy.deepcopy(rng)
        k, lam_want = int(twin.integers(10)), float(twin.uniform(0.0, 0.4))
        y, lam = mixup(x, mem, rng, 0.4)
        assert lam == lam_want and 0.0 <= lam <= 0.4
        want = np.log((1 - lam) * np.exp(x.astype(np.float64)) + lam * np.exp(past[k].astype(np.float64)))
        np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)


def test_mixup_lambda_range_and_memory_fifo():
    rng = np.random.default_rng(1)
    mem = MixupMemory(size=8)
    x = np.zeros((4, 5), np.float32)
    out, lam = mixup(x, mem, rng, 0.4)
    assert lam == 0.0 and np.array_equal(out, x)  # empty memory: nothing to mix with
    for i in range(20):
        mem.push(np.full((4, 5), i, np.float32))
    assert len(mem) == 8
    seen = {float(mem.sample(rng)[1][0, 0]) for _ in range(400)}
    assert seen == set(float(v) for v in range(12, 20))  # FIFO: the last 8 pushed
    lams = []
    for _ in range(2000):
        y, lam = mixup(x, mem, rng, 0.4)
        lams.append(lam)
        partner = np.exp(y[0, 0]) - (1 - lam)  # x = 0: exp(y) = (1 - l) + l exp(x_k)
        assert lam == 0 or 12 - 1e-3 <= np.log(partner / lam) <= 19 + 1e-3
    lams = np.array(lams)
    assert lams.min() >= 0.0 and lams.max() <= 0.4
    assert lams.min() < 0.02 and lams.max() > 0.38  # covers U(0, alpha)
    _, glam = gaussian_mix(x, rng, 0.4, 0.4)
    assert 0.0 <= glam <= 0.4


def _torch_rrc(x: np.ndarray, params, virtual=1.5) -> np.ndarray:
    i, j, h, w = params
    n_f, n_t = x.shape
    canvas = np.zeros((n_f, int(n_t * virtual)), np.float32)
    x0 = canvas_offset(n_t, virtual)
    canvas[:, x0:x0 + n_t] = x
    crop = torch.from_numpy(canvas[i:i + h, j:j + w].copy())[None, None]
    return F.interpolate(crop, size=(n_f, n_t), mode="bicubic", align_corners=True)[0, 0].numpy()


def test_rrc_matches_torch_bicubic_shape_and_frequency_bound():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(64, 96)).astype(np.float32)
    for _ in range(200):
        p = rrc_params(64, 96, rng)
        i, j, h, w = p
        assert 0 <= i and i + h <= 64 and h >= int(0.6 * 64)  # frequency never past F
        assert 0 <= j and j + w <= 144 and int(0.6 * 96) <= w <= 144
        y = random_resize_crop(x, p)
        assert y.shape == (64, 96) and y.dtype == np.float32
    for p in [(0, 0, 64, 144), (10, 30, 40, 60), (3, 100, 50, 44), (0, 24, 64, 96)]:
        np.testing.assert_allclose(random_resize_crop(x, p), _torch_rrc(x, p), atol=2e-4)
    np.testing.assert_allclose(random_resize_crop(x, (0, 24, 64, 96)), x, atol=1e-6)  # identity crop


def test_rrc_zero_fill_outside_input():
    x = np.ones((64, 96), np.float32)
    y = random_resize_crop(x, (0, 0, 64, 144))  # the whole 1.5 T canvas: input in columns 24..119
    src = np.arange(96) * 143 / 95  # canvas position of each output column
    outside = (src + 2 < 24) | (src - 2 > 119)  # all four bicubic taps outside the input
    inside = (src - 2 >= 24) & (src + 2 <= 119)
    assert outside.sum() > 20
    assert np.all(y[:, outside] == 0.0)
    np.testing.assert_allclose(y[:, inside], 1.0, atol=1e-5)


def test_bicubic_matrix_rows_sum_to_one_and_batched_torch_matches_numpy():
    for n_in, n_out in [(38, 64), (64, 64), (144, 96), (57, 96), (1, 5)]:
        np.testing.assert_allclose(bicubic_matrix(n_in, n_out).sum(1), 1.0, atol=1e-5)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 64, 96)).astype(np.float32)
    params = [rrc_params(64, 96, rng) for _ in range(6)]
    i, j, h, w = (torch.tensor([p[k] for p in params]) for k in range(4))
    mf = bicubic_matrices_torch(i, h, 0, 64, 64)
    mt = bicubic_matrices_torch(j, w, canvas_offset(96), 96, 96)
    y = torch.bmm(torch.bmm(mf, torch.from_numpy(x)), mt.transpose(1, 2)).numpy()
    for b in range(6):
        np.testing.assert_allclose(y[b], random_resize_crop(x[b], params[b]), atol=1e-4)


def test_pure_tone_peak_moves_to_a_times_1khz():
    fe = get_preset("byol_a")
    t = np.arange(16000) / 16000

    def peak(mel):
        return int(mel.mean(axis=1).argmax())

    def tone(f):
        return logmel((0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32), fe)

    base = tone(1000.0)
    centres = mel_centers(fe.to_dict())
    assert peak(base) == int(np.abs(np.log(centres / 1000.0)).argmin())
    for a in (0.8, 0.9, 1.1, 1.2):
        shifted = pitch_shift(base, fe.to_dict(), a)
        assert shifted.shape == base.shape
        assert peak(shifted) == peak(tone(1000.0 * a)), a
    for a in np.linspace(0.8, 1.2, 17):  # between bin centres the peak may round either way
        assert abs(peak(pitch_shift(base, fe.to_dict(), a)) - int(np.abs(np.log(centres / (1000.0 * a))).argmin())) <= 1
    # a > 1 leaves the lowest bins without a source: they get the fill value
    out = pitch_shift(base, fe.to_dict(), 1.2, fill=-99.0)
    assert out[0].min() == -99.0 and out[-1].min() > -99.0


def test_example_mixing_beta_5_2_and_partners():
    rng = np.random.default_rng(4)
    x = np.arange(256, dtype=np.float32).reshape(256, 1, 1, 1) * np.ones((1, 1, 2, 3), np.float32)
    mixed, lam, partner = mix_examples(x, rng)
    assert np.all(partner != np.arange(256))
    np.testing.assert_allclose(mixed[:, 0, 0, 0], lam * np.arange(256) + (1 - lam) * partner, rtol=1e-5, atol=1e-3)
    lams = np.concatenate([mix_examples(x, rng)[1] for _ in range(40)])
    assert abs(lams.mean() - 5 / 7) < 0.01 and abs(lams.var() - 10 / (49 * 8)) < 0.004  # Beta(5, 2)
    valid = np.zeros(256, bool)
    valid[:3] = True
    _, lam_v, partner_v = mix_examples(x, rng, valid=valid)
    assert set(partner_v[:3]) <= {0, 1, 2} and np.all(lam_v[3:] == 1.0)


def test_batch_normalize_uses_valid_rows():
    rng = np.random.default_rng(5)
    a = rng.normal(3, 2, size=(8, 1, 4, 5)).astype(np.float32)
    b = rng.normal(3, 2, size=(8, 1, 4, 5)).astype(np.float32)
    a[-1] = b[-1] = 1000.0
    valid = np.array([True] * 7 + [False])
    ya, yb = batch_normalize([a, b], valid)
    both = np.concatenate([ya[:7], yb[:7]])
    assert abs(both.mean()) < 1e-5 and abs(both.std() - 1) < 1e-4


def test_device_views_augment_shapes_and_post_norm():
    aug = ViewsAugment(seed=0)
    x = torch.randn(16, 1, 64, 96)
    for _ in range(2):
        out = aug({"x": x, "valid": torch.ones(16, dtype=torch.bool)})
    assert set(out) == {"x1", "x2", "valid"} and out["x1"].shape == (16, 1, 64, 96)
    both = torch.cat([out["x1"], out["x2"]])
    assert abs(float(both.mean())) < 1e-4 and abs(float(both.std()) - 1) < 1e-3
    assert aug.mem_n == 32
    plain = ViewsAugment(mixup=False, rrc=False, post_norm=False)({"x": x})
    assert torch.equal(plain["x1"], x) and torch.equal(plain["x2"], x)


@pytest.mark.parametrize("n_mels", [64, 80])
def test_mel_centres_match_torchaudio_filterbank(n_mels):
    import torchaudio

    fe = get_preset("hares" if n_mels == 80 else "byol_a")
    fb = torchaudio.functional.melscale_fbanks(fe.n_fft // 2 + 1, fe.f_min, fe.f_max, fe.n_mels, fe.sample_rate,
                                               norm=None, mel_scale=fe.mel_scale)
    freqs = np.linspace(0, fe.sample_rate / 2, fe.n_fft // 2 + 1)
    peaks = freqs[fb.numpy().argmax(axis=0)]
    bin_hz = freqs[1]
    assert np.all(np.abs(peaks - mel_centers(fe.to_dict())) <= bin_hz)
