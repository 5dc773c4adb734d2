"""The HEAR 2021 API (Turian et al. 2022) for any exported melstream encoder.

hear-eval-kit imports a module and calls::

    model = load_model(path)                          # path: a run dir, or its encoder.json
    emb, ts = get_timestamp_embeddings(audio, model)  # audio: float32 [n_sounds, n_samples] at 16 kHz
    scene = get_scene_embeddings(audio, model)        # [n_sounds, model.scene_embedding_size]

``model`` is an ``nn.Module`` with ``sample_rate`` (16000), ``scene_embedding_size`` (the encoder's
``embedding_dim``) and ``timestamp_embedding_size``.  Audio goes through the checkpoint's own frontend
(``encoder.json``) and input normalisation, then:

* scene embeddings: ``encoder(logmel)`` over the whole clip (the encoder's own pooling);
* timestamp embeddings, ``timestamp_mode="frames"`` (default): ``encoder.frames(logmel)``, one
  embedding per output frame (``frame_dim`` wide, ``1 / frame_rate`` apart; timestamps are the frame
  centres in milliseconds); ``timestamp_mode="windows"``: ``encoder(window)`` of ``window_frames``
  log-mel frames centred every ``hop_ms`` (``embedding_dim`` wide) for encoders whose frame rate is too
  coarse for event detection.

The encoder runs in eval mode and in IEEE float32 (no TF32 on GPUs, so that GPU and CPU embeddings
agree); every sound is processed on its own log-mel (no padding across the batch), so an embedding
does not depend on the other sounds of the batch.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import Tensor, nn

from models.export import load_run
from shards.frontend import FrontendConfig, LogMel

from .embed import _unwrap, full_fp32, normalise

HOP_MS = 10.0


class HearModel(nn.Module):
    sample_rate = 16000

    def __init__(self, encoder: nn.Module, meta: dict, timestamp_mode: str = "frames", hop_ms: float = 50.0,
                 window_frames: int = 96, batch_size: int = 16):
        super().__init__()
        if timestamp_mode not in ("frames", "windows"):
            raise ValueError("timestamp_mode must be 'frames' or 'windows'")
        self.encoder = encoder.eval()
        self.meta = meta
        self.frontend = FrontendConfig.from_dict(meta["frontend"])
        if self.frontend.sample_rate != self.sample_rate:
            raise ValueError(f"frontend sample rate {self.frontend.sample_rate} != HEAR's {self.sample_rate}")
        self.logmel = LogMel(self.frontend)
        self.input_norm = meta.get("input_norm")
        enc = _unwrap(encoder)
        self.timestamp_mode, self.hop_ms, self.batch_size = timestamp_mode, hop_ms, batch_size
        self.window_frames = max(window_frames, int(getattr(enc, "min_frames", 1)))
        self.scene_embedding_size = int(enc.embedding_dim)
        self.timestamp_embedding_size = int(enc.frame_dim if timestamp_mode == "frames" else enc.embedding_dim)
        self.min_frames = int(getattr(enc, "min_frames", 1))
        self.time_stride = int(getattr(enc, "time_stride", 1))

    def mels(self, audio: Tensor, around: int = 0) -> Tensor:
        """``[B, n]`` waveform -> normalised ``[B, 1, F, T]``; silence pads T to ``min_frames`` (at the end)
        and, with ``around``, ``around // 2`` and ``around - around // 2`` frames on either side."""
        audio = audio.float()
        if audio.shape[-1] <= self.frontend.n_fft // 2:  # reflect padding of the STFT needs n_fft / 2 samples
            audio = torch.nn.functional.pad(audio, (0, self.frontend.n_fft // 2 + 1 - audio.shape[-1]))
        x = self.logmel(audio)[:, None]
        silence = float(np.log(self.frontend.eps))
        if x.shape[-1] < self.min_frames:
            x = torch.nn.functional.pad(x, (0, self.min_frames - x.shape[-1]), value=silence)
        if around:
            x = torch.nn.functional.pad(x, (around // 2, around - around // 2), value=silence)
        return normalise(x, self.input_norm)

    def forward(self, audio: Tensor) -> Tensor:  # scene embedding
        return self.encoder(self.mels(audio))


def load_model(model_file_path: str = "", device: Optional[str] = None, **kwargs) -> HearModel:
    """Load an exported encoder (a run dir with ``encoder.json`` + ``encoder.safetensors``)."""
    if not model_file_path:
        raise ValueError("load_model needs the path of an exported run dir (holding encoder.json)")
    enc, meta = load_run(model_file_path, device=device or "cpu")
    return HearModel(enc, meta, **kwargs).to(device or "cpu").eval()


def _check(audio: Tensor, model: HearModel) -> Tensor:
    if not isinstance(audio, Tensor):
        audio = torch.as_tensor(np.asarray(audio))
    if audio.dim() != 2:
        raise ValueError(f"audio must be [n_sounds, n_samples], got {tuple(audio.shape)}")
    return audio.to(next(model.parameters()).device, torch.float32)


@torch.no_grad()
def get_scene_embeddings(audio: Tensor, model: HearModel) -> Tensor:
    audio = _check(audio, model)
    with full_fp32():
        outs = [model(audio[i:i + model.batch_size]).float() for i in range(0, audio.shape[0], model.batch_size)]
    return torch.cat(outs) if outs else torch.zeros(0, model.scene_embedding_size)


@torch.no_grad()
def get_timestamp_embeddings(audio: Tensor, model: HearModel) -> tuple[Tensor, Tensor]:
    """``(embeddings [n_sounds, n_timestamps, size], timestamps [n_sounds, n_timestamps] in ms)``."""
    audio = _check(audio, model)
    enc = _unwrap(model.encoder)
    embs = []
    with full_fp32():
        for i in range(0, audio.shape[0], model.batch_size):
            if model.timestamp_mode == "frames":
                embs.append(enc.frames(model.mels(audio[i:i + model.batch_size])).float())
            else:
                embs.append(_window_embeddings(enc, model.mels(audio[i:i + model.batch_size], model.window_frames),
                                               model))
    if not embs:
        return torch.zeros(0, 0, model.timestamp_embedding_size), torch.zeros(0, 0)
    e = torch.cat(embs)
    n = e.shape[1]
    if model.timestamp_mode == "frames":
        s = model.time_stride
        ts = (torch.arange(n, dtype=torch.float64) * s + (s - 1) / 2.0) * HOP_MS
    else:
        ts = torch.arange(n, dtype=torch.float64) * _step(model) * HOP_MS
    return e, ts.float()[None].expand(e.shape[0], n).contiguous()


def _step(model: HearModel) -> int:
    return max(1, int(round(model.hop_ms / HOP_MS)))


def _window_embeddings(enc: nn.Module, xp: Tensor, model: HearModel, chunk: int = 256) -> Tensor:
    """``encoder(window)`` of ``window_frames`` frames centred every ``hop_ms`` from 0 ms to the clip's end
    (``xp`` is already padded with half a window of silence on each side)."""
    W, step = model.window_frames, _step(model)
    win = xp.unfold(-1, W, step)                          # [B, 1, F, n, W]
    b, _, f, n, _ = win.shape
    win = win.permute(0, 3, 1, 2, 4).reshape(b * n, 1, f, W)
    out = torch.cat([enc(win[i:i + chunk]).float() for i in range(0, win.shape[0], chunk)])
    return out.reshape(b, n, -1)
