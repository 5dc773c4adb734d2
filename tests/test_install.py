"""The install itself: the venv equals the lock, and every compiled extension we use loads and computes.

A bad combination (e.g. torchaudio 2.11.1 beside torch 2.11.0: ``undefined symbol``) fails here, in a test
named after the package, instead of as an error deep inside another test.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from tests import lockcheck

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_venv_equals_lock():
    bad = lockcheck.mismatches(os.path.join(ROOT, "requirements.lock"))
    assert not bad, "venv differs from requirements.lock (run `make setup`): " + "; ".join(bad)


def test_locks_agree():
    """requirements.lock (what `make setup` installs) is the all-extras lock restricted to fewer packages."""
    small = lockcheck.locked(os.path.join(ROOT, "requirements.lock"))
    full = lockcheck.locked(os.path.join(ROOT, "requirements-all.lock"))
    assert set(small) <= set(full)
    assert {k: v for k, v in full.items() if k in small} == small
    for name in ("torch", "torchaudio", "torchvision"):
        assert small[name] == _constraint(name), name


def _constraint(name: str) -> str:
    with open(os.path.join(ROOT, "constraints.txt"), encoding="utf-8") as f:
        for line in f:
            if line.startswith(name + "=="):
                return line.strip().split("==")[1]
    raise AssertionError(f"{name} not pinned in constraints.txt")


def test_lockcheck_names_a_mismatch(tmp_path):
    lock = tmp_path / "r.lock"
    lock.write_text("numpy==0.0.1 \\\n    --hash=sha256:00\nnot-a-real-package-xyz==1.0\n"
                    "torch==0.1 ; python_version < '3'\n")
    bad = lockcheck.mismatches(str(lock))
    assert any(b.startswith("numpy: installed ") and "lock says 0.0.1" in b for b in bad)
    assert any(b.startswith("not-a-real-package-xyz: not installed") for b in bad)
    assert not any(b.startswith("torch") for b in bad)  # marker excludes it here
    assert lockcheck.main([str(lock)]) == 2


def test_torch():
    import torch

    x = torch.randn(4, 8)
    assert torch.allclose(torch.nn.functional.linear(x, torch.eye(8)), x)


def test_torchaudio():
    import torch
    import torchaudio

    wav = torch.sin(2 * torch.pi * 440 * torch.arange(16000) / 16000).unsqueeze(0)
    mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=1024, hop_length=160, n_mels=64)(wav)
    assert mel.shape == (1, 64, 101)
    peak = int(mel[0].mean(1).argmax())
    assert 5 < peak < 30  # 440 Hz sits low on a 64-band mel scale up to 8 kHz
    up = torchaudio.functional.resample(wav, 16000, 32000)
    assert up.shape[-1] == 32000
    import torchaudio.lib  # noqa: F401  the compiled library itself


def test_torchvision_ops():
    import torch
    import torchvision

    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], dtype=torch.float32)
    keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]


def test_timm():
    import timm
    import torch

    m = timm.create_model("efficientnet_b0", pretrained=False, num_classes=0, in_chans=1)
    assert m(torch.zeros(1, 1, 64, 64)).shape == (1, 1280)


def test_zstandard():
    import zstandard

    data = os.urandom(1000) * 4
    c = zstandard.ZstdCompressor(level=3, write_checksum=True).compress(data)
    assert zstandard.ZstdDecompressor().decompress(c) == data and len(c) < len(data)


def test_onnxruntime(tmp_path):
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])])
    path = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"x": np.array([-1, 0, 2], dtype=np.float32)})
    assert y.tolist() == [0, 0, 2]


def test_safetensors_orjson_soundfile(tmp_path):
    import orjson
    import soundfile
    import torch
    from safetensors.torch import load_file, save_file

    save_file({"w": torch.arange(6.0).reshape(2, 3)}, str(tmp_path / "w.safetensors"))
    assert load_file(str(tmp_path / "w.safetensors"))["w"].sum().item() == 15
    assert orjson.loads(orjson.dumps({"a": [1, 2]})) == {"a": [1, 2]}
    soundfile.write(str(tmp_path / "a.wav"), np.zeros(160, dtype=np.float32), 16000)
    assert soundfile.read(str(tmp_path / "a.wav"))[0].shape == (160,)


@pytest.mark.parametrize("module", ["sklearn.linear_model", "matplotlib.pyplot", "scipy.signal", "yt_dlp",
                                    "webdataset", "accelerate", "imageio_ffmpeg"])
def test_imports(module):
    import importlib

    importlib.import_module(module)
