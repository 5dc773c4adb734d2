"""DeLoRes-M (Ghosh et al. 2022, Secs. III-A, III-B-4 eq. 5, V-B-2).

MoCo student ``f`` / teacher ``h`` (teacher = EMA of the student, momentum 0.99, ``after_step``):

* contrastive part: the encoder embedding goes through a single linear layer ``l`` to 128-d;
  InfoNCE (eq. 5, tau = 0.07) between the student output of one view and the teacher key of the
  other view, with negatives from a FIFO queue of past teacher keys; computed for both pairs
  ``(x^A, x^B)`` and ``(x^B, x^A)`` and summed ("Our final loss is computed across all positive
  pairs (x^A, x^B) and (x^B, x^A)").
* decorrelation part: the output of each of the encoder's conv blocks (``encoder.blocks()``;
  AudioNTT's B1-B3) is mean-pooled over frequency and time and passed through a per-block projector
  (the DeLoRes-S projector with 2048 units); Barlow Twins (lambda 0.0051) between student block
  projection of one view and teacher block projection of the other view, both directions, summed
  over blocks and weighted by 5e-5 (Sec. V-B-2).

Teacher = EMA copies of encoder, ``l`` and the block projectors (gradients flow into the student
only). Optimisation (Sec. V-B-2): SGD momentum 0.9, weight decay 1e-4, batch 512, otherwise "the
exact same ... hyperparameters" as DeLoRes-S: lr 0.2 (weights) / 0.0048 (biases, BN), x batch/256,
10 warm-up epochs, cosine decay to 1/1000, 100 epochs.

Choices where the paper is silent (docs/objectives.md): queue size K = 65536 and L2-normalised
queries/keys (MoCo, He et al. 2020), K capped by the trainer at half the pretraining clips
(``data_hparams``, ``queue_cap``); keys of both directions are enqueued each step (2B keys per
step, from all ranks under DDP); no shuffle-BN (the paper does not mention it; under DDP the trainer
uses SyncBatchNorm); projector dropout 0.3 as in DeLoRes-S; weight decay only on weights.
Student and teacher take the embedding and the blocks from one pass of the trunk
(``Encoder.embed_and_blocks``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from models import distributed as D

from . import losses as L
from .base import OBJECTIVES, HParams, Objective, make_target, probe_encoder
from .heads import barlow_projector

log = logging.getLogger("melstream.models")


def queue_cap(num_clips: int) -> int:
    """Largest power of two <= ``num_clips / 2``: MoCo's dictionary is "a sampled subset of all data" (He et
    al. 2020 Sec. 3.2: 65,536 keys of ImageNet's 1.28 M images; G22: of 0.25 M clips, Table V, 0.26 keys per
    clip). A queue longer than the dataset holds many keys of every clip, so each query meets crops of its
    own clip as negatives, as close to it as its positive. Half a key per clip leaves G22's setting as it is."""
    return 1 << max(int(num_clips) // 2, 1).bit_length() - 1


@dataclass
class DeLoResMHParams(HParams):
    optimizer: str = "sgd"
    lr: float = 0.2
    lr_bias: float = 0.0048
    lr_scale_batch: bool = True
    batch_size: int = 512
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "warmup_cosine"
    warmup_epochs: float = 10.0
    epochs: int | None = 100
    final_lr_ratio: float = 1e-3
    ema_tau: float | None = 0.99
    n_frames: int = 96
    temperature: float = 0.07
    queue_size: int = 65536
    out_dim: int = 128
    block_proj_units: int = 2048
    proj_dropout: float = 0.3
    norm: str | None = "bn"
    barlow_weight: float = 5e-5
    lambd: float = 0.0051
    bn_eps: float = 1e-5
    block_indices: tuple[int, ...] | None = None  # None: every block encoder.blocks() returns
    bn_splits: int = 1  # > 1: MoCo's shuffle BN on one process (He et al. 2020 Sec. 3.3); 1 = off (the default)
    source: str = (
        "Ghosh et al. 2022, Sec. V-B-2 (m 0.99, tau 0.07, 128-d, block projectors 2048, weight 5e-5, "
        "SGD momentum 0.9, wd 1e-4, batch 512); queue size from MoCo (He et al. 2020)"
    )


@OBJECTIVES.register("delores_m")
class DeLoResMObjective(Objective):
    """``delores_m``. Batch: ``x1``, ``x2`` ``[B, 1, F, N]`` (two augmented views)."""

    batch_coupled = True
    sampler = "views"
    needs_blocks = True
    batch_keys = ("x1", "x2")
    test_config = {"hparams": {"block_proj_units": 16, "queue_size": 64, "out_dim": 8},
                   "encoder": ("audio_ntt", {"d": 512})}
    default_encoder = ("audio_ntt", {"d": 2048})
    HParams = DeLoResMHParams
    ema_pairs = (
        ("target_encoder", "encoder"),
        ("target_head", "head"),
        ("target_block_projectors", "block_projectors"),
    )

    queue: torch.Tensor
    queue_ptr: torch.Tensor

    def __init__(self, encoder: nn.Module, **hparams: Any):
        super().__init__(encoder, **hparams)
        hp = self.hparams
        if int(hp.bn_splits) < 1:
            raise ValueError(f"delores_m: bn_splits must be >= 1 (got {hp.bn_splits})")
        blocks = probe_encoder(encoder, "blocks", hp.n_frames)
        self._block_idx = self._select(len(blocks), hp.block_indices)
        chans = [int(blocks[i].shape[1]) for i in self._block_idx]
        self.head = nn.Linear(int(encoder.embedding_dim), hp.out_dim)
        self.block_projectors = nn.ModuleList(
            barlow_projector(c, hp.block_proj_units, norm=hp.norm, dropout=hp.proj_dropout) for c in chans
        )
        self.target_encoder = make_target(self.encoder)
        self.target_head = make_target(self.head)
        self.target_block_projectors = make_target(self.block_projectors)
        self.register_buffer("queue", F.normalize(torch.randn(hp.queue_size, hp.out_dim), dim=1))
        self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long))

    @classmethod
    def data_hparams(cls, vocabulary: list[str], num_clips: int | None = None,
                     given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """``queue_size`` capped at ``queue_cap(num_clips)`` when the data are smaller than the default queue
        (and the user did not set it)."""
        if not num_clips or "queue_size" in (given or {}):
            return {}
        k, cap = int(cls.HParams().queue_size), queue_cap(num_clips)
        if k <= cap:
            return {}
        log.warning("delores_m: queue_size %d is too long for the %d clips of the pretraining data; using %d so "
                    "the queue holds other clips' keys, not crops of the query's own clip (--hp queue_size=N "
                    "overrides)",
                    k, num_clips, cap)
        return {"queue_size": cap}

    @staticmethod
    def _select(n: int, idx: tuple[int, ...] | None) -> list[int]:
        if idx is None:
            return list(range(n))
        out = [i % n for i in idx]
        if any(i >= n or i < -n for i in idx):
            raise ValueError(f"delores_m: block_indices {idx} out of range for {n} blocks")
        return out

    # ------------------------------------------------------------------ pieces
    def _branch(self, encoder: nn.Module, head: nn.Module, projectors: nn.ModuleList,
                x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``l(f(x))`` and the projected, mean-pooled blocks, from one pass of the trunk."""
        joint = getattr(encoder, "embed_and_blocks", None)  # a duck-typed encoder may only have forward/blocks
        emb, blocks = joint(x) if joint is not None else (encoder(x), encoder.blocks(x))
        return head(emb), [proj(blocks[i].mean(dim=(2, 3))) for proj, i in zip(projectors, self._block_idx)]

    def _student(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self._branch(self.encoder, self.head, self.block_projectors, x)

    def _teacher_one(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self._branch(self.target_encoder, self.target_head, self.target_block_projectors, x)

    @torch.no_grad()
    def _teacher(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self._groups(self._teacher_one, x, shuffle=True)

    def _groups(self, fn: Any, x: torch.Tensor, shuffle: bool = False) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``fn`` on ``bn_splits`` groups of rows, so BatchNorm statistics are per group, outputs in input order.
        ``shuffle``: the rows are permuted before grouping (the keys), so a query and its key see different
        groups' statistics -- MoCo's shuffle BN (He et al. 2020 Sec. 3.3) with groups in place of GPUs,
        which stops the contrastive task from being solved through the batch statistics."""
        n = int(self.hparams.bn_splits)
        if n <= 1 or x.shape[0] < 2 * n:
            return fn(x)
        perm = torch.randperm(x.shape[0], device=x.device) if shuffle else None
        xs = x if perm is None else x[perm]
        parts = [fn(c) for c in xs.chunk(n)]
        k = torch.cat([p[0] for p in parts])
        blocks = [torch.cat([p[1][i] for p in parts]) for i in range(len(parts[0][1]))]
        if perm is not None:
            inv = torch.argsort(perm)
            k, blocks = k[inv], [b[inv] for b in blocks]
        return k, blocks

    @torch.no_grad()
    def _enqueue(self, *keys: torch.Tensor) -> None:
        """Enqueue teacher keys of the global batch; each tensor is gathered over ranks separately,
        so the order matches single-process training on the concatenated batch."""
        new = F.normalize(torch.cat([D.gather_no_grad(k) for k in keys], 0), dim=1)
        k = self.queue.shape[0]
        if new.shape[0] > k:
            new = new[-k:]
        n = new.shape[0]
        ptr = int(self.queue_ptr)
        idx = (ptr + torch.arange(n, device=self.queue.device)) % k
        self.queue[idx] = new.to(self.queue.dtype)
        self.queue_ptr.fill_((ptr + n) % k)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        xa, xb = self._require(batch, "x1", "x2")
        hp = self.hparams
        qa, sa = self._groups(self._student, xa)
        qb, sb = self._groups(self._student, xb)
        ka, ta = self._teacher(xa)
        kb, tb = self._teacher(xb)

        l_nce = L.info_nce_queue_loss(qa, kb, self.queue, hp.temperature) + L.info_nce_queue_loss(
            qb, ka, self.queue, hp.temperature
        )
        l_bt = sum(
            L.barlow_twins_loss(s1, t2, hp.lambd, hp.bn_eps) + L.barlow_twins_loss(s2, t1, hp.lambd, hp.bn_eps)
            for s1, s2, t1, t2 in zip(sa, sb, ta, tb)
        )
        loss = l_nce + hp.barlow_weight * l_bt
        if self.training:
            self._enqueue(kb, ka)
        return {"loss": loss, **self._detach_logs(loss_infonce=l_nce, loss_barlow=l_bt)}

    def param_groups(self, batch_size: int | None = None) -> list[dict[str, Any]]:
        """SGD groups: weights (lr 0.2 x B/256, weight decay 1e-4) and biases/BN (lr 0.0048 x B/256, no decay)."""
        return self.weight_bias_groups(batch_size)
