"""End-to-end training of encoder + linear head on a task.

* ``finetune`` of a pretrained encoder: the transfer-learning setup of DeLoRes (Ghosh et al. 2022
  Sec. VI-B, "all the model weights are fine-tuned end-to-end on the downstream task").  Encoder lr
  1e-4, head lr 1e-3 (Adam).
* the ``supervised`` baseline: the same encoder from random weights trained end to end on the task,
  Adam lr 1e-3 (Tagliasacchi et al. 2019 Sec. 4: "task-specific fully supervised models, each using the
  same encoder, but trained end-to-end"; "learning rate 1e-3 for ... all the supervised models").

An epoch draws one random window of every training clip (of every clip several times on tasks with
fewer than 128 training clips, so that patience means a minimum amount of training), labelled with its clip's label (Tagliasacchi
et al. 2019 Sec. 4: "extracting equal-length slices uniformly at random from the original sample and
assign the corresponding label"); validation and test aggregate all windows per clip as the frozen
probes do (windows cut on demand from the shards by :class:`eval.windows.ClipWindows`, scores streamed
in batches, so memory does not grow with the task).  Early stopping (patience 10 epochs; validation
metric, ties broken by validation loss; :class:`eval.probes.EarlyStopping`) on the validation split, at
most 100 epochs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from shards.progress import progress_bar, show_status

from . import metrics as M
from .embed import _unwrap, normalise
from .probes import EarlyStopping, Fold, ProbeInput, head_loss, head_targets, summarise
from .windows import ClipWindows


@dataclass
class FinetuneConfig:
    max_epochs: int = 100
    patience: int = 10
    batch_size: int = 32
    lr_encoder: float = 1e-4
    lr_head: float = 1e-3
    seeds: tuple[int, ...] = (0,)
    max_steps: Optional[int] = None   # cap on optimiser steps per run (tests, quick looks)
    min_epoch_size: int = 128         # small tasks: an epoch draws at least this many (clip, window) pairs
    device: str = "cpu"


class _Net(nn.Module):
    def __init__(self, encoder: nn.Module, n_out: int, input_norm: Optional[dict]):
        super().__init__()
        self.encoder, self.input_norm = encoder, input_norm
        self.head = nn.Linear(int(_unwrap(encoder).embedding_dim), n_out)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(normalise(x, self.input_norm))


def _head_cpu(net: _Net, e: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.linear(e, net.head.weight.detach().cpu(), net.head.bias.detach().cpu())


def _clip_scores(net: _Net, windows: ClipWindows, idx: np.ndarray, multilabel: bool, aggregate: str,
                 batch: int = 128) -> np.ndarray:
    """Per-clip scores of clips ``idx``: the head on the mean window embedding (``mean``) or the summed
    per-window log-probabilities (``naive_bayes``), streamed through the windows in batches."""
    net.eval()
    dev = net.head.weight.device
    n_out = net.head.out_features
    total = torch.zeros(len(idx), n_out if aggregate != "mean" else int(_unwrap(net.encoder).embedding_dim))
    with torch.no_grad():
        for xb, owner in windows.batches(idx, batch):
            e = net.embed(torch.from_numpy(xb)[:, None].to(dev)).float().cpu()
            own = torch.from_numpy(owner)
            if aggregate == "mean":
                total.index_add_(0, own, e)
            else:
                z = _head_cpu(net, e)
                total.index_add_(0, own, z if multilabel else torch.log_softmax(z, dim=1))
    if aggregate != "mean":
        return total.numpy()
    counts = torch.as_tensor(windows.n_windows[np.asarray(idx, dtype=np.int64)], dtype=torch.float32)
    return _head_cpu(net, total / counts.clamp(min=1)[:, None]).numpy()


def epoch_plan(n_train: int, cfg: FinetuneConfig) -> tuple[int, int]:
    """``(optimiser steps per epoch, epochs at most)`` of a fold with ``n_train`` training clips."""
    n = max(1, -(-cfg.min_epoch_size // max(1, n_train))) * n_train
    steps = n // cfg.batch_size + (1 if n % cfg.batch_size >= 2 else 0)  # a last batch of 1 is skipped
    epochs = cfg.max_epochs
    if cfg.max_steps and steps:
        epochs = min(epochs, -(-cfg.max_steps // steps))
    return steps, epochs


def finetune_fold(make_encoder: Callable[[int], nn.Module], input_norm: Optional[dict], windows: ClipWindows,
                  pi: ProbeInput, fold: Fold, seed: int, cfg: FinetuneConfig, bar: Any = None,
                  label: str = "") -> tuple[np.ndarray, int]:
    """Fine-tune on ``fold``; returns the test clips' scores and the epochs run.  ``bar`` (a
    :func:`shards.progress.progress_bar` counting epochs) moves per epoch and shows ``label``, the step
    and the running training loss after every step."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = _Net(make_encoder(seed), len(pi.classes), input_norm).to(cfg.device)
    opt = torch.optim.Adam([{"params": net.encoder.parameters(), "lr": cfg.lr_encoder},
                            {"params": net.head.parameters(), "lr": cfg.lr_head}])
    loss_fn = head_loss(pi.multilabel)
    train = np.asarray(fold.train)
    nwin = windows.n_windows[train]
    Y = head_targets(pi.y[train], pi.multilabel)
    yva = pi.y[fold.valid]
    rng = np.random.default_rng(seed)
    stop, steps, epochs = EarlyStopping(net, cfg.patience), 0, 0
    per_epoch = epoch_plan(len(train), cfg)[0]
    for epoch in range(cfg.max_epochs):
        net.train()
        reps = max(1, -(-cfg.min_epoch_size // len(train)))
        perm = torch.cat([torch.randperm(len(train), generator=g) for _ in range(reps)]).numpy()
        loss_sum, n_loss = 0.0, 0
        for i in range(0, len(perm), cfg.batch_size):
            b = perm[i:i + cfg.batch_size]
            if len(b) < 2:  # BatchNorm needs two examples in training mode
                continue
            w = rng.integers(0, nwin[b])  # one random window of each clip
            x = torch.from_numpy(np.stack([windows.window(int(train[j]), int(k)) for j, k in zip(b, w)]))[:, None].to(cfg.device)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(net.head(net.embed(x)), Y[torch.as_tensor(b)].to(cfg.device))
            loss.backward()
            opt.step()
            steps += 1
            if bar is not None:
                loss_sum, n_loss = loss_sum + float(loss.detach()), n_loss + 1
                show_status(bar, f"{label} epoch {epoch + 1} step {n_loss}/{per_epoch} loss {loss_sum / n_loss:.4f}")
            if cfg.max_steps and steps >= cfg.max_steps:
                break
        epochs = epoch + 1
        if len(fold.valid):
            sva = _clip_scores(net, windows, fold.valid, pi.multilabel, pi.aggregate)
            metric = M.primary(yva, sva, pi.multilabel)
            vloss = float(loss_fn(torch.as_tensor(sva), head_targets(yva, pi.multilabel)))
        else:
            metric, vloss = 0.0, 0.0
        if bar is not None:  # the epoch's mean training loss and validation metric, then the count moves
            bar.set_postfix_str(f"{label} epoch {epochs} loss {loss_sum / max(1, n_loss):.4f} valid {metric:.3f}", refresh=False)
            bar.update(1)
        if stop.update(net, metric, vloss) or (cfg.max_steps and steps >= cfg.max_steps):
            break
    stop.restore(net)
    return _clip_scores(net, windows, fold.test, pi.multilabel, pi.aggregate), epochs


def run_finetune(make_encoder: Callable[[int], nn.Module], input_norm: Optional[dict], windows: ClipWindows,
                 pi: ProbeInput, cfg: FinetuneConfig, probe: str = "finetune", progress: bool = False,
                 desc: str = "") -> dict:
    """Fine-tune every (seed, fold); one bar counts epochs (an ETA for ``max_epochs``; a fold that stops
    early takes its unused epochs off the total) and shows the step and loss as they come."""
    all_scores, epochs = [], []
    caps = [epoch_plan(len(f.train), cfg)[1] for f in pi.folds]
    with progress_bar(len(cfg.seeds) * sum(caps), desc or probe, "epoch", enabled=progress, leave=False) as bar:
        for seed in cfg.seeds:
            sc = []
            for k, (f, cap) in enumerate(zip(pi.folds, caps)):
                label = f"seed {seed} fold {k + 1}/{len(pi.folds)}" if len(pi.folds) > 1 else f"seed {seed}"
                s, ep = finetune_fold(make_encoder, input_norm, windows, pi, f, seed, cfg, None if bar.disable else bar, label)
                sc.append(s)
                epochs.append(ep)
                if ep < cap:  # stopped early: the ETA no longer counts the epochs it skipped
                    bar.total -= cap - ep
                    bar.refresh()
            all_scores.append(sc)
    return summarise(pi, all_scores, probe, {"epochs": float(np.mean(epochs)), "seeds": list(cfg.seeds),
                                             "lr_encoder": cfg.lr_encoder, "lr_head": cfg.lr_head})
