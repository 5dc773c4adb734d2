"""HEAR 2021 API over an exported encoder: shapes, dtype, timestamp spacing, batch independence."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from eval import hear
from tests._eval_support import export_encoder, tiny_registered


@pytest.fixture(autouse=True, scope="module")
def _tiny_encoder():
    yield from tiny_registered()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return export_encoder(str(tmp_path_factory.mktemp("hear") / "run"), metrics=False)


def _audio(n=3, seconds=1.3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (0.1 * torch.randn(n, int(seconds * 16000), generator=g)).float()


def test_model_attributes(run_dir):
    m = hear.load_model(run_dir)
    assert m.sample_rate == 16000 and m.scene_embedding_size == 16 and m.timestamp_embedding_size == 8
    assert isinstance(m, torch.nn.Module)
    assert hear.load_model(run_dir + "/encoder.json").scene_embedding_size == 16
    with pytest.raises(ValueError):
        hear.load_model("")


def test_scene_and_timestamp_shapes_dtype_spacing(run_dir):
    m = hear.load_model(run_dir)
    audio = _audio()
    scene = hear.get_scene_embeddings(audio, m)
    assert scene.shape == (3, m.scene_embedding_size) and scene.dtype == torch.float32
    emb, ts = hear.get_timestamp_embeddings(audio, m)
    frames = 1 + audio.shape[1] // 160  # log-mel frames (10 ms hop)
    assert emb.shape == (3, frames // 4, m.timestamp_embedding_size) and emb.dtype == torch.float32
    assert ts.shape == emb.shape[:2]
    d = np.diff(ts[0].numpy())
    assert np.allclose(d, 40.0)  # 4 log-mel frames of 10 ms per output frame
    assert 0 <= ts[0, 0] <= 40 and torch.equal(ts[0], ts[2])
    assert ts[0, -1] <= audio.shape[1] / 16  # within the clip (ms)


def test_windows_mode_spacing(run_dir):
    m = hear.load_model(run_dir, timestamp_mode="windows", hop_ms=50.0, window_frames=32)
    audio = _audio(2, 1.0)
    emb, ts = hear.get_timestamp_embeddings(audio, m)
    assert emb.shape == (2, 21, m.scene_embedding_size) and m.timestamp_embedding_size == 16
    assert np.allclose(np.diff(ts[0].numpy()), 50.0) and ts[0, 0] == 0 and ts[0, -1] == 1000


def test_batch_independence(run_dir):
    m = hear.load_model(run_dir)
    audio = _audio(4, 0.8, seed=1)
    full_s = hear.get_scene_embeddings(audio, m)
    full_t, _ = hear.get_timestamp_embeddings(audio, m)
    for i in range(4):
        one_s = hear.get_scene_embeddings(audio[i:i + 1], m)
        one_t, _ = hear.get_timestamp_embeddings(audio[i:i + 1], m)
        assert torch.allclose(one_s, full_s[i:i + 1], atol=1e-5)
        assert torch.allclose(one_t, full_t[i:i + 1], atol=1e-5)
    other = audio.clone()
    other[1:] = 0.5 * torch.randn_like(other[1:])
    assert torch.allclose(hear.get_scene_embeddings(other, m)[0], full_s[0], atol=1e-5)


def test_short_audio_is_padded(run_dir):
    m = hear.load_model(run_dir)
    emb, ts = hear.get_timestamp_embeddings(_audio(2, 0.02), m)
    assert emb.shape[0] == 2 and emb.shape[1] >= 1 and torch.isfinite(emb).all()
