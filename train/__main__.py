"""``python -m train --method temporal_gap [...]``, also ``accelerate launch -m train ...``: the trainer
of ``train/pretrain.py`` (the same code and flags) as a module, so an installed melstream trains
without a checkout.  ``melstream train`` is the same with the online probe available (``--probe-every``).
"""
from __future__ import annotations

from train.pretrain import main, run_cli

if __name__ == "__main__":
    run_cli(lambda: main(prog="python -m train"))
