"""The built wheel trains without the checkout: ``melstream train`` from a fresh venv outside it.

The wheel is built from a copy of the working tree (setuptools from the checkout's venv, no build
isolation: nothing is downloaded) and installed with ``--no-deps`` into a new venv under ``tmp_path``.
The dependencies (torch, ...) come from the checkout's venv through a ``.pth`` line naming its
site-packages; that only appends the folder, so the checkout's editable-install hook (a ``.pth`` in
that folder) is not run and the checkout itself is never on ``sys.path``.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import site
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 300  # seconds per command, far above the few seconds each takes: a hung command fails the test


def _uv() -> str:
    found = sorted(glob.glob(os.path.join(ROOT, ".tools", "uv-*", "bin", "uv"))) or [shutil.which("uv") or ""]
    assert found[-1], "no uv: run `make setup` (it installs the pinned uv under .tools/)"
    return found[-1]


def _run(cmd: list[str], cwd: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, f"{cmd[:3]} exited {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}"
    return p


def _copy_tree(dst: str) -> None:
    """pyproject.toml, README.md and every top-level package of the working tree (committed or not)."""
    os.makedirs(dst)
    for f in ("pyproject.toml", "README.md"):
        shutil.copy2(os.path.join(ROOT, f), dst)
    for name in sorted(os.listdir(ROOT)):
        if name not in ("tests", "bench") and os.path.isfile(os.path.join(ROOT, name, "__init__.py")):
            shutil.copytree(os.path.join(ROOT, name), os.path.join(dst, name),
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def test_wheel_installs_and_trains_outside_the_checkout(demo_small, tmp_path):
    env = {"PATH": os.pathsep.join([str(tmp_path / "venv" / "bin"), "/usr/bin", "/bin"]), "HOME": str(tmp_path),
           "UV_OFFLINE": "1", "UV_NO_CACHE": "1", "UV_PYTHON_DOWNLOADS": "never", "MELSTREAM_PROGRESS": "0",
           "OMP_NUM_THREADS": "1"}
    src, dist, venv = str(tmp_path / "src"), str(tmp_path / "dist"), str(tmp_path / "venv")
    _copy_tree(src)
    _run([_uv(), "build", "--wheel", "--no-build-isolation", "--python", sys.executable, "-o", dist, src], str(tmp_path), env)
    wheels = glob.glob(os.path.join(dist, "melstream-*.whl"))
    assert len(wheels) == 1, os.listdir(dist)

    _run([sys.executable, "-m", "venv", "--without-pip", venv], str(tmp_path), env)
    py = os.path.join(venv, "bin", "python")
    _run([_uv(), "pip", "install", "--python", py, "--no-deps", wheels[0]], str(tmp_path), env)
    purelib = os.path.join(venv, "lib", f"python{sys.version_info.major}.{sys.version_info.minor}", "site-packages")
    assert os.path.isdir(os.path.join(purelib, "melstream")) and not os.path.exists(os.path.join(purelib, "tests"))
    for script in ("melstream", "melstream-ingest", "melstream-shards", "melstream-eval"):  # the old names stay
        assert os.path.isfile(os.path.join(venv, "bin", script)), script
    with open(os.path.join(purelib, "_checkout_deps.pth"), "w") as f:  # the dependencies, not the checkout
        f.write("\n".join(site.getsitepackages()) + "\n")

    where = json.loads(_run([py, "-c", "import json, sys, melstream, train, shards, eval; print(json.dumps("
                                       "[m.__file__ for m in (melstream, train, shards, eval)] + [sys.path]))"],
                            str(tmp_path), env).stdout)
    for f in where[:4]:
        assert f.startswith(purelib + os.sep), f
    assert not any(os.path.realpath(os.path.join(str(tmp_path), p)) == os.path.realpath(ROOT) for p in where[4]), where[4]

    help_ = _run([os.path.join(venv, "bin", "melstream"), "train", "--help"], str(tmp_path), env).stdout
    assert help_.startswith("usage: melstream train") and "--method" in help_ and "temporal_gap" in help_

    run = str(tmp_path / "run")
    p = _run([os.path.join(venv, "bin", "melstream"), "train", "--method", "temporal_gap",
              "--shards", os.path.join(demo_small[0], "pretrain"), "--out", run, "--steps", "2", "--batch-size", "8",
              "--num-workers", "0", "--log-every", "1", "--save-every", "2", "--shuffle-buffer", "16", "--tracker", "none"],
             str(tmp_path), env)
    assert "done: 2 steps" in p.stdout, p.stdout
    with open(os.path.join(run, "encoder.json")) as f:
        assert json.load(f)["encoder"] == "mobile"
    assert os.path.getsize(os.path.join(run, "encoder.safetensors")) > 0
    rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2]
