"""The ``melstream`` command: dispatch, help under its own name, one-line errors, bench from a checkout."""
from __future__ import annotations

import os
import sys

import pytest

from melstream import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(argv, capsys):
    capsys.readouterr()
    rc = cli.main(argv)
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_top_level_help_lists_every_command(capsys):
    rc, out, _ = run(["--help"], capsys)
    assert rc == 0 and out.startswith("usage: melstream COMMAND")
    for name in ("ingest", "shards", "train", "eval", "models", "bench"):
        assert f"\n  {name} " in out
    rc, _, err = run([], capsys)
    assert rc == 2 and "usage: melstream" in err
    assert run(["--version"], capsys)[:2] == (0, "melstream 0.1.0\n")


def test_unknown_command_is_one_line(capsys):
    rc, out, err = run(["trian", "--method", "x"], capsys)
    assert rc == 2 and out == "" and err.count("\n") == 1 and err.startswith("error: melstream: unknown command 'trian'")


@pytest.mark.parametrize("argv, usage", [
    (["ingest", "--help"], "usage: melstream ingest"),
    (["shards", "--help"], "usage: melstream shards"),
    (["eval", "--help"], "usage: melstream eval"),
    (["train", "--help"], "usage: melstream train"),
    (["models", "summary", "--help"], "usage: melstream models summary"),
    (["models", "import-weights", "--help"], "usage: melstream models import-weights"),
])
def test_subcommand_help_names_melstream(argv, usage, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 0 and capsys.readouterr().out.startswith(usage)


def test_train_flags_are_pretrain_flags(capsys):
    """`melstream train`, `python -m train` and train/pretrain.py share one parser and one main."""
    import train.__main__ as tm
    import train.pretrain as tp
    from models import ENCODERS
    from models.objectives import OBJECTIVES
    from train.config import build_parser

    assert tm.main is tp.main
    flags = {a.dest: a.option_strings for a in build_parser(sorted(OBJECTIVES), sorted(ENCODERS))._actions}
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    assert all(opt in out for opts in flags.values() for opt in opts)
    rc, _, err = run(["train", "--method", "temporal_gap", "--steps", "-3"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "--steps" in err


def test_models(capsys):
    rc, out, _ = run(["models", "list"], capsys)
    assert rc == 0 and "temporal_gap" in out and "mobile" in out and "samplers" in out
    assert run(["models"], capsys)[0] == 2 and run(["models", "--help"], capsys)[0] == 0
    rc, _, err = run(["models", "zoo"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "unknown command 'zoo'" in err


def test_shards_under_melstream(demo_small, capsys):
    rc, out, _ = run(["shards", "inspect", os.path.join(demo_small[0], "pretrain")], capsys)
    assert rc == 0 and "clips" in out


def test_bench_runs_a_checkout_script(capsys, monkeypatch):
    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    assert run(["bench", "train", "--help"], capsys)[0] == 0
    assert calls == [[sys.executable, os.path.join(ROOT, "bench", "bench_train.py"), "--help"]]
    rc, out, _ = run(["bench"], capsys)
    assert rc == 0 and "train" in out and "gpu_check" in out and "_common" not in out
    for bad in ("nope", "../tests/conftest", "/etc/passwd"):
        rc, _, err = run(["bench", bad], capsys)
        assert rc == 2 and err.count("\n") == 1 and "unknown script" in err
    assert len(calls) == 1


def test_bench_outside_a_checkout_says_why(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site-packages" / "melstream" / "cli.py"))
    monkeypatch.chdir(tmp_path)
    rc, _, err = run(["bench", "train"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "checkout" in err
    assert run(["bench", "--help"], capsys)[1].count("checkout") >= 1
