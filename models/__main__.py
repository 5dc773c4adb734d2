"""``python -m models summary`` | ``python -m models export CHECKPOINT --format torchscript|onnx``."""
from __future__ import annotations

import argparse
import json
import sys

from shards.cli import cli_main
from shards.cli_types import bounded_int


@cli_main("python -m models")
def main(argv: list[str] | None = None, prog: str = "python -m models") -> int:
    p = argparse.ArgumentParser(prog=prog, description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("summary", help="params, multiply-adds and output shapes of every encoder")
    s.add_argument("--frames", type=bounded_int(1, 1_000_000), nargs="+", default=[96, 1001], help="input lengths (frames)")
    s.add_argument("--encoders", nargs="+", default=None, help="only these encoder names")

    e = sub.add_parser("export", help="export an encoder for on-device use (TorchScript or ONNX)")
    e.add_argument("checkpoint", nargs="?", default=None,
                   help="run directory holding encoder.safetensors + encoder.json (docs/contracts.md)")
    e.add_argument("--encoder", default=None, help="export this encoder with random weights instead")
    e.add_argument("--kwargs", default="{}", help="JSON kwargs for --encoder")
    e.add_argument("--format", choices=["torchscript", "onnx"], default="onnx")
    e.add_argument("--out", default=None, help="output file (default: <run dir or .>/<encoder>.<pt|onnx>)")
    e.add_argument("--output", choices=["embedding", "frames"], default="embedding", help="what the model returns")
    e.add_argument("--frames", type=bounded_int(1, 1_000_000), default=96, help="example input length used for tracing and checks")
    e.add_argument("--quantize", choices=["none", "int8"], default="none",
                   help="also write a dynamic int8 quantised copy and report its size and drift")
    e.add_argument("--no-input-norm", action="store_true", help="do not bake encoder.json's input_norm in")

    a = p.parse_args(argv)
    if a.cmd == "summary":
        from .summary import main as summary_main
        summary_main(tuple(a.frames), a.encoders)
        return 0
    from .export import export_cli
    report = export_cli(a.checkpoint, encoder=a.encoder, kwargs=json.loads(a.kwargs), fmt=a.format, out=a.out,
                        output=a.output, n_frames=a.frames, quantize=a.quantize, input_norm=not a.no_input_norm)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
