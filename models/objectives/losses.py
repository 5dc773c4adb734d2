"""Pure loss functions of the objectives (tensor in, scalar out).

Every batch-coupled loss here (``barlow_twins_loss``, ``nt_xent_loss``, ``bilinear_ce_loss``)
gathers over ranks through :mod:`models.distributed` and is exact under DDP (see that module);
outside ``torch.distributed`` they are plain single-process formulas. Per-sample losses
(reconstruction, temporal gap, triplet, BYOL, InfoNCE against a queue, frame and pitch losses)
return the mean over the local batch: with equal per-rank batches DDP's gradient averaging
equals the global mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from models import distributed as D
from shards.norm import standardize

__all__ = [
    "upcast",
    "standardize_per_example",
    "soft_target_ce",
    "reconstruction_mse",
    "temporal_gap_loss",
    "triplet_margin_loss",
    "bilinear_logits",
    "bilinear_ce_loss",
    "frame_contrastive_loss",
    "pitch_regression_loss",
    "byol_loss",
    "batch_standardize",
    "cross_correlation",
    "barlow_twins_loss",
    "nt_xent_loss",
    "info_nce_queue_loss",
]


def upcast(t: torch.Tensor) -> torch.Tensor:
    """Half-precision tensors to float32 (losses are evaluated in at least single precision)."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def soft_target_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy against each row's label distribution (``labels / labels.sum()``: a
    one-hot row gives the usual CE, a mixed row its mixture); rows without labels are left out."""
    mass = labels.sum(-1)
    keep = mass > 0
    if not bool(keep.any()):
        return logits.sum() * 0.0
    target = labels[keep] / mass[keep, None]
    return -(target * F.log_softmax(logits[keep].float(), -1)).sum(-1).mean()


def standardize_per_example(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """``(x - mean) / sqrt(var + eps)`` with statistics over all non-batch dims of each example: the one
    formula of :func:`shards.norm.standardize` (Wang et al. 2022, App. C; docs/objectives.md)."""
    return standardize(x, eps)


def reconstruction_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all elements (Tagliasacchi et al. 2019, Sec. 3: ``||X - X_hat||``;
    for skip-gram "the average mean-square error computed across the 2P reconstructed slices")."""
    return F.mse_loss(pred, target.to(pred.dtype))


def temporal_gap_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy between the soft gap target ``d`` in [0, 1] and ``sigmoid(logits)``.

    Tagliasacchi et al. 2019, Sec. 3 (TemporalGap): ``L_CE(d, d_hat)`` =
    ``-[d log d_hat + (1 - d) log(1 - d_hat)]``, averaged over the batch; computed from logits
    for numerical stability.
    """
    return F.binary_cross_entropy_with_logits(logits.reshape(-1), target.reshape(-1).to(logits.dtype))


def triplet_margin_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 0.1,
    squared: bool = True,
    normalize: bool = True,
) -> torch.Tensor:
    """``mean_i [ d(a_i, p_i) - d(a_i, n_i) + margin ]_+`` (Jansen et al. 2018, used by
    Tagliasacchi et al. 2019 Sec. 4 as TripletLoss).

    ``d`` is the squared Euclidean distance (``squared=True``, Jansen's form) or the Euclidean
    distance. With ``normalize=True`` embeddings are first projected onto the unit sphere, so a
    fixed margin cannot be met by merely scaling the embeddings up.
    """
    if normalize:
        anchor, positive, negative = (F.normalize(t, dim=-1) for t in (anchor, positive, negative))
    dp = (anchor - positive).pow(2).sum(-1)
    dn = (anchor - negative).pow(2).sum(-1)
    if not squared:
        dp, dn = dp.clamp_min(1e-12).sqrt(), dn.clamp_min(1e-12).sqrt()
    return F.relu(dp - dn + margin).mean()


def bilinear_logits(z: torch.Tensor, z_prime: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``s[i, j] = z_i^T W z'_j`` (Kuroyanagi & Komatsu 2022, eq. 1 / eq. 3). ``weight`` is ``W``."""
    return z @ weight @ z_prime.transpose(-1, -2)


def bilinear_ce_loss(z_anchor: torch.Tensor, z_positive: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Multiclass cross-entropy over bilinear similarities with in-batch negatives.

    Kuroyanagi & Komatsu 2022, eqs. 1-2 (COLA): for anchor ``x_i`` the positive is ``x'_i`` and
    the distractors are the ``x'_j`` (j != i) of the *global* batch. Rank ``r`` evaluates its own
    anchors against the gathered candidates; the value is synchronised across ranks.
    """
    sizes = D.gather_sizes(z_anchor.shape[0], z_anchor.device)
    cand = D.gather_with_grad(z_positive, sizes)
    n_global = sum(sizes)
    offset = sum(sizes[: D.rank()])
    logits = bilinear_logits(z_anchor, cand, weight)  # [B_local, N]
    labels = torch.arange(z_anchor.shape[0], device=z_anchor.device) + offset
    loss = F.cross_entropy(upcast(logits), labels, reduction="sum") * (D.world_size() / n_global)
    return D.sync_value(loss)


def frame_contrastive_loss(z: torch.Tensor, weight: torch.Tensor, m: int = 0) -> torch.Tensor:
    """Frame-level contrastive loss of Kuroyanagi & Komatsu 2022, eq. 4, for one view.

    ``z``: frame representations ``[B, T', d]`` of one segment each. For target frame ``t`` the
    positives are the frames ``t + tau`` with ``|tau| <= m`` inside the segment (the set T'' of
    ``2m + 1`` offsets, clipped at the edges) and the denominator runs over all ``T'`` frames of
    the same segment (no cross-sample negatives: "calculates the cross-entropy for the similarity
    of the embedding vectors of each sample and then ... averages"). Returned value:
    ``-mean_{n,t} log( sum_{tau in T''} exp s(t, t+tau) / sum_i exp s(t, i) )``.
    """
    s = upcast(bilinear_logits(z, z, weight))  # [B, T, T]
    t = z.shape[1]
    idx = torch.arange(t, device=z.device)
    pos = (idx[:, None] - idx[None, :]).abs() <= m  # [T, T]
    num = torch.logsumexp(s.masked_fill(~pos, float("-inf")), dim=-1)
    den = torch.logsumexp(s, dim=-1)
    return -(num - den).mean()


def pitch_regression_loss(p_shifted: torch.Tensor, p_orig: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Kuroyanagi & Komatsu 2022, eq. 6: ``|| g(f(x_hat)) - g(f(x)) - a ||^2``.

    ``p_shifted``, ``p_orig``: per-frame pitch outputs ``[B, T']``; ``shift``: ``[B]`` target
    ``a`` broadcast over frames. Squared norm over frames, mean over the batch.
    """
    a = shift.to(p_shifted.dtype).reshape(-1, 1)
    return (p_shifted - p_orig - a).pow(2).sum(-1).mean()


def byol_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-example ``|| q/|q| - z'/|z'| ||^2 = 2 - 2 cos(q, z')`` (Niizumi et al. 2021, eq. 1),
    returned per example ``[B]`` (the caller symmetrises and averages)."""
    return 2.0 - 2.0 * F.cosine_similarity(prediction, target.detach(), dim=-1)


def batch_standardize(z: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Affine-free BatchNorm over dim 0 in training mode: ``(z - mean) / sqrt(var_biased + eps)``."""
    mean = z.mean(0, keepdim=True)
    var = z.var(0, unbiased=False, keepdim=True)
    return (z - mean) / torch.sqrt(var + eps)


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Ghosh et al. 2022, eq. 4: ``C_ij`` over the batch of the batch-normalised embeddings
    (``C = BN(z1)^T BN(z2) / N``, the Barlow Twins implementation of the normalised correlation)."""
    n = z1.shape[0]
    return batch_standardize(upcast(z1), eps).T @ batch_standardize(upcast(z2), eps) / n


def barlow_twins_loss(z1: torch.Tensor, z2: torch.Tensor, lambd: float = 0.0051, eps: float = 1e-5) -> torch.Tensor:
    """Ghosh et al. 2022, eq. 3 (Barlow Twins): ``sum_i (1 - C_ii)^2 + lambda sum_{i != j} C_ij^2``.

    ``z1``, ``z2``: local projector outputs ``[B, C]``. Both are gathered over ranks with gradient
    and the cross-correlation is computed on the global batch, identically on every rank (see
    :mod:`models.distributed` for why this is exact under DDP).
    """
    sizes = D.gather_sizes(z1.shape[0], z1.device)
    z1 = D.gather_with_grad(z1, sizes)
    z2 = D.gather_with_grad(z2, sizes)
    c = cross_correlation(z1, z2, eps)
    diag = torch.diagonal(c)
    on = (1.0 - diag).pow(2).sum()
    off = c.pow(2).sum() - diag.pow(2).sum()
    return on + lambd * off


def nt_xent_loss(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent (SimCLR; Wang et al. 2022 Sec. 2.2 / App. C, tau = 0.1) over the global batch.

    The 2N views are L2-normalised; for each view the positive is the other view of the same
    example and the other ``2N - 2`` views are negatives; the loss is the mean over all 2N anchors
    of ``-log softmax(sim / tau)[positive]`` (self-similarity excluded).
    """
    z1 = F.normalize(upcast(z1), dim=-1)
    z2 = F.normalize(upcast(z2), dim=-1)
    b = z1.shape[0]
    sizes = D.gather_sizes(b, z1.device)
    n = sum(sizes)
    off = sum(sizes[: D.rank()])
    cand = torch.cat([D.gather_with_grad(z1, sizes), D.gather_with_grad(z2, sizes)], 0)  # [2N, D]
    q = torch.cat([z1, z2], 0)  # [2B, D]
    logits = q @ cand.T / temperature  # [2B, 2N]
    ar = torch.arange(b, device=z1.device)
    self_idx = torch.cat([off + ar, n + off + ar])
    pos_idx = torch.cat([n + off + ar, off + ar])
    logits = logits.masked_fill(
        torch.zeros_like(logits, dtype=torch.bool).scatter_(1, self_idx[:, None], True), float("-inf")
    )
    loss = F.cross_entropy(logits, pos_idx, reduction="sum") * (D.world_size() / (2 * n))
    return D.sync_value(loss)


def info_nce_queue_loss(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """InfoNCE against a queue of negatives (MoCo; Ghosh et al. 2022, eq. 5).

    ``q``: student outputs ``[B, D]``; ``k``: teacher keys ``[B, D]`` (positives, no gradient);
    ``queue``: ``[K, D]`` past teacher keys (negatives). All are L2-normalised here. Returns
    ``mean_i -log( exp(q_i.k_i/tau) / (exp(q_i.k_i/tau) + sum_j exp(q_i.queue_j/tau)) )``.
    """
    q = F.normalize(upcast(q), dim=-1)
    k = F.normalize(upcast(k.detach()), dim=-1).to(q.dtype)
    neg = F.normalize(upcast(queue.detach()), dim=-1).to(q.dtype)
    l_pos = (q * k).sum(-1, keepdim=True)
    l_neg = q @ neg.T
    logits = torch.cat([l_pos, l_neg], 1) / temperature
    labels = torch.zeros(q.shape[0], dtype=torch.long, device=q.device)
    return F.cross_entropy(logits, labels)
