"""Shared helpers of the eval tests: a tiny encoder that follows docs/contracts.md, WAV writers, exports.

(No tests here; the other ``test_eval_*`` modules import it.)
"""
from __future__ import annotations

import json
import os

import numpy as np
import torch
from torch import nn

TINY = "eval_tiny"


def tiny_encoder_class():
    """Register (once) and return a ~1k-parameter encoder with the Encoder interface."""
    from models import ENCODERS
    from models.base import Encoder

    if TINY in ENCODERS:
        return ENCODERS[TINY]

    @ENCODERS.register(TINY)
    class TinyEncoder(Encoder):
        def __init__(self, n_mels: int = 64, d: int = 16) -> None:
            super().__init__()
            self.n_mels = n_mels
            self.c1 = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
            self.c2 = nn.Sequential(nn.Conv2d(4, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
            self.fc = nn.Linear(8, d)
            self.embedding_dim, self.frame_dim, self.time_stride, self.min_frames = d, 8, 4, 4

        def blocks(self, x):
            self.check_input(x)
            a = self.c1(x)
            return [a, self.c2(a)]

        def frames(self, x):
            return self.blocks(x)[-1].mean(dim=2).transpose(1, 2)

        def pool_frames(self, frames):
            return self.fc(frames.mean(dim=1))

    return TinyEncoder


def unregister_tiny() -> None:
    """Leave the global encoder registry as we found it (other test modules iterate over it)."""
    from models import ENCODERS

    ENCODERS.remove(TINY)


def tiny_registered():
    """Body of a module-scoped autouse fixture: the tiny encoder exists only while the module runs."""
    tiny_encoder_class()
    yield
    unregister_tiny()


def export_encoder(run_dir: str, name: str = TINY, seed: int = 0, preset: str = "byol_a",
                   input_norm=None, metrics: bool = True, **kwargs) -> str:
    """Export a randomly initialised encoder as a run dir (+ a fake metrics.jsonl)."""
    from models import build_encoder
    from shards.frontend import get_preset
    from train.export import save_encoder

    if name == TINY:
        tiny_encoder_class()
    torch.manual_seed(seed)
    enc = build_encoder(name, **kwargs)
    os.makedirs(run_dir, exist_ok=True)
    save_encoder(run_dir, enc, name, enc.config(), get_preset(preset).to_dict(), "test", 10,
                 input_norm if input_norm is not None else {"mean": -6.0, "std": 3.0})
    if metrics:
        with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
            for step in range(0, 101, 10):
                row = {"step": step, "loss": 1.0 / (1 + step)}
                if step % 50 == 0:
                    row["probe/demo_family/knn_accuracy"] = 0.25 + step / 200
                f.write(json.dumps(row) + "\n")
    return run_dir


def wav(path: str, seconds: float = 0.05, freq: float = 440.0) -> str:
    from ingest.decode import encode_wav

    os.makedirs(os.path.dirname(path), exist_ok=True)
    t = np.arange(int(seconds * 16000)) / 16000
    encode_wav(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32))
    return path


def touch(path: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()
    return path


def write(path: str, text: str) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path
