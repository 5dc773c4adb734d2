"""The log-mel frontend, part of the shard contract (every manifest stores it): defined once, used by ingest
(shards), pipeline, train and eval (task audio).

Presets (16 kHz mono, ``log(mel_power + eps)``):

* ``tagliasacchi`` -- Tagliasacchi et al. 2019, Sec. 4: 25 ms window, 10 ms hop, 64 mel bins in
  60-7800 Hz.  The FFT size is not stated; 512 is the next power of two above the 400-sample window,
  which is what ``tf.signal.stft`` (the authors' toolkit) uses by default.  Also used by
  Kuroyanagi & Komatsu 2022.
* ``byol_a`` -- Niizumi et al. 2021, Sec. IV-A: 64 ms (1024-point) window and FFT, 10 ms hop,
  64 mel bins in 60-7800 Hz (the official BYOL-A ``MelSpectrogram`` settings).  Used by DeLoRes.
* ``hares`` -- Wang et al. 2022, Sec. 3: 25 ms window, 10 ms hop, 80 mel bins.  The paper gives
  no frequency range; we keep 60-7800 Hz like the other presets (choice documented in
  docs/shard-format.md) and a 512-point FFT as for ``tagliasacchi``.

* ``m2d`` -- Niizumi et al. 2023 (M2D), Sec. 4.1: 25 ms window and FFT (400 points), 10 ms hop, 80 mel bins
  in 50-8000 Hz.
* ``audio_mae`` -- Huang et al. 2022 (Audio-MAE), Sec. 4.1: 128 Kaldi-style filterbank bins, 25 ms window,
  10 ms hop, 20 Hz to Nyquist.  We keep torchaudio's HTK mel filters with a Hann window, so this is close
  to, not identical with, Kaldi fbank.  The 400-sample frame is zero-padded to a 1024-point FFT: at 512
  points (Kaldi's size) the lowest of 128 triangular filters falls between two FFT bins and is all zero.

``eps`` is ``torch.finfo(torch.float32).eps`` as in the official BYOL-A code.  With ``center=True``
a clip of ``n`` samples gives ``1 + n // hop`` frames (1001 for 10 s).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Mapping

import numpy as np
import torch

EPS = float(torch.finfo(torch.float32).eps)
#: the frontend every command uses unless told otherwise (the one place it is spelled)
DEFAULT_PRESET = "byol_a"


@dataclass(frozen=True)
class FrontendConfig:
    """All parameters of the log-mel transform; stored verbatim in every shard manifest."""

    name: str = DEFAULT_PRESET  # the field defaults below are that preset's
    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 160
    n_mels: int = 64
    f_min: float = 60.0
    f_max: float = 7800.0
    power: float = 2.0
    mel_scale: str = "htk"
    center: bool = True
    eps: float = EPS
    log: str = "natural"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "FrontendConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown frontend fields: {sorted(unknown)}")
        return cls(**dict(d))

    def hash(self) -> str:
        """Short stable hash of the config (sha256 of its canonical JSON)."""
        return config_hash(self.to_dict())

    def frames_for(self, n_samples: int) -> int:
        return 1 + n_samples // self.hop_length if self.center else 1 + (n_samples - self.n_fft) // self.hop_length

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length


def config_hash(d: Mapping[str, Any]) -> str:
    blob = json.dumps(dict(d), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


PRESETS: dict[str, FrontendConfig] = {
    "tagliasacchi": FrontendConfig(name="tagliasacchi", n_fft=512, win_length=400, hop_length=160, n_mels=64),
    "byol_a": FrontendConfig(name="byol_a", n_fft=1024, win_length=1024, hop_length=160, n_mels=64),
    "hares": FrontendConfig(name="hares", n_fft=512, win_length=400, hop_length=160, n_mels=80),
    "m2d": FrontendConfig(name="m2d", n_fft=400, win_length=400, hop_length=160, n_mels=80, f_min=50.0, f_max=8000.0),
    "audio_mae": FrontendConfig(name="audio_mae", n_fft=1024, win_length=400, hop_length=160, n_mels=128, f_min=20.0,
                                f_max=8000.0),
}


def get_preset(name: str) -> FrontendConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown frontend preset {name!r}; choose from {sorted(PRESETS)}") from None


class LogMel(torch.nn.Module):
    """``waveform [..., n] (float, 16 kHz) -> log-mel [..., n_mels, frames]`` via torchaudio."""

    def __init__(self, cfg: FrontendConfig):
        super().__init__()
        import torchaudio

        self.cfg = cfg
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=cfg.sample_rate, n_fft=cfg.n_fft, win_length=cfg.win_length,
            hop_length=cfg.hop_length, f_min=cfg.f_min, f_max=cfg.f_max, n_mels=cfg.n_mels,
            power=cfg.power, center=cfg.center, mel_scale=cfg.mel_scale,
        )

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(wav) + self.cfg.eps)


@lru_cache(maxsize=8)
def _module(cfg: FrontendConfig) -> LogMel:
    return LogMel(cfg).eval()


def _fast_logmel(m: LogMel, wav: torch.Tensor) -> torch.Tensor:
    """``m(wav)`` with the power spectrum as ``re^2 + im^2`` where torchaudio takes ``|X|`` (hypot) and squares
    it: the same values to float32 rounding (relative difference <= 2.4e-7 on 10-s clips, far below the float16
    step of the shards), a quarter of that step's CPU time and about a quarter less for the whole log-mel."""
    s, cfg = m.mel.spectrogram, m.cfg
    if s.power != 2.0:
        return m(wav)
    import torchaudio.functional as AF

    spec = AF.spectrogram(wav, s.pad, s.window, s.n_fft, s.hop_length, s.win_length, None, s.normalized,
                          s.center, s.pad_mode, s.onesided)
    power = spec.real.square() + spec.imag.square()
    return torch.log(m.mel.mel_scale(power) + cfg.eps)


def logmel(wav: np.ndarray, cfg: FrontendConfig) -> np.ndarray:
    """Log-mel of a mono float waveform at ``cfg.sample_rate``: float32 ``[n_mels, frames]`` (what ingest
    stores; :class:`LogMel` gives the same values to float32 rounding, see :func:`_fast_logmel`)."""
    if wav.ndim != 1:
        raise ValueError(f"expected mono waveform [n], got shape {wav.shape}")
    with torch.inference_mode():
        out = _fast_logmel(_module(cfg), torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)))
    return out.numpy()
