"""The run-directory format (shards/rundir.py) and the one standardisation formula (shards/norm.py)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from shards import rundir
from shards.norm import apply_input_norm, standardize


def _meta(**kw):
    return {**rundir.make_meta("mobile", {"width": 1}, {"n_mels": 64}, None, "cola", 7, 16), **kw}


def test_round_trip_and_run_dir_spellings(tmp_path):
    state = {"a.weight": torch.randn(3, 2), "b": torch.arange(4.0)}
    path = rundir.write_run(str(tmp_path / "run"), state, _meta())
    assert path == str(tmp_path / "run" / "encoder.json")
    assert rundir.is_run_dir(str(tmp_path / "run")) and rundir.is_run_dir(path) and not rundir.is_run_dir(str(tmp_path))
    meta = rundir.read_meta(path)
    assert meta["format_version"] == rundir.FORMAT_VERSION == 1 and meta["step"] == 7 and meta["encoder"] == "mobile"
    got = rundir.read_weights(str(tmp_path / "run"))
    assert got.keys() == state.keys() and all(torch.equal(got[k], state[k]) for k in state)


@pytest.mark.parametrize("change, msg", [
    ({"format_version": 2}, "unsupported encoder format 2"),
    ({"kwargs": []}, "'kwargs' an object"),
    ({"frontend": None}, "missing frontend"),
    ({"kwargs": {"w": {"x": 1}}}, "kwarg 'w' has unsupported type dict"),
    ({"input_norm": {"mean": "a"}}, "input_norm must be"),
])
def test_hostile_meta_is_a_one_line_error(tmp_path, change, msg):
    rundir.write_run(str(tmp_path), {}, _meta())
    (tmp_path / "encoder.json").write_text(json.dumps(_meta(**change)))
    with pytest.raises(ValueError, match=msg) as e:
        rundir.read_meta(str(tmp_path))
    assert "\n" not in str(e.value)
    with pytest.raises(ValueError):
        rundir.write_run(str(tmp_path / "w"), {}, _meta(**change))  # never written either
    (tmp_path / "encoder.json").write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        rundir.read_meta(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="not an exported melstream encoder"):
        rundir.read_meta(str(tmp_path / "nowhere"))


def test_standardize_one_formula_for_numpy_and_torch():
    rng = np.random.default_rng(0)
    x = (3.0 + 2.5 * rng.standard_normal((4, 1, 8, 10))).astype(np.float32)
    expect = (x - x.mean(axis=(1, 2, 3), keepdims=True)) / np.sqrt(x.var(axis=(1, 2, 3), keepdims=True) + 1e-5)
    np.testing.assert_allclose(standardize(torch.from_numpy(x)).numpy(), expect, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(standardize(x), expect, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(standardize(x[0], batched=False), expect[0], rtol=1e-5, atol=1e-5)
    y = standardize(torch.from_numpy(x))
    assert torch.allclose(y.mean((1, 2, 3)), torch.zeros(4), atol=1e-5)
    assert torch.allclose(y.var((1, 2, 3), correction=0), torch.ones(4), atol=1e-4)
    assert torch.equal(standardize(torch.zeros(2, 3)), torch.zeros(2, 3))  # silence stays finite
    t = torch.from_numpy(x)
    assert torch.equal(apply_input_norm(t, None), t)
    assert torch.allclose(apply_input_norm(t, {"mean": 3.0, "std": 2.0}), (t - 3.0) / 2.0)
    assert torch.allclose(apply_input_norm(t, {"type": "per_example"}), y)
