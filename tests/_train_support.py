"""Shared helpers of the trainer tests: a method's small test flags and a trainer config from CLI flags."""
from __future__ import annotations

from models.objectives import OBJECTIVES
from train.config import load_config


def small_flags(method: str) -> list[str]:
    """CLI flags for the method's own small test settings (``test_config``): every method runs on 2 CPU
    cores in seconds; the paper defaults are checked separately (test_method_defaults_follow_papers)."""
    tc = OBJECTIVES[method].test_config
    flags: list[str] = []
    if "encoder" in tc:
        name, kwargs = tc["encoder"]
        flags += ["--encoder", name]
        for k, v in kwargs.items():
            flags += ["--encoder-arg", f"{k}={v}"]
    for k, v in tc.get("hparams", {}).items():
        flags += ["--hp", f"{k}={v}"]
    return flags


def train_cfg(shards_dir, out, method, steps, extra=(), batch=8):
    from models import ENCODERS

    argv = ["--method", method, "--shards", shards_dir, "--out", str(out), "--steps", str(steps),
            "--batch-size", str(batch), "--num-workers", "0", "--log-every", "1", "--save-every", "1000",
            "--shuffle-buffer", "32", "--tracker", "none", *extra]
    return load_config(argv, sorted(OBJECTIVES), sorted(ENCODERS))
