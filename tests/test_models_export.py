"""Export: ONNX Runtime / TorchScript equal torch, run-directory export, int8 report, CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import models
from models.__main__ import main as cli
from models.export import ExportWrapper, export_encoder, load_run, run_exported


@pytest.mark.parametrize("name", ["mobile", "audio_ntt"])
def test_onnx_runtime_matches_torch(tmp_path, name: str) -> None:
    torch.manual_seed(0)
    enc = models.build_encoder(name).eval()
    path = tmp_path / f"{name}.onnx"
    report = export_encoder(enc, path, "onnx")
    assert report["max_abs_diff_vs_torch"] < 1e-4
    for b, t in [(1, 96), (3, 300), (2, 1001)]:  # dynamic batch and time
        x = torch.randn(b, 1, 64, t)
        with torch.no_grad():
            ref = enc(x).numpy()
        out = run_exported(path, "onnx", x)
        assert out.shape == ref.shape
        np.testing.assert_allclose(out, ref, atol=1e-4, rtol=0)


def test_torchscript_frames_export(tmp_path) -> None:
    enc = models.build_encoder("mobile").eval()
    path = tmp_path / "mobile_frames.pt"
    report = export_encoder(enc, path, "torchscript", output="frames")
    assert report["max_abs_diff_vs_torch"] < 1e-5
    x = torch.randn(2, 1, 64, 320)
    with torch.no_grad():
        np.testing.assert_allclose(run_exported(path, "torchscript", x), enc.frames(x).numpy(), atol=1e-5)


def _write_run(run, enc: models.Encoder, input_norm) -> None:
    run.mkdir()
    save_file({k: v.contiguous() for k, v in enc.state_dict().items()}, str(run / "encoder.safetensors"))
    meta = {"encoder": enc.name, "kwargs": enc.config(), "frontend": {"name": "byol_a", "n_mels": enc.n_mels},
            "input_norm": input_norm, "method": "byol_a", "step": 10, "embedding_dim": enc.embedding_dim,
            "format_version": 1}
    (run / "encoder.json").write_text(json.dumps(meta))


def test_export_run_directory_with_input_norm_and_int8(tmp_path) -> None:
    torch.manual_seed(3)
    enc = models.build_encoder("audio_ntt", d=512).eval()
    norm = {"mean": -6.5, "std": 4.0}
    run = tmp_path / "run"
    _write_run(run, enc, norm)
    rebuilt, meta = load_run(run)
    assert meta["input_norm"] == norm and rebuilt.config() == enc.config()

    assert cli(["export", str(run), "--format", "onnx", "--quantize", "int8"]) == 0
    report = json.loads((run / "audio_ntt.onnx.export.json").read_text())
    assert report["max_abs_diff_vs_torch"] < 1e-4
    x = torch.randn(2, 1, 64, 96) * 4 - 6.5
    with torch.no_grad():
        ref = enc((x - norm["mean"]) / norm["std"]).numpy()
    np.testing.assert_allclose(run_exported(run / "audio_ntt.onnx", "onnx", x), ref, atol=1e-4, rtol=0)
    q = report["int8"]
    assert q["bytes"] < 0.4 * report["bytes"]            # weights now 8-bit
    assert 0 < q["rel_l2"] < 0.1 and q["min_cosine"] > 0.99  # small but non-zero drift


def test_torchscript_int8_quantizes_linear_layers(tmp_path) -> None:
    enc = models.build_encoder("audio_ntt", d=512).eval()
    report = export_encoder(enc, tmp_path / "a.pt", "torchscript", quantize="int8")
    assert report["int8"]["bytes"] < 0.5 * report["bytes"]
    assert report["int8"]["min_cosine"] > 0.99


def test_export_wrapper_validates_output() -> None:
    with pytest.raises(ValueError):
        ExportWrapper(models.build_encoder("mobile"), output="logits")


def test_cli_summary_and_random_export(tmp_path, capsys) -> None:
    assert cli(["summary", "--encoders", "mobile", "--frames", "96"]) == 0
    out = capsys.readouterr().out
    assert "| mobile | 126,528 | 64 | 9.26M |" in out
    assert cli(["export", "--encoder", "mobile", "--format", "torchscript", "--out", str(tmp_path / "m.pt")]) == 0
    assert (tmp_path / "m.pt").stat().st_size > 100_000
    assert cli(["export", "--format", "onnx"]) == 2  # one line "error: export: ...", exit 2 (shards.cli)
