"""``logreg`` probe (eval/logreg.py): L2 logistic regression solved to convergence, C chosen on validation."""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from eval import metrics as M
from eval.logreg import COARSE_GRID, NO_CLASS, Fitter, choose_C, logreg_fold_scores, run_logreg_probe
from eval.probes import Fold, ProbeConfig, ProbeInput, Standardiser, rows

CFG = ProbeConfig()


def _blobs(n_per=30, n_classes=4, d=8, sep=6.0, windows=1, seed=0, noise_dims=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (n_classes, d)) * sep
    X, y = [], []
    for c in range(n_classes):
        for _ in range(n_per):
            x = centres[c] + rng.normal(0, 1, (windows, d))
            if noise_dims:
                x = np.concatenate([x, rng.normal(0, 1, (windows, noise_dims))], axis=1)
            X.append(x.astype(np.float32))
            y.append(c)
    return X, np.array(y)


def _fold(n, seed=0, frac=(0.6, 0.2)):
    p = np.random.default_rng(seed).permutation(n)
    a, b = int(frac[0] * n), int((frac[0] + frac[1]) * n)
    return Fold("test", np.sort(p[:a]), np.sort(p[a:b]), np.sort(p[b:]))


def test_separable_blobs_are_solved_and_the_result_has_the_probe_fields():
    X, y = _blobs()
    pi = ProbeInput(X, y, False, list("abcd"), [_fold(len(y))])
    r = run_logreg_probe(pi, CFG)
    assert r["probe"] == "logreg" and r["mean"] == 1.0 and r["ci"] == "test set"
    assert r["C"][0] in COARSE_GRID or any(np.isclose(r["C"][0], c * 10 ** s) for c in COARSE_GRID for s in (-.5, .5))
    assert r["n_train"] == 72 and r["n_valid"] == 24 and r["n_test"] == 24


def test_shuffled_labels_give_chance():
    X, y = _blobs(n_per=60)
    ys = np.random.default_rng(1).permutation(y)
    r = run_logreg_probe(ProbeInput(X, ys, False, list("abcd"), [_fold(len(y))]), CFG)
    assert r["mean"] < 0.45


def test_test_scores_equal_sklearn_refit_on_train_and_valid_at_the_chosen_C():
    X, y = _blobs(n_per=25, sep=1.5, noise_dims=20, seed=4)
    f = _fold(len(y), seed=2)
    pi = ProbeInput(X, y, False, list("abcd"), [f])
    s, C, val = logreg_fold_scores(pi, f)
    fit = np.concatenate([f.train, f.valid])
    Xf, _ = rows(X, fit, "mean")
    Xt, _ = rows(X, f.test, "mean")
    std = Standardiser(Xf)
    ref = LogisticRegression(C=C, max_iter=1000).fit(std(Xf).numpy().astype(np.float64), y[fit])
    np.testing.assert_allclose(s, ref.decision_function(std(Xt).numpy().astype(np.float64)), rtol=1e-6, atol=1e-6)
    assert M.accuracy(y[f.test], s) == ref.score(std(Xt).numpy().astype(np.float64), y[f.test])


def test_C_is_the_best_on_validation_and_never_looks_at_test_labels():
    X, y = _blobs(n_per=20, sep=1.0, noise_dims=60, seed=5)
    f = _fold(len(y), seed=1)
    pi = ProbeInput(X, y, False, list("abcd"), [f])
    C, val = choose_C(pi, f)
    # every decade of the grid scores at most the chosen C's validation accuracy
    Xtr, _ = rows(X, f.train, "mean")
    Xva, _ = rows(X, f.valid, "mean")
    fitter = Fitter(Xtr, y[f.train], 4, False)
    accs = {c: M.accuracy(y[f.valid], fitter.fit(c).logits(Xva)) for c in COARSE_GRID}
    assert val == max(val, *accs.values())
    assert val >= max(accs.values())
    # ties go to the stronger regularisation: no grid C smaller than the chosen one reaches its score
    assert all(a < val for c, a in accs.items() if c < C)
    # scrambling the test labels changes nothing that is chosen
    y2 = y.copy()
    y2[f.test] = np.random.default_rng(9).permutation(y2[f.test])
    assert choose_C(ProbeInput(X, y2, False, list("abcd"), [f]), f) == (C, val)


def test_noisy_small_task_is_regularised_more_than_a_clean_one():
    Xn, yn = _blobs(n_per=12, sep=0.8, noise_dims=200, seed=7)
    Xc, yc = _blobs(n_per=12, sep=8.0, seed=7)
    fn, fc = _fold(len(yn), seed=3), _fold(len(yc), seed=3)
    Cn, _ = choose_C(ProbeInput(Xn, yn, False, list("abcd"), [fn]), fn)
    Cc, _ = choose_C(ProbeInput(Xc, yc, False, list("abcd"), [fc]), fc)
    assert Cn < Cc


def test_no_validation_split_uses_C_1():
    X, y = _blobs()
    f = _fold(len(y))
    f = Fold("test", np.concatenate([f.train, f.valid]), np.zeros(0, np.int64), f.test)
    r = run_logreg_probe(ProbeInput(X, y, False, list("abcd"), [f]), CFG)
    assert r["C"] == [1.0] and r["valid_metric"] == [None] and r["mean"] == 1.0


def test_classes_missing_from_train_get_no_score_and_binary_maps_to_two_logits():
    X, y = _blobs(n_classes=3)
    keep = y != 2
    Xtr = np.stack([x[0] for x, k in zip(X, keep) if k])
    ytr = y[keep]
    fit = Fitter(Xtr, ytr, 3, False).fit(1.0)
    z = fit.logits(Xtr)
    assert z.shape == (len(ytr), 3) and np.all(z[:, 2] == NO_CLASS)
    assert np.array_equal(z.argmax(1), fit.clf.predict(fit.z(Xtr)))
    assert np.all(z[:, 0] == 0.0)  # sklearn's one binary score d -> logits (0, d)
    one = Fitter(Xtr[:5], np.full(5, 1), 3, False).fit(1.0).logits(Xtr[:3])
    assert np.array_equal(one.argmax(1), [1, 1, 1])


def test_multilabel_one_vs_rest_map():
    rng = np.random.default_rng(0)
    n, C = 240, 5
    Y = (rng.random((n, C)) < 0.3).astype(np.float32)
    Y[:, 4] = 0.0  # a class never present: constant estimator, no crash
    X = [(Y[i, None, :] * 3 + rng.normal(0, 1, (1, C))).astype(np.float32) for i in range(n)]
    f = _fold(n)
    r = run_logreg_probe(ProbeInput(X, Y, True, list("abcde"), [f]), CFG)
    assert r["metric"] == "mAP" and r["mean"] > 0.9
    Ys = Y[rng.permutation(n)]
    assert run_logreg_probe(ProbeInput(X, Ys, True, list("abcde"), [f]), CFG)["mean"] < 0.6


def test_naive_bayes_aggregation_sums_window_log_probabilities():
    X, y = _blobs(n_per=20, n_classes=3, sep=1.2, windows=6, seed=3)
    f = _fold(len(y), seed=4)
    nb = run_logreg_probe(ProbeInput(X, y, False, list("abc"), [f], aggregate="naive_bayes"), CFG)
    s, C, _ = logreg_fold_scores(ProbeInput(X, y, False, list("abc"), [f], aggregate="naive_bayes"), f)
    fit = np.concatenate([f.train, f.valid])
    Xf, cf = rows(X, fit, "naive_bayes")
    Xt, ct = rows(X, f.test, "naive_bayes")
    std = Standardiser(Xf)
    ref = LogisticRegression(C=C, max_iter=1000).fit(std(Xf).numpy().astype(np.float64), y[fit][cf])
    lp = ref.predict_log_proba(std(Xt).numpy().astype(np.float64))
    want = np.zeros((len(f.test), 3))
    np.add.at(want, ct, lp)
    np.testing.assert_allclose(s, want, rtol=1e-5, atol=1e-5)
    assert nb["mean"] == M.accuracy(y[f.test], want)


def test_deterministic():
    X, y = _blobs(n_per=20, sep=1.0, noise_dims=30, seed=8)
    pi = ProbeInput(X, y, False, list("abcd"), [_fold(len(y))])
    a, b = run_logreg_probe(pi, CFG), run_logreg_probe(pi, CFG)
    assert a["mean"] == b["mean"] and a["C"] == b["C"]
