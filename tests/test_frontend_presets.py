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
