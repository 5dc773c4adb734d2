"""Shared fixtures: small audio corpora written in the test, never fetched."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def tone(freq: float, seconds: float, sr: int = 16000, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="session")
def demo_small(tmp_path_factory):
    """A small demo corpus (6-s clips: long enough for Audio2Vec context windows) ingested once per session: returns (shard_root, audio_root)."""
    from ingest.__main__ import main

    base = tmp_path_factory.mktemp("demo_small")
    out, audio = str(base / "shards"), str(base / "audio")
    rc = main(["demo", "--out", out, "--audio-dir", audio, "--pretrain-clips", "24", "--train-clips", "16",
               "--test-clips", "8", "--seconds", "6", "--shard-size", "8", "--no-progress"])
    assert rc == 0
    return out, audio


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny tensors: intra-op threads only add contention on a shared 2-core machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def pytest_configure(config):
    """Under pytest-xdist (``make test``), each worker gets its share of the cores for torch's intra-op
    threads, so two workers computing at once do not oversubscribe a 2-core machine."""
    n = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if n > 1:
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        torch.set_num_threads(max(1, cores // n))


# The longest test files (per-file pytest --durations, 2026-12-08: 15-170 s each in one process), started first so that two
# xdist workers do not end on one long file while the other waits; the rest keep their alphabetical order.
HEAVY_FIRST = ("test_train.py", "test_train_ddp.py", "test_gpu_check.py", "test_train_learns.py", "test_models_encoders.py",
               "test_eval_e2e.py", "test_models_export.py", "test_train_multinode.py", "test_wheel.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda it: rank.get(os.path.basename(str(it.fspath)), len(rank)))  # stable: in-file order kept
