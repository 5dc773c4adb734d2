"""``python -m train.import_weights``: outside encoder weights -> an evaluable run directory.

Example, the official BYOL-A checkpoint (Niizumi et al. 2021; its AudioNTT keys are ours)::

    python -m train.import_weights --encoder audio_ntt --encoder-arg d=2048 \\
        --weights AudioNTT2020-BYOLA-64x96d2048.pth --preset byol_a --mean MEAN --std STD \\
        --out runs/byola_official
    python -m eval run --model runs/byola_official --model runs/mine --tasks ...

``--mean/--std`` are the log-mel statistics the checkpoint was trained with (BYOL-A's
pre-normalisation); ``--per-example`` standardises each input instead; neither leaves inputs as they are.
"""
from __future__ import annotations

import argparse
import sys

from models import ENCODERS
from shards.cli import cli_main
from shards.cli_types import check_float
from shards.frontend import PRESETS, get_preset

from .config import parse_kv
from .export import import_weights


@cli_main("python -m train.import_weights")
def main(argv: list[str] | None = None, prog: str = "python -m train.import_weights") -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0])
    ap.add_argument("--encoder", required=True, choices=sorted(ENCODERS))
    ap.add_argument("--encoder-arg", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--weights", required=True, help=".pth (plain tensors, loaded with weights_only=True) or .safetensors")
    ap.add_argument("--preset", required=True, choices=sorted(PRESETS), help="the log-mel frontend the weights expect")
    ap.add_argument("--per-example", action="store_true", help="standardise each input by its own mean/std")
    ap.add_argument("--mean", type=float)
    ap.add_argument("--std", type=float)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if (a.mean is None) != (a.std is None) or (a.per_example and a.mean is not None):
        print("error: give --mean and --std together, or --per-example, or neither", file=sys.stderr)
        return 2
    for flag, v in (("--mean", a.mean), ("--std", a.std)):
        if v is not None:
            check_float(v, -1e6, 1e6, flag)  # finite and bounded: BoundError is one error line
    if a.std is not None and not a.std > 0:
        print("error: --std must be positive", file=sys.stderr)
        return 2
    norm = {"type": "per_example"} if a.per_example else ({"mean": a.mean, "std": a.std} if a.mean is not None else None)
    try:
        kwargs = parse_kv(a.encoder_arg, "--encoder-arg")
        path = import_weights(a.out, a.encoder, kwargs, a.weights, get_preset(a.preset).to_dict(), norm)
    except (ValueError, FileNotFoundError, TypeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
