"""`make gpu-check` in its CPU form: the same sections on a tiny config, so the script cannot rot.

Device and reference are both CPU here, so every parity figure must be (near) zero; the sections
the CPU form cannot run (NCCL DDP, unselected methods, unregistered encoders) must say why.
"""
from __future__ import annotations

import json
import math
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import gpu_check  # noqa: E402 - bench/ is put on the path above
import gpu_sections  # noqa: E402

METHODS = ("temporal_gap", "byol_a")  # one worker-side sampler, one views sampler; both cheap on CPU


def _walk(node, path=""):
    """Every (path, dict) in the JSON tree."""
    if isinstance(node, dict):
        yield path, node
        for k, v in node.items():
            yield from _walk(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def _numbers(node):
    if isinstance(node, bool):
        return
    if isinstance(node, (int, float)):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _numbers(v)
    elif isinstance(node, list):
        for v in node:
            yield from _numbers(v)


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """One run of the CPU form (in-process: the trainer, eval and HEAR calls are the script's own)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("ACCELERATE_USE_CPU", "true")
    base = tmp_path_factory.mktemp("gpu_check")
    out = str(base / "results" / "gpu.json")
    try:
        rc = gpu_check.main(["--device", "cpu", "--methods", ",".join(METHODS), "--work", str(base / "work"),
                             "--out", out])
    finally:
        mp.undo()
    with open(out) as f:
        return rc, json.load(f), out


def test_cpu_form_writes_every_section_with_finite_figures(cpu_run):
    from models.objectives import OBJECTIVES

    rc, r, out = cpu_run
    assert rc == 0 and r["ok"] is True, {k: v.get("error") or v["status"] for k, v in r["sections"].items()}
    assert set(r["sections"]) == set(gpu_sections.SECTIONS)
    assert r["device"] == "cpu" and r["profile"]["name"] == "tiny" and r["machine"]["torch"]
    assert r["tolerances"] == gpu_sections.TOL and "finished" in r
    assert [p for p in os.listdir(os.path.dirname(out)) if p != "gpu.json"] == []  # atomic: no temp file left
    for x in _numbers(r["sections"]):
        assert math.isfinite(x)
    S = r["sections"]
    # every registered method has a row, the selected ones trained (bf16 autocast on CPU here)
    rows = {row["method"]: row for row in S["methods_bf16"]["rows"]}
    assert set(rows) == set(OBJECTIVES)
    for m in METHODS:
        row = rows[m]
        assert row["status"] == "ok" and row["steps"] == 3 and row["finite"] and row["moving"]
        assert row["weights_max_change"] > 0
        assert row["encoder"] == OBJECTIVES[m].default_encoder[0]
    assert all(rows[m]["status"] == "skipped" for m in set(OBJECTIVES) - set(METHODS))


def test_cpu_form_parity_is_exact_on_one_device(cpu_run):
    _, r, _ = cpu_run
    S = r["sections"]
    fe = S["frontend"]
    assert fe["status"] == "ok" and {x["preset"] for x in fe["rows"]} == set(gpu_sections.frontend_presets())
    assert all(x["max_abs_diff"] <= 1e-6 for x in fe["rows"])
    fp = {x["method"]: x for x in S["fp32_vs_cpu"]["rows"]}
    tg = fp["temporal_gap"]  # in-process trainer vs train/pretrain.py in a subprocess, same seed
    assert tg["status"] == "ok" and len(tg["losses_device"]) == len(tg["losses_cpu"]) == 2
    assert tg["first_loss_rel_diff"] <= 1e-6 and tg["losses_device"][0] > 0
    ev = S["eval"]
    assert ev["status"] == "ok" and ev["clips_compared"] > 0 and ev["embedding_max_rel_diff"] <= 1e-6
    assert ev["scores_identical"] and ev["scores_cpu"] == ev["scores_device"]
    assert {k.split("/")[-1] for k in ev["scores_cpu"]} == {"linear", "knn"}
    he = S["hear"]
    assert he["status"] == "ok" and he["timestamps_equal"]
    assert he["scene_rel_diff"] <= 1e-6 and he["timestamp_rel_diff"] <= 1e-6
    assert he["scene_shape"][0] == 2 and he["timestamp_shape"][0] == 2


def test_cpu_form_throughput_and_skips_carry_reasons(cpu_run):
    from models import ENCODERS
    from models.objectives import OBJECTIVES

    _, r, _ = cpu_run
    thr = {(x["method"], x["encoder"]): x for x in r["sections"]["throughput"]["rows"]}
    assert set(thr) == {(m, e) for m, e, _, _ in gpu_sections.THROUGHPUT}
    for (m, e), x in thr.items():
        if m not in OBJECTIVES or e not in ENCODERS:
            assert x["status"] == "skipped" and "not registered" in x["reason"]
        elif m in METHODS:
            assert x["status"] == "ok" and x["in_memory"]["examples_per_s"] > 0
            assert x["pipeline"]["1"]["examples_per_s"] > 0 and x["pipeline"]["1"]["ratio_to_in_memory"] > 0
        else:
            assert x["status"] == "skipped" and x["reason"]
    ddp = r["sections"]["ddp"]
    assert ddp["status"] == "skipped" and "2 GPUs" in ddp["reason"]
    for path, node in _walk(r):
        if node.get("status") == "skipped":
            assert isinstance(node.get("reason"), str) and node["reason"], path


def test_ddp_command_launches_two_processes():
    cmd = gpu_sections.ddp_command("S", "O", 10, 64, 29500)
    i = cmd.index("accelerate.commands.launch")
    assert cmd[i + 1:i + 4] == ["--multi_gpu", "--num_processes", "2"]
    assert cmd[cmd.index("--method") + 1] == "byol_a" and cmd[cmd.index("--steps") + 1] == "10"
    assert "--cpu" not in cmd


def test_failing_section_is_recorded_and_the_rest_still_run(tmp_path, monkeypatch, capsys):
    def boom(c):
        raise RuntimeError("planted failure\nsecond line")

    monkeypatch.setitem(gpu_sections.SECTION_FNS, "frontend", boom)
    monkeypatch.setattr(gpu_check, "SECTION_FNS", gpu_sections.SECTION_FNS)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    out = tmp_path / "gpu.json"
    rc = gpu_check.main(["--device", "cpu", "--sections", "frontend,ddp", "--work", str(tmp_path / "w"),
                         "--out", str(out)])
    r = json.loads(out.read_text())
    assert rc == 1 and r["ok"] is False
    assert r["sections"]["frontend"]["status"] == "error"
    assert r["sections"]["frontend"]["error"] == "RuntimeError: planted failure"
    assert r["sections"]["ddp"]["status"] == "skipped" and r["sections"]["ddp"]["reason"]
    assert r["sections"]["hear"] == {"status": "skipped", "reason": "not selected (--sections)", "seconds": 0.0}
    assert "overall: FAIL" in capsys.readouterr().out


def test_time_limit_skips_with_reason(tmp_path, monkeypatch):
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    out = tmp_path / "gpu.json"
    rc = gpu_check.main(["--device", "cpu", "--sections", "frontend", "--time-limit", "0.001",
                         "--work", str(tmp_path / "w"), "--out", str(out)])
    fe = json.loads(out.read_text())["sections"]["frontend"]
    assert rc == 0 and fe["status"] == "skipped" and fe["reason"].startswith("time limit")


def test_without_cuda_one_line_and_exit_0(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: `--device auto` runs the full check")
    out = tmp_path / "gpu.json"
    assert gpu_check.main(["--out", str(out)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "no CUDA" in printed[0]
    assert not out.exists()


def test_full_fp32_turns_tf32_off_and_restores_it():
    """Eval and HEAR embed inside ``full_fp32`` (cuDNN TF32 would move GPU embeddings by ~1e-3)."""
    import torch

    from eval.embed import full_fp32

    cudnn, mm = torch.backends.cudnn, torch.backends.cuda.matmul
    before = (cudnn.allow_tf32, mm.allow_tf32)
    cudnn.allow_tf32 = mm.allow_tf32 = True
    try:
        with pytest.raises(RuntimeError), full_fp32():
            assert not cudnn.allow_tf32 and not mm.allow_tf32
            raise RuntimeError("inside")
        assert cudnn.allow_tf32 and mm.allow_tf32
    finally:
        cudnn.allow_tf32, mm.allow_tf32 = before


def test_subprocess_error_line_names_the_cause():
    err = ("Traceback (most recent call last):\n  File x\nValueError: shards have 64 mel bins\n"
           "subprocess.CalledProcessError: Command '[...]' returned non-zero exit status 1.\n")
    assert gpu_sections._error_line(err) == "ValueError: shards have 64 mel bins"
    assert gpu_sections._error_line("error: unknown method 'x'\n") == "error: unknown method 'x'"
    assert gpu_sections._error_line("") == "(no stderr)"
