"""``eval``'s untrained baseline is the run's own starting point: its architecture at its training seed."""
from __future__ import annotations

import os

import pytest
import torch
from accelerate.utils import set_seed

from eval.runner import init_seed, resolve_models
from models import build_encoder
from shards.frontend import DEFAULT_PRESET, get_preset
from train.export import save_encoder


def _run(tmp_path, seed_line: str | None) -> str:
    d = str(tmp_path / "run")
    torch.manual_seed(123)
    save_encoder(d, build_encoder("mobile"), "mobile", {}, get_preset(DEFAULT_PRESET).to_dict(), "temporal_gap", 5, None)
    if seed_line is not None:
        with open(os.path.join(d, "config.yaml"), "w") as f:
            f.write(f"method: temporal_gap\n{seed_line}\n")
    return d


def _state(m: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.contiguous() for k, v in m.state_dict().items()}


def test_untrained_copies_the_runs_seed_and_equals_the_trainers_initial_encoder(tmp_path) -> None:
    run = _run(tmp_path, "seed: 3")
    assert init_seed(run) == 3
    _, untrained = resolve_models([run, "untrained"])
    set_seed(3)  # what train/loop.py does right before building the encoder
    start = build_encoder("mobile")
    got, want = _state(untrained.frozen.encoder), _state(start)
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
    # another seed is another network, and another cache key
    run0 = _run(tmp_path / "b", "seed: 0")
    _, u0 = resolve_models([run0, "untrained"])
    assert u0.frozen.model_hash() != untrained.frozen.model_hash()
    assert not torch.equal(_state(u0.frozen.encoder)["fc.weight"], want["fc.weight"])


@pytest.mark.parametrize("line", [None, "seed: -1", "seed: true", "seed: 1.5", "seed: [1]", "seed: 99999999999",
                                  "seed: &a [*a]", ": : :"])
def test_a_missing_or_bad_seed_falls_back_to_0(tmp_path, line) -> None:
    run = _run(tmp_path, line)
    assert init_seed(run) == 0


def test_a_named_untrained_encoder_keeps_seed_0(tmp_path) -> None:
    run = _run(tmp_path, "seed: 3")
    _, named = resolve_models([run, "untrained:mobile"])
    torch.manual_seed(0)
    want = _state(build_encoder("mobile"))
    assert all(torch.equal(_state(named.frozen.encoder)[k], want[k]) for k in want)
