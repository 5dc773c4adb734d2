"""Probes on synthetic features: separable -> ~100 %, shuffled labels -> chance, CV hygiene, CIs, metrics."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from eval import metrics as M
from eval.probes import Fold, ProbeConfig, ProbeInput, aggregate_logits, carve_valid, make_folds, run_head_probe, run_knn_probe
from eval.tasks.base import Clip, TaskData

FAST = ProbeConfig(max_epochs=200, patience=10, seeds=(0, 1))


def _blobs(n_per=30, n_classes=4, d=8, sep=6.0, windows=1, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n_classes, d)) * sep
    X, y = [], []
    for c in range(n_classes):
        for _ in range(n_per):
            X.append((centres[c] + rng.normal(0, 1, (windows, d))).astype(np.float32))
            y.append(c)
    return X, np.array(y)


def _split_folds(n, seed=0, frac=(0.6, 0.2)):
    rng = np.random.default_rng(seed)
    p = rng.permutation(n)
    a, b = int(frac[0] * n), int((frac[0] + frac[1]) * n)
    return [Fold("test", np.sort(p[:a]), np.sort(p[a:b]), np.sort(p[b:]))]


def test_separable_features_reach_100_percent():
    X, y = _blobs()
    pi = ProbeInput(X, y, False, ["a", "b", "c", "d"], _split_folds(len(y)))
    for probe in ("linear", "mlp"):
        r = run_head_probe(pi, FAST, probe)
        assert r["mean"] >= 0.97 and r["metric"] == "accuracy" and len(r["per_seed"]) == 2
        assert r["secondary"]["macro_f1"]["mean"] >= 0.97
    r = run_knn_probe(pi, FAST)
    assert r["mean"] >= 0.97 and r["ci"] == "test set"


def test_shuffled_labels_give_chance():
    X, y = _blobs(n_per=60)
    y = np.random.default_rng(1).permutation(y)
    pi = ProbeInput(X, y, False, ["a", "b", "c", "d"], _split_folds(len(y)))
    for r in (run_head_probe(pi, FAST, "linear"), run_knn_probe(pi, FAST)):
        assert abs(r["mean"] - 0.25) < 0.13, r["mean"]


def test_multilabel_map():
    rng = np.random.default_rng(0)
    Y = (rng.random((200, 5)) < 0.3).astype(np.float32)
    X = [((Y[i] * 4 + rng.normal(0, 0.3, 5))[None]).astype(np.float32) for i in range(200)]
    pi = ProbeInput(X, Y, True, list("abcde"), _split_folds(200))
    r = run_head_probe(pi, FAST, "linear")
    assert r["metric"] == "mAP" and r["mean"] > 0.95
    assert run_knn_probe(pi, FAST)["mean"] > 0.9
    Ys = Y[rng.permutation(200)]
    assert run_head_probe(ProbeInput(X, Ys, True, list("abcde"), _split_folds(200)), FAST)["mean"] < 0.6


def test_naive_bayes_aggregation_uses_all_windows():
    # each clip: 5 windows, only 3 of them informative; NB and mean both recover the label
    rng = np.random.default_rng(0)
    X, y = [], []
    for c in range(3):
        for _ in range(30):
            w = rng.normal(0, 1, (5, 4)).astype(np.float32)
            w[:3, c] += 4.0
            X.append(w)
            y.append(c)
    y = np.array(y)
    for agg in ("naive_bayes", "mean"):
        pi = ProbeInput(X, y, False, ["a", "b", "c"], _split_folds(len(y)), aggregate=agg)
        assert run_head_probe(pi, FAST)["mean"] > 0.9
        assert run_knn_probe(pi, FAST)["mean"] > 0.9
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, 0.0]])
    s = aggregate_logits(logits, np.array([0, 0, 1]), 2, False, "naive_bayes")
    ref = torch.log_softmax(logits, 1)
    assert torch.allclose(s[0], ref[0] + ref[1]) and torch.allclose(s[1], ref[2])


def _kfold_task(n_folds=5, per_fold=8):
    clips = []
    for f in range(1, n_folds + 1):
        for i in range(per_fold):
            lab = "ab"[i % 2]
            clips.append(Clip(f"f{f}_{i}", f"/x/{f}_{i}.wav", (lab,), fold=f, group=f"src{f}_{i // 2}"))
    return TaskData("toy", "toy-kfold", clips, ["a", "b"], False, "/x", folds=list(range(1, n_folds + 1)))


def test_cv_folds_never_share_a_clip_and_validate_on_next_fold():
    td = _kfold_task()
    keys = [c.key for c in td.clips]
    fold_of = {c.key: c.fold for c in td.clips}
    folds = make_folds(td, keys)
    assert len(folds) == 5
    for i, f in enumerate(folds):
        tr, va, te = set(f.train), set(f.valid), set(f.test)
        assert not (tr & te) and not (va & te) and not (tr & va)
        assert tr | va | te == set(range(len(keys)))
        assert {fold_of[keys[j]] for j in te} == {i + 1}
        assert {fold_of[keys[j]] for j in va} == {(i + 1) % 5 + 1}  # the next fold, never the test fold
    # two folds: validation is carved from the training fold, groups kept whole
    td2 = _kfold_task(n_folds=2, per_fold=20)
    keys2 = [c.key for c in td2.clips]
    for f in make_folds(td2, keys2, valid_fraction=0.3):
        assert len(f.valid) and not (set(f.valid) & set(f.test)) and not (set(f.train) & set(f.test))
        groups_tr = {td2.clips[j].group for j in f.train}
        assert not groups_tr & {td2.clips[j].group for j in f.valid}


def test_carve_valid_is_stratified_grouped_and_deterministic():
    labels = ["a"] * 20 + ["b"] * 20 + ["c"]
    groups = [f"g{i // 2}" for i in range(40)] + [None]
    idx = np.arange(41)
    tr, va = carve_valid(idx, labels, groups, 0.2)
    assert set(tr) | set(va) == set(idx) and not set(tr) & set(va)
    assert {labels[i] for i in va} == {"a", "b"} and 40 in tr  # a one-clip class stays in train
    assert not {groups[i] for i in tr} & {groups[i] for i in va}
    tr2, va2 = carve_valid(idx, labels, groups, 0.2)
    assert list(va) == list(va2)


def test_split_task_without_valid_carves_from_train_only():
    clips = [Clip(f"c{i}", "/x", ("ab"[i % 2],), "test" if i >= 30 else "train") for i in range(40)]
    td = TaskData("t", "p", clips, ["a", "b"], False, "/x")
    (f,) = make_folds(td, [c.key for c in clips])
    assert set(f.test) == set(range(30, 40)) and len(f.valid) >= 2 and max(f.valid) < 30


def test_confidence_interval_shrinks_with_more_seeds():
    X, y = _blobs(n_per=12, sep=0.9, seed=3)  # hard task: seeds disagree
    pi = ProbeInput(X, y, False, list("abcd"), _split_folds(len(y), seed=3))
    few = run_head_probe(pi, ProbeConfig(max_epochs=30, patience=5, seeds=(0, 1, 2)))
    many = run_head_probe(pi, ProbeConfig(max_epochs=30, patience=5, seeds=tuple(range(12))))
    assert np.std(many["per_seed"]) > 0
    assert many["ci95"] < few["ci95"]
    assert many["ci"] == "t over 12 seeds"
    # and the formula itself: same spread, more values -> narrower
    rng = np.random.default_rng(0)
    v = rng.normal(0.7, 0.05, 40)
    assert M.t_ci95(v[:3])[1] > M.t_ci95(v[:10])[1] > M.t_ci95(v)[1]


def test_metrics_and_normalised_score():
    y = np.array([0, 1, 2, 2])
    s = np.eye(3)[[0, 1, 2, 1]]
    assert M.accuracy(y, s) == 0.75
    assert M.macro_f1(y, s) == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)
    Y = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    assert M.mean_average_precision(Y, Y + 0.1) == pytest.approx(1.0)
    assert M.normalised(0.74, 0.74, 0.99) == 0.0 and M.normalised(0.99, 0.74, 0.99) == pytest.approx(100.0)
    assert M.normalised(0.93, 0.74, 0.99) == pytest.approx(76.0)  # Tagliasacchi et al. 2019 Table 2, MUSAN Untrained
    assert M.normalised(0.5, 0.5, 0.5) is None
    assert M.binomial_ci95(0.5, 100) == pytest.approx(0.098, abs=1e-3)
    classes = ["action=a|object=x", "action=a|object=y", "action=b|object=y"]
    acc = M.slot_accuracies(np.array([0, 2]), np.eye(3)[[1, 2]], classes, ["action", "object"])
    assert acc == {"action_accuracy": 1.0, "object_accuracy": 0.5}


def test_paired_interval_of_two_models_on_the_same_clips():
    y = np.array([0, 1, 0, 1] * 25)
    good, bad = np.eye(2)[y], np.eye(2)[1 - y]
    a = M.correct_clips(y, np.concatenate([good[:80], bad[80:]]))  # 80 % right
    assert a == "1" * 80 + "0" * 20
    # identical predictions: the difference is exactly zero, so is its interval
    assert M.paired_ci95(a, a) == 0.0
    # b right on 70 of a's 80 and nowhere else: d = +1 on 10 clips, 0 on 90
    b = "1" * 70 + "0" * 30
    d = np.array([0] * 70 + [1] * 10 + [0] * 20, dtype=float)
    assert M.paired_ci95(a, b) == pytest.approx(1.959964 * d.std(ddof=1) / 10)
    # narrower than the two binomial intervals combined, which ignore that the models share clips
    assert M.paired_ci95(a, b) < np.hypot(M.binomial_ci95(0.8, 100), M.binomial_ci95(0.7, 100)) / 2
    assert M.paired_ci95(a, b[:-1]) is None and M.paired_ci95("1x", "10") is None  # not the same clips
    order = np.arange(100)
    assert M.test_key(y, order) == M.test_key(y.copy(), order.copy())
    assert M.test_key(y, order[::-1]) != M.test_key(y, order) != M.test_key(1 - y, order)


def test_deterministic_probe_results_carry_what_a_paired_comparison_needs():
    X, y = _blobs(n_per=20, sep=1.0, seed=1)
    pi = ProbeInput(X, y, False, list("abcd"), _split_folds(len(y), seed=1))
    r = run_knn_probe(pi, FAST)
    assert r["ci"] == "test set" and len(r["correct"]) == len(pi.folds[0].test)
    assert r["correct"].count("1") / len(r["correct"]) == pytest.approx(r["mean"])
    assert r["test_key"] == M.test_key(y[pi.folds[0].test], pi.folds[0].test)
    two_seeds = ProbeConfig(max_epochs=3, patience=1, seeds=(0, 1))
    assert "correct" not in run_head_probe(pi, two_seeds)  # several seeds: paired by seed instead
    assert "correct" in run_head_probe(pi, ProbeConfig(max_epochs=3, patience=1, seeds=(0,)))  # one seed: deterministic
