#!/usr/bin/env python
"""``accelerate launch train/pretrain.py --method temporal_gap [...]`` (or plain ``python``); the same
code runs as ``python -m train`` / ``accelerate launch -m train`` (``train/__main__.py``) and as
``melstream train`` (``melstream/cli.py``, with the online probe plugged in).

The composition root: wires shards -> pipeline -> models through :func:`train.loop.train`.  The
trainer takes callbacks (``probe(encoder, ctx) -> metrics``) but knows no ``eval`` code: with
``--probe-every``, run ``eval/pretrain.py`` (same flags), which plugs ``eval``'s online probe in.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Any, Callable

if not __package__:  # run as a script from a checkout: make its packages importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from shards.cli import cli_main  # noqa: E402 - after the path fix-up above
from shards.redact import install_log_redaction, redact  # noqa: E402

ProbeFactory = Callable[[str, str, str], Callable[[Any, dict], dict]]


@cli_main("train/pretrain.py")
def main(argv: list[str] | None = None, probe_factory: ProbeFactory | None = None, prog: str = "train/pretrain.py") -> int:
    """Parse the flags and train; ``probe_factory(task, data_root, cache_dir)`` makes the online probe;
    ``prog`` names the command in ``--help`` and in error lines."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)  # library warnings go through the handlers below, so they are redacted too
    install_log_redaction()  # URL userinfo and signed-URL tokens never reach stderr (shards/redact.py)
    # local import: heavy (torch); importing this module stays cheap for the CLIs that wrap main()
    from models import ENCODERS
    from models.objectives import OBJECTIVES  # local import: heavy (torch), as above
    from train.config import load_config
    from train.loop import NonFiniteLoss, train

    cfg = load_config(argv, sorted(OBJECTIVES), sorted(ENCODERS), prog)
    probe = None
    if cfg.probe_every:
        if probe_factory is None:
            print("error: --probe-every needs the online probe from eval: run eval/pretrain.py (or python -m "
                  "eval.pretrain) with the same flags", file=sys.stderr)
            return 2
        probe = probe_factory(cfg.probe_task, cfg.probe_data_root, os.path.join(cfg.out, "probe_cache"))
    try:
        summary = train(cfg, probe=probe)
    except NonFiniteLoss as e:
        return _fail(3, redact(f"error: {e}"))
    except (ValueError, FileNotFoundError) as e:
        return _fail(2, redact(f"error: {e}") if getattr(e, "echo", True) else None)
    if summary.get("is_main_process", True):
        print(f"done: {summary['step']} steps, final loss {summary['losses'][-1] if summary['losses'] else float('nan'):.5f}, "
              f"world_size {summary['world_size']}, run dir {summary['out']}", flush=True)
    if summary["world_size"] > 1:
        _exit_now(0)  # a distributed rank: nothing is left to do; never hang in interpreter teardown
    return 0


def _fail(rc: int, line: str | None) -> int:
    """Print the one error line (ranks that only repeat the main process's refusal print nothing) and
    return ``rc``; a distributed rank leaves at once (:func:`_exit_now`)."""
    if line:
        print(line, file=sys.stderr, flush=True)
    import torch

    dist = torch.distributed
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        _exit_now(rc)
    return rc


def _exit_now(rc: int) -> None:
    """Flush and leave without interpreter teardown.  With several ranks, the destructors of the
    communication backend can block at exit after every output is written (pytorch#75097); the
    launcher would then wait forever on a finished job."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


def run_cli(main_fn: Callable[[], int]) -> None:
    """The process around ``main_fn``: stack dumps on SIGUSR1, MELSTREAM_HANG_DUMP_S, exit code."""
    install_debug_hooks()
    sys.exit(main_fn())


def install_debug_hooks() -> None:
    """``kill -USR1 <pid>`` dumps every thread's stack; ``MELSTREAM_HANG_DUMP_S=N`` dumps them and exits 1
    after N seconds (a job that must be over by then)."""
    import faulthandler
    import signal

    try:
        sys.stderr.fileno()
    except (AttributeError, ValueError, OSError):  # stderr is no file (captured in-process): nothing to dump to
        return
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>` prints every thread's stack: where is a rank stuck?
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    hang = os.environ.get("MELSTREAM_HANG_DUMP_S")
    if hang:  # a run that must end by then: dump all stacks and exit 1
        try:
            seconds = float(hang)
            if not seconds > 0:
                raise ValueError
        except ValueError:
            sys.exit(f"error: MELSTREAM_HANG_DUMP_S={hang!r} must be a positive number of seconds")
        faulthandler.dump_traceback_later(seconds, exit=True)


if __name__ == "__main__":
    run_cli(main)
