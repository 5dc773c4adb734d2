"""Every number a CLI takes is parsed by the one typed parser with its bounds (issue 22's principle),
also in the commands the row-by-row modules do not cover: ``eval run``, ``models`` and the ``wds`` /
``parquet`` sources.  Each refusal is one ``error:`` line naming the flag, before anything is read or
written (the output folder stays absent)."""
from __future__ import annotations

import os

import pytest

from eval.__main__ import MAX_THREADS, MAX_WORKERS
from eval.__main__ import main as eval_main
from ingest.__main__ import main as ingest_main
from models.__main__ import main as models_main
from tests.test_hostile_inputs import assert_one_line


def cli(main, argv, capsys) -> tuple[int, str, str]:
    """``main(argv)`` in-process; argparse's refusal (``SystemExit(2)``) counts as its exit status."""
    capsys.readouterr()
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    cap = capsys.readouterr()
    return rc, cap.out, cap.err

EVAL_BAD = [("--seeds", "-1"), ("--seeds", "100000000"), ("--k", "0"), ("--k", "nan"), ("--batch-size", "0"),
            ("--batch-size", "100000000"), ("--workers", "0"), ("--workers", str(MAX_WORKERS + 1)),
            ("--threads", str(MAX_THREADS + 1)), ("--max-epochs", "-5"), ("--limit", "-1"),
            ("--window-frames", "0"), ("--finetune-steps", "0"), ("--patience", "-1")]


@pytest.mark.parametrize("flag,value", EVAL_BAD)
def test_eval_run_numbers_are_bounded(tmp_path, capsys, flag, value):
    out = tmp_path / "report"
    rc, _, err = cli(eval_main, ["run", "--model", "untrained:mobile", "--tasks", "demo_family", "--data-root",
                                 str(tmp_path), "--out", str(out), flag, value], capsys)
    assert rc == 2
    assert_one_line(err, f"argument {flag}")
    assert not os.path.exists(out)


@pytest.mark.parametrize("argv,flag", [
    (["summary", "mobile", "--frames", "0"], "--frames"),
    (["summary", "mobile", "--frames", "96", "99999999"], "--frames"),
])
def test_models_numbers_are_bounded(capsys, argv, flag):
    rc, _, err = cli(models_main, argv, capsys)
    assert rc == 2
    assert_one_line(err, flag)


@pytest.mark.parametrize("source,extra", [
    ("wds", ["--max-member-bytes", "0MB"]), ("wds", ["--max-member-bytes", "lots"]),
    ("wds", ["--max-member-bytes", "100GB"]), ("wds", ["--list-threads", "0"]),
    ("wds", ["--list-threads", "1000"]), ("parquet", ["--max-member-bytes", "-1"]),
])
def test_wds_and_parquet_numbers_are_bounded(tmp_path, capsys, source, extra):
    out = tmp_path / "out"
    rc, _, err = cli(ingest_main, [source, str(tmp_path / "x.tar"), "--out", str(out), *extra], capsys)
    assert rc == 2
    assert_one_line(err, extra[0])
    assert not os.path.exists(out)
