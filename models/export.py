"""Export an encoder for on-device use (Tagliasacchi et al. 2019 target phones, Sec. 1 and 4).

``python -m models export RUN_DIR --format torchscript|onnx [--quantize int8]`` rebuilds the encoder
from ``RUN_DIR/encoder.json`` + ``RUN_DIR/encoder.safetensors`` (format: ``shards/rundir.py``; this is
the only place in ``models`` that reads files), bakes the run's
``input_norm`` (``(x - mean) / std``) in front of it, and writes one self-contained file:

* ``torchscript``: ``torch.jit.trace`` of the eval-mode wrapper (``.pt``); batch and time stay
  dynamic because shapes are traced symbolically.
* ``onnx``: ``torch.onnx.export`` (the torch.export-based exporter; the legacy TorchScript
  exporter as a fallback) with dynamic batch and time axes, weights inside the ``.onnx`` file.

``--quantize int8`` also writes a dynamically quantised copy -- weights int8, activations quantised
on the fly: ``torch.ao.quantization.quantize_dynamic`` (``nn.Linear`` only) for TorchScript and
``onnxruntime.quantization.quantize_dynamic`` (MatMul/Gemm and Conv, uint8 weights because ONNX
Runtime's CPU ConvInteger kernel needs them) for ONNX -- and reports its size and its drift from
the float model on a fixed random batch.  ``--encoder NAME`` exports random weights instead (a quick
on-device check without a run).
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from shards import rundir
from shards.norm import apply_input_norm
from shards.typed import build_checked, coerce_kwargs

from .base import Encoder
from .registry import ENCODERS, build_encoder


def load_run(run_dir: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Encoder, dict[str, Any]]:
    """Rebuild the encoder of a run directory (or of its ``encoder.json``) in eval mode; returns
    ``(encoder, meta)``.  Every field is validated first (``shards.rundir``); one-line errors."""
    run = str(run_dir)
    meta = rundir.read_meta(run)
    if meta["encoder"] not in ENCODERS:
        raise ValueError(f"{run}: unknown encoder {meta['encoder']!r}; known: {', '.join(ENCODERS.names())}")
    what = f"{os.path.join(rundir.run_dir_of(run), rundir.META)}: bad kwargs"  # outside input: typed, then built
    kwargs = coerce_kwargs([ENCODERS[meta["encoder"]]], meta["kwargs"], what, meta["encoder"])
    enc = build_checked(build_encoder, meta["encoder"], kwargs, what)
    try:
        missing, unexpected = enc.load_state_dict(rundir.read_weights(run), strict=False)
    except RuntimeError as e:  # shapes of another size of this encoder
        raise ValueError(f"{run}: weights do not match {meta['encoder']} {kwargs}: "
                         f"{str(e).strip().splitlines()[-1].strip()[:200]}") from None
    if missing or unexpected:
        raise ValueError(f"{run}: weights do not match {meta['encoder']} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return enc.to(device).eval(), meta


class ExportWrapper(nn.Module):
    """Eval-mode encoder with the input normalisation baked in; returns embedding or frames."""

    mean: Tensor
    inv_std: Tensor

    def __init__(self, encoder: Encoder, input_norm: dict[str, float] | None = None, output: str = "embedding") -> None:
        super().__init__()
        if output not in ("embedding", "frames"):
            raise ValueError("output must be 'embedding' or 'frames'")
        self.encoder, self.output = encoder.eval(), output
        self.per_example = bool(input_norm and input_norm.get("type") == "per_example")
        mean, std = (input_norm["mean"], input_norm["std"]) if input_norm and not self.per_example else (0.0, 1.0)
        self.register_buffer("mean", torch.tensor(float(mean)))
        self.register_buffer("inv_std", torch.tensor(1.0 / float(std)))

    def forward(self, logmel: Tensor) -> Tensor:
        if self.per_example:
            x = apply_input_norm(logmel, {"type": "per_example"})
        else:
            x = (logmel - self.mean) * self.inv_std
        return self.encoder(x) if self.output == "embedding" else self.encoder.frames(x)


def _example(encoder: Encoder, n_frames: int, batch: int = 2, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 1, encoder.n_mels, max(n_frames, encoder.min_frames), generator=g)


def export_onnx(wrapper: ExportWrapper, path: str | os.PathLike, n_frames: int = 96) -> str:
    """Write a single-file ONNX model with dynamic batch/time; returns the exporter used."""
    enc = wrapper.encoder
    x = _example(enc, n_frames)
    out_name = "embedding" if wrapper.output == "embedding" else "frames"
    out_axes = {0: "batch"} if wrapper.output == "embedding" else {0: "batch", 1: "time_out"}
    try:
        batch = torch.export.Dim("batch", min=1, max=65536)
        time = torch.export.Dim("time", min=max(enc.min_frames, 32), max=1_000_000)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (x,), str(path), dynamo=True, external_data=False, input_names=["logmel"],
                              output_names=[out_name], dynamic_shapes={"logmel": {0: batch, 3: time}})
        return "dynamo"
    except Exception:  # noqa: BLE001 - fall back to the TorchScript-based exporter
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, (x,), str(path), dynamo=False, opset_version=17, input_names=["logmel"],
                              output_names=[out_name], dynamic_axes={"logmel": {0: "batch", 3: "time"}, out_name: out_axes})
        return "torchscript-onnx"


def export_torchscript(wrapper: nn.Module, path: str | os.PathLike, n_frames: int = 96) -> None:
    x = _example(wrapper.encoder, n_frames)  # type: ignore[arg-type]
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(wrapper, (x,), check_trace=False)
        torch.jit.save(traced, str(path))


def run_exported(path: str | os.PathLike, fmt: str, x: Tensor) -> np.ndarray:
    """Run an exported file (ONNX Runtime on CPU, or TorchScript) on ``x``."""
    if fmt == "onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = torch.jit.load(str(path))
    with torch.no_grad():
        return m(x).numpy()


def _drift(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    r, o = ref.reshape(len(ref), -1).astype(np.float64), out.reshape(len(out), -1).astype(np.float64)
    cos = (r * o).sum(1) / (np.linalg.norm(r, axis=1) * np.linalg.norm(o, axis=1) + 1e-12)
    return {"max_abs_diff": float(np.abs(r - o).max()),
            "rel_l2": float(np.linalg.norm(r - o) / (np.linalg.norm(r) + 1e-12)),
            "min_cosine": float(cos.min())}


def quantize_int8(src: str | os.PathLike, dst: str | os.PathLike, fmt: str, wrapper: ExportWrapper | None = None,
                  n_frames: int = 96) -> None:
    """Dynamic int8 quantisation of an exported ONNX file, or of ``wrapper`` for TorchScript."""
    if fmt == "onnx":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        root = logging.getLogger()
        level = root.level
        root.setLevel(logging.ERROR)  # the quantiser logs a pre-processing hint at WARNING
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")
                quantize_dynamic(str(src), str(dst), weight_type=QuantType.QUInt8)
        finally:
            root.setLevel(level)
        return
    import copy

    assert wrapper is not None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = torch.ao.quantization.quantize_dynamic(copy.deepcopy(wrapper).eval(), {nn.Linear}, dtype=torch.qint8)
    export_torchscript(q, dst, n_frames)


def export_encoder(encoder: Encoder, out: str | os.PathLike, fmt: str = "onnx", *, output: str = "embedding",
                   n_frames: int = 96, input_norm: dict[str, float] | None = None, quantize: str = "none",
                   check_batch: int = 4) -> dict[str, Any]:
    """Export ``encoder`` to ``out``; returns a report (sizes, max |exported - torch|, int8 drift)."""
    if fmt not in ("onnx", "torchscript"):
        raise ValueError("format must be 'onnx' or 'torchscript'")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    wrapper = ExportWrapper(encoder, input_norm, output).eval()
    report: dict[str, Any] = {"encoder": encoder.name, "kwargs": encoder.config(), "format": fmt, "output": output,
                              "input_norm": input_norm, "path": str(out)}
    if fmt == "onnx":
        report["exporter"] = export_onnx(wrapper, out, n_frames)
    else:
        export_torchscript(wrapper, out, n_frames)
    report["bytes"] = out.stat().st_size
    x = _example(encoder, n_frames, batch=check_batch, seed=1)
    with torch.no_grad():
        ref = wrapper(x).numpy()
    report["check_input"] = list(x.shape)
    report["max_abs_diff_vs_torch"] = _drift(ref, run_exported(out, fmt, x))["max_abs_diff"]
    if quantize == "int8":
        q_path = out.with_name(out.stem + ".int8" + out.suffix)
        quantize_int8(out, q_path, fmt, wrapper, n_frames)
        q_bytes = q_path.stat().st_size
        report["int8"] = {"path": str(q_path), "bytes": q_bytes, "size_ratio": q_bytes / report["bytes"],
                          **_drift(ref, run_exported(q_path, fmt, x))}
    elif quantize != "none":
        raise ValueError("quantize must be 'none' or 'int8'")
    return report


def export_cli(checkpoint: str | None, *, encoder: str | None = None, kwargs: dict[str, Any] | None = None,
               fmt: str = "onnx", out: str | None = None, output: str = "embedding", n_frames: int = 96,
               quantize: str = "none", input_norm: bool = True) -> dict[str, Any]:
    """Back end of ``python -m models export``; also writes ``<out>.export.json`` with the report."""
    if (checkpoint is None) == (encoder is None):
        raise SystemExit("export: give either a run directory (CHECKPOINT) or --encoder NAME")
    if checkpoint is not None:
        enc, meta = load_run(checkpoint)
        norm = meta.get("input_norm") if input_norm else None
        base = Path(checkpoint)
    else:
        assert encoder is not None
        torch.manual_seed(0)
        enc, norm, base = build_encoder(encoder, **(kwargs or {})).eval(), None, Path(".")
    ext = ".onnx" if fmt == "onnx" else ".pt"
    path = Path(out) if out else base / f"{enc.name}{ext}"
    report = export_encoder(enc, path, fmt, output=output, n_frames=n_frames, input_norm=norm, quantize=quantize)
    path.with_name(path.name + ".export.json").write_text(json.dumps(report, indent=2))
    return report

