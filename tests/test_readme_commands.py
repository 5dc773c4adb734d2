"""The README's commands parse: each quick-tour program exists and accepts its flags; each `make X` is a target.

The tour itself runs in ``make readme-check`` (tests/readme_check.py, minutes).  Here, in seconds, every tour
command goes through its program's real argument parser in this process: ``argparse`` is stopped right after
a successful parse, so nothing is ingested, trained or written.  A flag the program does not have, a bad
choice (``--method nosuch``) or a missing required flag fails the test with argparse's own message.
"""
from __future__ import annotations

import argparse
import contextlib
import faulthandler
import importlib.metadata
import importlib.util
import io
import os
import re
import runpy
import shlex
import signal
import sys
import tempfile

import pytest
from readme_check import README, ROOT, shorten, tour_commands


class _Parsed(BaseException):
    """Raised in place of running the command once its arguments parsed (BaseException: the CLI boundary
    in shards/cli.py turns every Exception into an error line)."""


def _target(argv: list[str]):
    """(how to run, argv for sys.argv) of a tour command: ``python -m MOD``, ``python FILE.py`` or a console script."""
    prog = os.path.basename(argv[0])
    if re.fullmatch(r"python(3(\.\d+)?)?", prog):
        if len(argv) >= 3 and argv[1] == "-m":
            mod = argv[2]
            assert importlib.util.find_spec(mod) is not None, f"no module {mod!r}: {shlex.join(argv)}"
            return (lambda: runpy.run_module(mod, run_name="__main__", alter_sys=True)), [mod, *argv[3:]]
        path = os.path.join(ROOT, argv[1]) if len(argv) >= 2 else ""
        assert path.endswith(".py") and os.path.isfile(path), f"no script {argv[1:2]}: {shlex.join(argv)}"
        return (lambda: runpy.run_path(path, run_name="__main__")), [path, *argv[2:]]
    eps = [e for e in importlib.metadata.entry_points(group="console_scripts") if e.name == prog]
    assert eps, f"{prog!r} is neither `python -m MODULE`, `python FILE.py` nor an installed console script"
    fn = eps[0].load()
    return (lambda: fn()), [prog, *argv[1:]]


def parse_only(cmd: str) -> argparse.Namespace:
    """Run ``cmd``'s program up to its argument parse; the parsed namespace, or AssertionError with the reason."""
    argv = shorten(shlex.split(cmd), 2)
    run, sys_argv = _target(argv)
    real_parse = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(real_parse(self, args, namespace))

    saved_argv, saved_env = sys.argv[:], dict(os.environ)
    argparse.ArgumentParser.parse_args = parse_then_stop  # type: ignore[method-assign]
    # a real file: CLIs may hand stderr's descriptor to faulthandler (train/pretrain.py's SIGUSR1 stack dump)
    with tempfile.TemporaryFile("w+") as err:
        try:
            sys.argv = sys_argv
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                run()
        except _Parsed as p:
            return p.args[0]
        except SystemExit as e:
            err.seek(0)
            raise AssertionError(f"{cmd}\n  does not parse (exit {e.code}): {err.read().strip()[-600:]}") from None
        finally:
            argparse.ArgumentParser.parse_args = real_parse  # type: ignore[method-assign]
            sys.argv = saved_argv
            os.environ.clear()
            os.environ.update(saved_env)
            if hasattr(signal, "SIGUSR1"):  # undo a CLI's stack-dump handler in this process
                faulthandler.unregister(signal.SIGUSR1)
    raise AssertionError(f"{cmd}\n  finished without parsing its arguments with argparse")


COMMANDS = tour_commands()


def test_tour_has_one_command_per_stage():
    assert len(COMMANDS) >= 4, COMMANDS  # ingest, inspect, train, evaluate
    with open(README, encoding="utf-8") as f:
        assert len(f.read().splitlines()) <= 200, "README.md is the front door: 200 lines at most"


@pytest.mark.parametrize("cmd", COMMANDS, ids=[" ".join(c.split()[:4]) for c in COMMANDS])
def test_tour_command_parses(cmd):
    parse_only(cmd)


def test_parse_only_rejects_an_unknown_flag_and_a_bad_choice():
    ok = next(c for c in COMMANDS if "--steps" in c)
    assert parse_only(ok).steps == 2  # shortened like `make readme-check`
    with pytest.raises(AssertionError, match="unrecognized arguments: --no-such-flag"):
        parse_only(ok + " --no-such-flag 1")
    with pytest.raises(AssertionError, match="invalid choice"):
        parse_only(re.sub(r"--method \S+", "--method no_such_method", ok))
    with pytest.raises(AssertionError, match="no module"):
        parse_only("python -m no_such_module --help")


def _make_targets() -> set[str]:
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as f:
        return {m.group(1) for m in re.finditer(r"^([A-Za-z0-9_.-]+):(?!=)", f.read(), re.M)}


def test_every_make_command_in_the_readme_is_a_target():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    used = set(re.findall(r"(?:^|`|\s)make ([a-z][a-z0-9-]*)", text, re.M))
    assert {"demo", "test", "readme-check"} <= used, used
    missing = sorted(used - _make_targets())
    assert not missing, f"README names make targets the Makefile lacks: {missing}"


def test_tour_commands_reads_only_tour_blocks(tmp_path):
    p = tmp_path / "R.md"
    p.write_text("```bash\nmake demo\n```\n```bash tour\n# a comment\npython -m a --x 1 \\\n    --y 2\n\npython -m b\n```\n"
                 "text\n```bash tour\npython -m c --steps 400\n```\n")
    assert tour_commands(str(p)) == ["python -m a --x 1 --y 2", "python -m b", "python -m c --steps 400"]
    assert shorten(shlex.split("python -m c --steps 400"), 20)[-1] == "20"
    p.write_text("```bash tour\npython -m a \\\n```\n")
    with pytest.raises(ValueError, match="backslash"):
        tour_commands(str(p))
