"""Run the README's quick tour as written: ``make readme-check``.

The tour is every fenced block tagged ``bash tour`` in README.md; each non-empty line that is not a comment is
one command (a trailing backslash continues it).  The commands run one after another, without a shell, in a
scratch directory (removed afterwards unless ``--workdir`` names one), with this interpreter's ``bin`` first on
``PATH`` (as after ``source .venv/bin/activate``).  The first command that exits non-zero stops the check.

``--steps N`` shortens training: the value of every ``--steps`` flag becomes N (0: as written).

    .venv/bin/python tests/readme_check.py [--steps 20] [--workdir DIR] [--timeout 1800]
"""
from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
TOUR_TAG = "bash tour"
_FENCE = re.compile(r"^```(.*)$")
MAX_COMMANDS = 50  # a README tour is a handful of commands; more means a fence was left open


def tour_commands(path: str = README) -> list[str]:
    """The commands of the blocks fenced as ```bash tour, in order."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    out: list[str] = []
    in_tour = in_block = False
    pending = ""
    for n, line in enumerate(lines, 1):
        m = _FENCE.match(line.strip())
        if m:
            if in_block:
                if pending:
                    raise ValueError(f"{path}:{n}: a tour command ends in a backslash before the fence closes")
                in_block = in_tour = False
            else:
                in_block, in_tour = True, m.group(1).strip() == TOUR_TAG
            continue
        if not in_tour:
            continue
        text = line.strip()
        if not pending and (not text or text.startswith("#")):
            continue
        if text.endswith("\\"):
            pending += text[:-1].rstrip() + " "
            continue
        out.append((pending + text).strip())
        pending = ""
    if in_block:
        raise ValueError(f"{path}: a fenced block is not closed")
    if len(out) > MAX_COMMANDS:
        raise ValueError(f"{path}: {len(out)} tour commands (at most {MAX_COMMANDS})")
    return out


def shorten(argv: list[str], steps: int) -> list[str]:
    """``argv`` with the value of every ``--steps`` flag set to ``steps`` (unchanged when ``steps`` is 0)."""
    if steps <= 0:
        return list(argv)
    out = list(argv)
    for i, a in enumerate(out):
        if a == "--steps" and i + 1 < len(out):
            out[i + 1] = str(steps)
        elif a.startswith("--steps="):
            out[i] = f"--steps={steps}"
    return out


def run_tour(commands: list[str], workdir: str, steps: int, timeout: float) -> int:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    start = time.monotonic()
    for i, cmd in enumerate(commands, 1):
        argv = shorten(shlex.split(cmd), steps)
        print(f"[{i}/{len(commands)}] {shlex.join(argv)}", flush=True)
        t0 = time.monotonic()
        try:
            rc = subprocess.run(argv, cwd=workdir, env=env, timeout=timeout).returncode
        except FileNotFoundError:
            print(f"error: readme-check: command {i}: program not found: {argv[0]}", file=sys.stderr)
            return 1
        except subprocess.TimeoutExpired:
            print(f"error: readme-check: command {i}: still running after {timeout:.0f} s: {cmd}", file=sys.stderr)
            return 1
        print(f"[{i}/{len(commands)}] exit {rc} after {time.monotonic() - t0:.1f} s", flush=True)
        if rc != 0:
            print(f"error: readme-check: command {i} exited with {rc}: {cmd}", file=sys.stderr)
            return 1
    print(f"readme-check: {len(commands)} commands passed in {time.monotonic() - start:.1f} s (in {workdir})")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--readme", default=README)
    ap.add_argument("--steps", type=int, default=0, help="set every --steps value to N (0: as written)")
    ap.add_argument("--workdir", default=None, help="run here and keep the outputs (default: a scratch directory)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per command at most")
    a = ap.parse_args(argv)
    if a.steps < 0 or not 0 < a.timeout <= 86400:
        print("error: readme-check: --steps must be >= 0 and --timeout in (0, 86400]", file=sys.stderr)
        return 2
    try:
        commands = tour_commands(a.readme)
    except (OSError, ValueError) as e:
        print(f"error: readme-check: {e}", file=sys.stderr)
        return 2
    if not commands:
        print(f"error: readme-check: no ```{TOUR_TAG} block in {a.readme}", file=sys.stderr)
        return 2
    if a.workdir:
        os.makedirs(a.workdir, exist_ok=True)
        return run_tour(commands, a.workdir, a.steps, a.timeout)
    with tempfile.TemporaryDirectory(prefix="readme-check-") as tmp:
        return run_tour(commands, tmp, a.steps, a.timeout)


if __name__ == "__main__":
    sys.exit(main())
