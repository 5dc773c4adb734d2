"""Collective helpers for batch-coupled losses (no-ops without ``torch.distributed``).

Batch-coupled objectives (Barlow Twins' cross-correlation, SimCLR's NT-Xent, COLA's in-batch
negatives, the MoCo queue of DeLoRes-M) must see the *global* batch when the trainer runs
under DistributedDataParallel (DDP). The helpers here make that exact:

* :func:`gather_with_grad` concatenates a tensor from all ranks along dim 0. Its backward sums
  the incoming gradient over ranks (all-reduce) and returns this rank's slice, like
  ``torch.distributed.nn.functional.all_gather``. Together with DDP's gradient *averaging* this
  reproduces single-process training on the concatenated batch:

  - if every rank computes the same full-batch loss ``L(Z)`` (Barlow Twins), rank ``r`` receives
    ``W * dL/dz_r`` and DDP's mean over ``W`` ranks gives ``dL/dtheta``;
  - if rank ``r`` computes the loss rows of its own anchors against the gathered candidates,
    scaled as ``L_r = W / N * sum(local rows)`` (so ``mean_r L_r`` is the full-batch mean over
    ``N`` rows), DDP's mean again gives ``dL/dtheta``. :func:`sync_value` then makes the
    *reported* value equal on every rank without touching the gradient.

* :func:`gather_no_grad` is the detached version (MoCo key enqueue).

Ranks may hold different batch sizes (a ragged last batch): sizes are exchanged first and the
tensors padded for the collective, so offsets stay exact.

BatchNorm inside projectors is not batch-coupled by these helpers: the trainer converts BN
layers to ``nn.SyncBatchNorm`` under DDP (``nn.SyncBatchNorm.convert_sync_batchnorm``), which
is what makes projector statistics global.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

__all__ = [
    "is_distributed",
    "world_size",
    "rank",
    "gather_sizes",
    "gather_with_grad",
    "gather_no_grad",
    "all_reduce_mean",
    "sync_value",
]


def is_distributed() -> bool:
    """True when a default process group is initialised."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def gather_sizes(n: int, device: torch.device | str = "cpu") -> list[int]:
    """Leading sizes of the local tensors of all ranks (``[n]`` when not distributed)."""
    if not is_distributed():
        return [int(n)]
    t = torch.tensor([int(n)], dtype=torch.long, device=device)
    out = [torch.zeros_like(t) for _ in range(world_size())]
    dist.all_gather(out, t)
    return [int(o.item()) for o in out]


def _all_gather_cat(t: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    t = t.contiguous()
    m = max(sizes)
    if t.shape[0] < m:  # pad ragged batches to a common size for the collective
        pad = t.new_zeros((m - t.shape[0],) + tuple(t.shape[1:]))
        t = torch.cat([t, pad], 0)
    bufs = [torch.empty_like(t) for _ in sizes]
    dist.all_gather(bufs, t)
    return torch.cat([b[:s] for b, s in zip(bufs, sizes)], 0)


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, t: torch.Tensor, sizes: list[int]) -> torch.Tensor:  # type: ignore[override]
        r = rank()
        ctx.start = sum(sizes[:r])
        ctx.stop = ctx.start + sizes[r]
        return _all_gather_cat(t, sizes)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start : ctx.stop], None


def gather_with_grad(t: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """All-gather ``t`` along dim 0 keeping the graph; backward sums over ranks, returns the local slice.

    ``sizes`` (from :func:`gather_sizes`) may be passed to avoid a second size exchange.
    Returns ``t`` itself when not distributed.
    """
    if not is_distributed():
        return t
    if sizes is None:
        sizes = gather_sizes(t.shape[0], t.device)
    return _GatherWithGrad.apply(t, sizes)


@torch.no_grad()
def gather_no_grad(t: torch.Tensor, sizes: list[int] | None = None) -> torch.Tensor:
    """All-gather ``t`` along dim 0, detached (``t.detach()`` when not distributed)."""
    if not is_distributed():
        return t.detach()
    if sizes is None:
        sizes = gather_sizes(t.shape[0], t.device)
    return _all_gather_cat(t.detach(), sizes)


@torch.no_grad()
def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    """Mean of a (detached) tensor over ranks; a detached copy when not distributed."""
    t = t.detach().clone()
    if is_distributed():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        t /= world_size()
    return t


def sync_value(loss: torch.Tensor) -> torch.Tensor:
    """Return ``loss`` whose *value* is the mean over ranks and whose gradient is unchanged.

    Used by losses that compute only the local rows of a global objective: every rank then
    reports the full-batch loss, while backward still flows through the local part.
    """
    if not is_distributed():
        return loss
    return loss + (all_reduce_mean(loss) - loss).detach()
