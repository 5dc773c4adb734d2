"""``melstream COMMAND [ARGS]``: one command for every stage (docs/cli.md).

Each command hands its arguments to the package that owns it, under its own name in ``--help`` and in
error lines; the old spellings stay (``python -m ingest``, ``melstream-ingest``, ``train/pretrain.py``).

    melstream ingest demo --out data/demo        python -m ingest
    melstream shards inspect data/demo/pretrain  python -m shards
    melstream train --method cola --steps 400    train/pretrain.py (+ eval's online probe for --probe-every)
    melstream eval run --model runs/x ...        python -m eval
    melstream models list                        methods, encoders, samplers; summary, export, import-weights
    melstream bench train                        bench/bench_train.py (a checkout only: bench/ is not packaged)

Each package is imported only when its command runs: ``melstream --help`` stays quick, and ``ingest``
sets its OpenMP policy before torch loads (ingest/__main__.py).
"""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass

from shards.cli import cli_main

from . import __version__

PROG = "melstream"


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    run: Callable[[list[str]], int]


def _ingest(argv: list[str]) -> int:
    from ingest.__main__ import main  # local import: import cost, and the OpenMP policy it sets before torch loads

    return main(argv, prog=f"{PROG} ingest")


def _shards(argv: list[str]) -> int:
    from shards.__main__ import main  # local import: only the subcommand that runs is loaded

    return main(argv, prog=f"{PROG} shards")


def _train(argv: list[str]) -> int:
    """``train/pretrain.py`` with eval's online probe available, under ``accelerate launch -m melstream train``
    too; ``run_cli``'s debug hooks (SIGUSR1 stack dumps, MELSTREAM_HANG_DUMP_S) are installed first."""
    from eval.pretrain import main  # local import: torch and every model, only when training
    from train.pretrain import install_debug_hooks  # local import: with the line above

    install_debug_hooks()
    return main(argv, prog=f"{PROG} train")


def _eval(argv: list[str]) -> int:
    from eval.__main__ import main  # local import: import cost

    return main(argv, prog=f"{PROG} eval")


MODELS_HELP = f"""usage: {PROG} models {{list,summary,export,import-weights}} [ARGS]

Models: what can be trained, how big it is, and weights in and out.

  list             methods (with their default encoder and sampler), encoders, samplers, decoders
  summary          params, multiply-adds and output shapes of every encoder (python -m models summary)
  export           an encoder as TorchScript or ONNX for on-device use (python -m models export)
  import-weights   outside encoder weights -> an evaluable run directory (python -m train.import_weights)

`{PROG} models COMMAND --help` for each command's flags."""


def models_list() -> str:
    """The registered methods, encoders, samplers and decoders, one line each."""
    from models import DECODERS, ENCODERS  # local import: torch and every encoder module
    from models.objectives import OBJECTIVES  # local import: with the line above
    from pipeline import SAMPLERS  # local import: with the line above

    lines = ["methods (--method; default encoder, sampler):"]
    for name, cls in OBJECTIVES.items():
        enc = getattr(cls, "default_encoder", None)
        enc_name = enc[0] if isinstance(enc, tuple) and enc else "-"
        lines.append(f"  {name:22s} {enc_name:20s} {getattr(cls, 'sampler', '-')}")
    for title, reg in (("encoders (--encoder)", ENCODERS), ("samplers (--sampler)", SAMPLERS), ("decoders", DECODERS)):
        lines += ["", f"{title}:", "  " + ", ".join(sorted(reg))]
    return "\n".join(lines)


@cli_main(f"{PROG} models")
def _models(argv: list[str] | None) -> int:
    argv = list(argv or [])
    cmd, rest = (argv[0], argv[1:]) if argv else ("", [])
    if cmd in ("", "-h", "--help"):
        print(MODELS_HELP)
        return 0 if cmd else 2
    if cmd == "list":
        if rest:
            print(f"error: {PROG} models list: takes no arguments, got {' '.join(rest)!r}", file=sys.stderr)
            return 2
        print(models_list())
        return 0
    if cmd in ("summary", "export"):
        from models.__main__ import main as models_main  # local import: import cost

        return models_main([cmd, *rest], prog=f"{PROG} models")
    if cmd == "import-weights":
        from train.import_weights import main as import_main  # local import: import cost

        return import_main(rest, prog=f"{PROG} models import-weights")
    print(f"error: {PROG} models: unknown command {cmd!r}; choose from list, summary, export, import-weights", file=sys.stderr)
    return 2


def find_checkout() -> str | None:
    """The melstream checkout holding ``bench/``: the one this package runs from (an editable install),
    else the current directory; None for an installed wheel used elsewhere."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for root in (here, os.getcwd()):
        if os.path.isfile(os.path.join(root, "bench", "_common.py")) and os.path.isfile(os.path.join(root, "pyproject.toml")):
            return root
    return None


def bench_scripts(root: str) -> dict[str, str]:
    """``name -> path`` of the runnable bench scripts (``bench/bench_train.py`` is ``train``)."""
    out = {}
    for f in sorted(os.listdir(os.path.join(root, "bench"))):
        if f.endswith(".py") and not f.startswith("_"):
            out[f[:-3].removeprefix("bench_")] = os.path.join(root, "bench", f)
    return out


BENCH_HELP = f"""usage: {PROG} bench [NAME [ARGS]]

Run a benchmark script of a melstream checkout: `{PROG} bench train --help` is
`python bench/bench_train.py --help` (results go to the checkout's bench/results/).
The bench scripts are not part of the installed package: this works from a checkout
only (an editable install, or the current directory is the checkout's root).
Without NAME: the list of scripts."""


@cli_main(f"{PROG} bench")
def _bench(argv: list[str] | None) -> int:
    argv = list(argv or [])
    if argv[:1] in (["-h"], ["--help"]):
        print(BENCH_HELP)
        return 0
    root = find_checkout()
    if root is None:
        raise ValueError("the bench scripts live in bench/ of a melstream checkout, which is not installed with the "
                         "package: run this from the checkout's root (or install it with `pip install -e .`)")
    scripts = bench_scripts(root)
    if not argv:
        print(BENCH_HELP + "\n\nscripts (" + os.path.join(root, "bench") + "):\n  " + ", ".join(scripts))
        return 0
    name = argv[0].removeprefix("bench_").removesuffix(".py")
    if name not in scripts:
        print(f"error: {PROG} bench: unknown script {argv[0]!r}; known: {', '.join(scripts)}", file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, scripts[name], *argv[1:]])


COMMANDS = {c.name: c for c in (
    Command("ingest", "audio -> log-mel shards (demo, folder, audioset, fsd50k, ...)", _ingest),
    Command("shards", "inspect, verify or merge shard directories", _shards),
    Command("train", "self-supervised pretraining (the flags of train/pretrain.py; accelerate launch -m melstream train)",
            _train),
    Command("eval", "evaluate encoders on downstream tasks; compare reports; list tasks", _eval),
    Command("models", "list methods/encoders/samplers; summary, export, import-weights", _models),
    Command("bench", "run a benchmark script (from a checkout only)", _bench),
)}


def usage() -> str:
    width = max(len(n) for n in COMMANDS) + 3
    cmds = "\n".join(f"  {n:{width}s}{c.help}" for n, c in COMMANDS.items())
    return (f"usage: {PROG} COMMAND [ARGS]   ({PROG} COMMAND --help for its flags)\n\n"
            f"melstream {__version__}: self-supervised pretraining of audio encoders on log-mel shards.\n\n"
            f"commands:\n{cmds}\n\ndocs/cli.md has examples of each.")


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``argv`` (default ``sys.argv[1:]``) to its command; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage(), file=sys.stdout if argv else sys.stderr)
        return 0 if argv else 2
    if argv[0] == "--version":
        print(f"{PROG} {__version__}")
        return 0
    cmd = COMMANDS.get(argv[0])
    if cmd is None:
        print(f"error: {PROG}: unknown command {argv[0]!r}; choose from {', '.join(COMMANDS)} ({PROG} --help)", file=sys.stderr)
        return 2
    return cmd.run(argv[1:])
