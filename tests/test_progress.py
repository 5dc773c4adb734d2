"""Progress bars move per unit of work (epoch, batch, clip) and show when they should.

Each bar is a ``tqdm`` made by ``shards.progress.progress_bar``; the tests swap in a subclass that records
every ``update`` and status text (``MELSTREAM_PROGRESS=1``: drawn even though stderr is captured), and
count them.  No timings are asserted.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn
from tqdm import tqdm

import shards.progress as P


class Recorder(tqdm):
    bars: list[Recorder] = []

    def __init__(self, *a, **k):
        self.updates: list[float] = []
        self.texts: list[str] = []
        super().__init__(*a, **k)
        Recorder.bars.append(self)

    def update(self, n=1):
        self.updates.append(n)
        return super().update(n)

    def set_postfix_str(self, s="", refresh=True):
        self.texts.append(s)
        return super().set_postfix_str(s, refresh)


@pytest.fixture()
def bars(monkeypatch):
    monkeypatch.setenv(P.PROGRESS_ENV, "1")
    monkeypatch.setattr(P, "tqdm", Recorder)
    Recorder.bars = []
    return Recorder.bars


def test_when_bars_show(monkeypatch):
    monkeypatch.delenv(P.PROGRESS_ENV, raising=False)
    assert not P.progress_enabled()  # pytest captures stderr: not a terminal
    monkeypatch.setenv(P.PROGRESS_ENV, "1")
    assert P.progress_enabled() and not P.progress_enabled(requested=False) and not P.progress_enabled(main_process=False)
    assert P.progress_bar(3, "x", "step", enabled=False).disable
    monkeypatch.setenv(P.PROGRESS_ENV, "0")
    assert not P.progress_enabled() and P.progress_bar(3, "x", "step").disable


# ------------------------------------------------------------------------------------------ fine-tuning

class _Windows:
    """The part of ``eval.windows.ClipWindows`` that fine-tuning reads: one [64, 16] window per clip."""

    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(0)
        self.x = rng.standard_normal((n, 64, 16)).astype(np.float32)
        self.n_windows = np.ones(n, dtype=np.int64)

    def window(self, i: int, k: int) -> np.ndarray:
        return self.x[i]

    def batches(self, idx, batch):
        idx = np.asarray(idx)
        for s in range(0, len(idx), batch):
            yield self.x[idx[s:s + batch]], np.arange(s, min(s + batch, len(idx)))


def _encoder(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    enc = nn.Sequential(nn.Flatten(), nn.Linear(64 * 16, 8))
    enc.embedding_dim = 8
    return enc


def _finetune(cfg):
    from eval.finetune import run_finetune
    from eval.probes import Fold, ProbeInput

    y = np.array([0, 1] * 6)
    pi = ProbeInput(X=[], y=y, multilabel=False, classes=["a", "b"],
                    folds=[Fold("0", train=np.arange(6), valid=np.arange(6, 9), test=np.arange(9, 12))])
    return run_finetune(_encoder, None, _Windows(12), pi, cfg, progress=True, desc="ft")


def test_finetune_bar_moves_per_epoch_with_its_loss(bars):
    from eval.finetune import FinetuneConfig

    # 6 training clips, an epoch of at least 8 draws: 12 clips in 3 steps of 4
    r = _finetune(FinetuneConfig(max_epochs=3, patience=100, batch_size=4, min_epoch_size=8))
    (bar,) = bars
    assert bar.unit == "epoch" and bar.total == 3 and bar.updates == [1, 1, 1] and bar.n == 3
    steps = [t for t in bar.texts if " step " in t]
    assert [t.split(" step ")[1].split()[0] for t in steps] == ["1/3", "2/3", "3/3"] * 3  # every step, before its epoch ends
    ends = [t for t in bar.texts if "valid" in t]
    assert [t.split(" epoch ")[1].split()[0] for t in ends] == ["1", "2", "3"]
    losses = [float(t.split(" loss ")[1].split()[0]) for t in ends]
    assert all(np.isfinite(losses)) and r["epochs"] == 3.0


def test_finetune_bar_total_follows_max_steps(bars):
    from eval.finetune import FinetuneConfig, epoch_plan

    cfg = FinetuneConfig(max_epochs=50, patience=100, batch_size=4, min_epoch_size=8, max_steps=4)
    assert epoch_plan(6, cfg) == (3, 2)  # 4 steps of 3 per epoch: 2 epochs
    _finetune(cfg)
    (bar,) = bars
    assert bar.total == 2 and bar.updates == [1, 1]


# ------------------------------------------------------------------------------------------ embedding

def test_embedding_bar_moves_per_batch(bars, tmp_path, monkeypatch):
    import eval.embed as E
    from eval.tasks.base import Clip, TaskData, Window
    from shards.frontend import get_preset

    mels = {f"c{i}": np.full((64, 20), float(i), np.float32) for i in range(10)}
    monkeypatch.setattr(E, "iter_mels", lambda dirs, keys: iter(sorted(mels.items())))
    td = TaskData("t", "p", [Clip(k, "", ("a",), "train") for k in mels], ["a"], False, str(tmp_path))
    model = E.SpectrogramModel(get_preset("byol_a"))
    E.compute_embeddings(model, td, [], Window("crop", 16), str(tmp_path / "emb"), batch_size=2)
    (bar,) = bars
    # one window per clip; windows are gathered 8 at a time, embedded 2 at a time: 4 + 1 batches
    assert bar.unit == "clip" and bar.total == 10 and bar.updates == [2, 2, 2, 2, 2] and bar.n == 10
    assert [t for t in bar.texts] == [f"{n} windows" for n in (2, 4, 6, 8, 10)]


# ------------------------------------------------------------------------------------------ ingest

def test_ingest_bar_moves_per_clip(bars, tmp_path):
    from ingest.__main__ import main

    rc = main(["demo", "--out", str(tmp_path / "s"), "--audio-dir", str(tmp_path / "a"), "--pretrain-clips", "6",
               "--train-clips", "0", "--test-clips", "0", "--seconds", "1", "--decode-batch", "4", "--shard-size", "8"])
    assert rc == 0
    (bar,) = [b for b in bars if b.desc.startswith("ingest")]
    assert bar.unit == "clip" and bar.total == 6 and bar.updates == [1] * 6  # per clip, not per group of 4


def test_ingest_bar_counts_the_workers_clips_while_it_waits():
    """The pool's count is read while a group is awaited (here a fake result that is ready on the third look)."""
    import multiprocessing as mp

    from ingest.progress import ClipProgress, add_one

    class Result:
        def __init__(self):
            self.looks = 0

        def ready(self):
            self.looks += 1
            return self.looks > 2

        def wait(self, timeout):
            add_one(count)  # a worker finishes a clip meanwhile

        def get(self):
            return "group"

    p = ClipProgress(5, "ingest t", enabled=False)
    shown = []
    p.bar.update = shown.append
    count = p.share(mp.get_context("spawn"))
    assert p.wait(Result()) == "group" and shown == [1, 1, 0]
    p.reused(3)
    assert shown[-1] == 3
