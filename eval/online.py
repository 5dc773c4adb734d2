"""The trainer's online probe: a quick kNN + linear probe on a cached labelled task during pretraining.

Tagliasacchi et al. 2019 (Sec. 4, Figure 2) track downstream accuracy next to the self-supervised loss
during training; ``eval/pretrain.py --probe-every N --probe-task T`` does the same with::

    probe = OnlineProbe("demo_family", data_root="data", cache_dir="data/eval_cache", frontend=fe)
    metrics = probe.evaluate(encoder, input_norm)   # {"probe/demo_family/knn_accuracy": ..., ...}

Construction loads the task, caches its log-mels through the trainer's frontend (the eval cache, shared
with ``python -m eval run``) and keeps the windows in memory; ``evaluate`` embeds them with the frozen
encoder (eval mode, no grad; the training mode is restored), then runs kNN (k = 10, Euclidean, Tagliasacchi
et al. 2019) and a linear probe on standardised clip embeddings (full-batch Adam, lr 1e-3, a fixed number of
steps -- no early stopping, so every call costs the same).  Clips are aggregated by the mean of their
window embeddings; k-fold tasks use their first fold; large tasks are subsampled (``max_train`` /
``max_test`` clips, deterministic) so a call takes seconds.  Call it on one rank only.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Optional

import numpy as np
import torch
from torch import nn

from shards.frontend import DEFAULT_PRESET, FrontendConfig, get_preset

from . import metrics as M
from .cache import default_cache_dir, ensure_mels
from .embed import _unwrap, normalise
from .probes import Standardiser, few_threads, head_loss, head_targets, knn_votes, label_array, make_folds
from .runner import load_windows
from .tasks import Window, get_task

log = logging.getLogger("melstream.eval")


class OnlineProbe:
    """``OnlineProbe(task, data_root, cache_dir, frontend).evaluate(encoder, input_norm) -> dict``."""

    def __init__(self, task: str, data_root: str = "data", cache_dir: Optional[str] = None,
                 frontend: Optional[FrontendConfig] = None, window_frames: Optional[int] = None,
                 max_train: int = 2000, max_test: int = 1000, k: int = 10, linear_steps: int = 300,
                 batch_size: int = 128, seed: int = 0):
        t0 = time.time()
        self.task, self.k, self.linear_steps, self.batch_size, self.seed = task, k, linear_steps, batch_size, seed
        self.fe = frontend or get_preset(DEFAULT_PRESET)
        spec = get_task(task)
        td = spec.load(spec.locate(data_root))
        w = spec.window
        self.window = Window(w.mode, window_frames or w.frames, "mean", min(w.max_windows, 16))
        dirs = ensure_mels(td, self.fe, cache_dir or default_cache_dir(), spec.max_seconds, progress=False)
        windows = load_windows(dirs, [c.key for c in td.clips], self.window, self.fe)
        keys = windows.keys
        fold = make_folds(td, keys)[0]
        rng = np.random.default_rng(seed)
        tr = np.concatenate([fold.train, fold.valid])
        te = fold.test
        if len(tr) > max_train:
            tr = np.sort(rng.choice(tr, max_train, replace=False))
        if len(te) > max_test:
            te = np.sort(rng.choice(te, max_test, replace=False))
        y = label_array(td, keys)
        self.multilabel, self.n_classes = td.multilabel, len(td.classes)
        self.metric = "mAP" if td.multilabel else "accuracy"
        self.y_train, self.y_test = y[tr], y[te]
        sel = list(tr) + list(te)
        parts = list(windows.batches(sel, 4096))  # only the probe's clips are cut and kept
        windows.close()
        self._x = torch.from_numpy(np.concatenate([x for x, _ in parts]))[:, None]
        self._owner = torch.as_tensor(np.concatenate([o for _, o in parts]))
        self._n_train, self._n = len(tr), len(sel)
        log.info("online probe %s: %d train / %d test clips, %d windows, ready in %.1f s", task, len(tr), len(te),
                 self._x.shape[0], time.time() - t0)

    @torch.no_grad()
    def embeddings(self, encoder: nn.Module, input_norm: Optional[dict] = None) -> np.ndarray:
        """Clip embeddings (mean over windows) of the probe's train + test clips."""
        enc = _unwrap(encoder)
        was = enc.training
        enc.eval()
        try:
            dev = next(enc.parameters()).device
        except StopIteration:
            dev = torch.device("cpu")
        outs = []
        try:
            for i in range(0, self._x.shape[0], self.batch_size):
                x = normalise(self._x[i:i + self.batch_size].to(dev), input_norm)
                outs.append(enc(x).float().cpu())
        finally:
            enc.train(was)
        e = torch.cat(outs)
        s = torch.zeros(self._n, e.shape[1]).index_add_(0, self._owner, e)
        return (s / torch.bincount(self._owner, minlength=self._n)[:, None].float()).numpy()

    def evaluate(self, encoder: nn.Module, input_norm: Optional[dict] = None) -> dict[str, float]:
        t0 = time.time()
        E = self.embeddings(encoder, input_norm)
        Etr, Ete = E[:self._n_train], E[self._n_train:]
        Ytr = self.y_train if self.multilabel else np.eye(self.n_classes, dtype=np.float32)[self.y_train]
        with few_threads(E.size * self.n_classes):
            knn = knn_votes(Etr, Ytr, Ete, self.k)
            std = Standardiser(Etr)
            torch.manual_seed(self.seed)
            head = nn.Linear(E.shape[1], self.n_classes)
            opt = torch.optim.Adam(head.parameters(), lr=1e-3)
            X, Y = std(Etr), head_targets(self.y_train, self.multilabel)
            loss_fn = head_loss(self.multilabel)
            with torch.enable_grad():
                for _ in range(self.linear_steps):
                    opt.zero_grad(set_to_none=True)
                    loss_fn(head(X), Y).backward()
                    opt.step()
            with torch.no_grad():
                lin = head(std(Ete)).numpy()
        p = f"probe/{self.task}/"
        out = {p + f"knn_{self.metric}": M.primary(self.y_test, knn, self.multilabel),
               p + f"linear_{self.metric}": M.primary(self.y_test, lin, self.multilabel)}
        log.debug("online probe %s: %.2f s", self.task, time.time() - t0)
        return out


def probe_callback(task: str, data_root: str, cache_dir: str) -> Callable[[nn.Module, dict], dict[str, float]]:
    """The trainer's callback ``probe(encoder, ctx) -> metrics`` for :class:`OnlineProbe` (plugged in by
    ``eval/pretrain.py``; ``ctx`` carries the run's ``frontend`` and ``input_norm``)."""
    state: dict = {}

    def probe(encoder: nn.Module, ctx: dict) -> dict[str, float]:
        if "p" not in state:  # the frontend is known once the trainer has read the manifests
            state["p"] = OnlineProbe(task, data_root, cache_dir, ctx["frontend"])
        was = encoder.training
        try:
            with torch.random.fork_rng(devices=[]):  # the probe seeds its own head: keep training RNG untouched
                res = state["p"].evaluate(encoder, ctx["input_norm"])
        finally:
            encoder.train(was)
        return {(k if k.startswith("probe/") else f"probe/{task}/{k}"): float(v) for k, v in res.items()}

    return probe
