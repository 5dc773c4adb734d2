"""AutoEncoder and Audio2Vec (CBoW, skip-gram) of Tagliasacchi et al. 2019 (Secs. 3-4).

* ``audio2vec_cbow``: the 2P context slices ``X(-P..-1), X(1..P)`` are encoded by the same
  encoder, their embeddings *concatenated* ("These embeddings are then concatenated and fed into a
  decoder", Sec. 3; ``z(0) = [z(-P), ..., z(-1), z(1), ..., z(P)]``) and decoded into the centre
  slice; loss ``MSE(X(0), Dec(z(0)))``.
* ``audio2vec_skipgram``: ``Dec(Enc(X(0)))`` reconstructs the 2P context slices (the decoder's
  last layer has 2P output channels); loss = average MSE over the 2P slices.
* ``autoencoder``: ``Dec(Enc(X))`` reconstructs ``X`` with the same encoder/decoder pair (Sec. 4).

The decoder mirrors the encoder ("reversing the order of the layers in the encoder and replacing
max-pooling with nearest-neighbor upsampling", Sec. 3); it comes from ``models.build_decoder``
(mirrored for ``mobile``, a generic MLP decoder otherwise) unless one is passed in.
Hyperparameters (Sec. 4): Adam with default betas, lr 1e-3, batch 256, P = 2, G = 2 (G is the
sampler's), N = 96 frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from . import losses as L
from .base import OBJECTIVES, HParams, Objective


@dataclass
class ReconstructionHParams(HParams):
    optimizer: str = "adam"
    lr: float = 1e-3
    batch_size: int = 256
    n_frames: int = 96
    context_slices: int = 2  # P, slices on each side of the target (CBoW / skip-gram)
    total_steps: int | None = 300_000  # Sec. 4: losses and probes "saturate after approximately 300k iterations"
    source: str = "Tagliasacchi et al. 2019, Sec. 4 (Adam lr 1e-3, batch 256, P=2, G=2, N=96)"


def build_default_decoder(encoder: nn.Module, in_dim: int, out_slices: int, n_frames: int) -> nn.Module:
    """``models.build_decoder``: embedding of size ``in_dim`` -> ``[B, out_slices, n_mels, n_frames]``
    (mirrored convolutional decoder for ``mobile``, generic MLP decoder otherwise)."""
    from models import build_decoder

    n_mels = int(getattr(encoder, "n_mels", 64))
    return build_decoder(encoder, in_dim=in_dim, n_frames=n_frames, n_mels=n_mels, out_slices=out_slices)


class _Reconstruction(Objective):
    HParams = ReconstructionHParams
    default_encoder = ("mobile", {})

    def __init__(self, encoder: nn.Module, decoder: nn.Module | None = None, **hparams: Any):
        super().__init__(encoder, **hparams)
        d = int(encoder.embedding_dim)
        in_dim, out_slices = self._decoder_io(d, self.hparams.context_slices)
        self.decoder = decoder if decoder is not None else build_default_decoder(
            encoder, in_dim, out_slices, self.hparams.n_frames
        )

    @staticmethod
    def _decoder_io(d: int, p: int) -> tuple[int, int]:  # pragma: no cover - overridden
        raise NotImplementedError

    def _decode(self, z: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        out = self.decoder(z)
        if out.shape != target.shape:
            raise ValueError(
                f"{self.name}: decoder output {tuple(out.shape)} does not match target {tuple(target.shape)}"
            )
        return out


@OBJECTIVES.register("autoencoder")
class AutoEncoderObjective(_Reconstruction):
    """``autoencoder``: ``MSE(X, Dec(Enc(X)))`` (Tagliasacchi et al. 2019, Sec. 4). Batch: ``x``."""

    sampler = "crop"
    batch_keys = ("x",)

    @staticmethod
    def _decoder_io(d: int, p: int) -> tuple[int, int]:
        return d, 1

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        (x,) = self._require(batch, "x")
        rec = self._decode(self.encoder(x), x)  # x is [B, 1, F, N] == [B, out_slices=1, F, N]
        loss = L.reconstruction_mse(rec, x)
        return {"loss": loss}


@OBJECTIVES.register("audio2vec_cbow")
class Audio2VecCBoW(_Reconstruction):
    """``audio2vec_cbow``: centre slice from the concatenated embeddings of the 2P context slices.

    Batch: ``context`` ``[B, 2P, 1, F, N]`` (order -P..-1, +1..+P), ``center`` ``[B, 1, F, N]``.
    """

    sampler = "context"
    batch_keys = ("context", "center")

    @staticmethod
    def _decoder_io(d: int, p: int) -> tuple[int, int]:
        return 2 * p * d, 1

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        context, center = self._require(batch, "context", "center")
        b, s = context.shape[:2]
        if s != 2 * self.hparams.context_slices:
            raise ValueError(f"{self.name}: expected 2P={2 * self.hparams.context_slices} context slices, got {s}")
        z = self.encoder(context.reshape(b * s, *context.shape[2:]))  # [B*2P, d]
        z = z.reshape(b, s * z.shape[-1])  # concatenation in slice order
        rec = self._decode(z, center)
        return {"loss": L.reconstruction_mse(rec, center)}


@OBJECTIVES.register("audio2vec_skipgram")
class Audio2VecSkipGram(_Reconstruction):
    """``audio2vec_skipgram``: the 2P context slices from the centre slice's embedding.

    Batch: ``context`` ``[B, 2P, 1, F, N]``, ``center`` ``[B, 1, F, N]``. The decoder emits
    ``[B, 2P, F, N]`` in the sampler's slice order.
    """

    sampler = "context"
    batch_keys = ("context", "center")

    @staticmethod
    def _decoder_io(d: int, p: int) -> tuple[int, int]:
        return d, 2 * p

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        context, center = self._require(batch, "context", "center")
        target = context.squeeze(2)  # [B, 2P, F, N]
        rec = self._decode(self.encoder(center), target)
        return {"loss": L.reconstruction_mse(rec, target)}
