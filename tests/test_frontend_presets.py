"""Every frontend preset gives non-empty mel filters (an all-zero filter would be a constant log(eps) row)."""
from __future__ import annotations

import pytest
import torchaudio.functional as AF

from shards.frontend import PRESETS


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_no_empty_mel_filter(name: str) -> None:
    c = PRESETS[name]
    fb = AF.melscale_fbanks(c.n_fft // 2 + 1, c.f_min, c.f_max, c.n_mels, c.sample_rate, norm=None, mel_scale=c.mel_scale)
    assert int((fb.sum(0) == 0).sum()) == 0
    assert c.win_length <= c.n_fft and c.hop_length == 160  # every preset: 10 ms hop (models.base.HOP_S)


def test_paper_presets_of_the_masked_methods() -> None:
    assert (PRESETS["m2d"].n_mels, PRESETS["m2d"].f_min, PRESETS["m2d"].f_max) == (80, 50.0, 8000.0)
    assert PRESETS["audio_mae"].n_mels == 128


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_logmel_matches_torchaudio_and_does_not_depend_on_threads(name: str) -> None:
    """``logmel`` (power as re^2 + im^2) gives torchaudio's values (|X| via hypot, squared) to float32
    rounding, and the same bits with 1 or 2 intra-op threads (shards must not depend on --workers)."""
    import numpy as np
    import torch

    from shards.frontend import LogMel, logmel

    fe = PRESETS[name]
    rng = np.random.default_rng(0)
    t = np.arange(3 * fe.sample_rate) / fe.sample_rate
    wav = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)
    wav[: fe.sample_rate // 2] = 0.0  # silence: log(eps) frames
    with torch.inference_mode():
        ref = LogMel(fe)(torch.from_numpy(wav)).numpy()
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = logmel(wav, fe)
        torch.set_num_threads(2)
        two = logmel(wav, fe)
    finally:
        torch.set_num_threads(before)
    assert one.shape == ref.shape == (fe.n_mels, fe.frames_for(wav.size)) and one.dtype == np.float32
    assert np.array_equal(one, two)
    np.testing.assert_allclose(one, ref, rtol=0, atol=4e-6)  # log units; float16 steps are >= 1e-3 here
    assert float(np.mean(one.astype(np.float16) == ref.astype(np.float16))) > 0.999
