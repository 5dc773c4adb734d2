"""bench/probe_selection.py: the three stopping rules of the Adam head behave as documented."""
from __future__ import annotations

import os
import sys

import numpy as np

from tests.conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import probe_selection as ps  # noqa: E402


def _data(seed=0, n=60, d=40, sep=0.7):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(0, 1, (n, d)).astype(np.float32)
    X[np.arange(n), y] += sep * 3
    return X, y


def test_stopping_rules():
    Xtr, ytr = _data(0)
    Xva, yva = _data(1, n=12)
    Xte, yte = _data(2, n=60)
    acc_none, ep_none = ps.adam_head(Xtr, ytr, Xva, yva, Xte, yte, 3, 0, "no_stop")
    acc_es, ep_es = ps.adam_head(Xtr, ytr, Xva, yva, Xte, yte, 3, 0, "early_stop")
    acc_vl, ep_vl = ps.adam_head(Xtr, ytr, Xva, yva, Xte, yte, 3, 0, "val_loss")
    assert ep_none == 200 and ep_es < 200 and ep_vl <= 200
    assert all(0.0 <= a <= 1.0 for a in (acc_none, acc_es, acc_vl))
    assert acc_none > 0.6  # separable enough that the full head learns the task
    # the same seed and rule give the same head
    assert ps.adam_head(Xtr, ytr, Xva, yva, Xte, yte, 3, 0, "early_stop") == (acc_es, ep_es)


def test_seed_count_is_bounded(capsys):
    assert ps.main(["nowhere", "--seeds", "0"]) == 2
    assert "error: --seeds" in capsys.readouterr().err
