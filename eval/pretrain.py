#!/usr/bin/env python
"""``accelerate launch eval/pretrain.py --probe-every N --probe-task T [train flags]`` (or ``python -m
eval.pretrain``): ``train/pretrain.py`` with ``eval``'s online probe plugged into the trainer's callback,
so that ``train`` never imports ``eval`` (docs/contracts.md).  Every flag is ``train/pretrain.py``'s.
"""
from __future__ import annotations

import os
import sys

if not __package__:  # run as a script from a checkout: make its packages importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from train.pretrain import main as train_main  # noqa: E402 - after the path fix-up above
from train.pretrain import run_cli  # noqa: E402


def main(argv: list[str] | None = None, prog: str = "eval/pretrain.py") -> int:
    from eval.online import probe_callback  # the probe (torch, the eval cache) loads only when training starts

    return train_main(argv, probe_factory=probe_callback, prog=prog)


if __name__ == "__main__":
    run_cli(main)
