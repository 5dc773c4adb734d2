"""Issue 26 diagnostics: BatchNorm calibration of a random encoder (bench/untrained_bn.py), the bench-real
clips of bench/temporal_gap_health.py, and the doc-table markers of the bench scripts."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn

from tests.conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import bench_methods as bm  # noqa: E402
import temporal_gap_health as tgh  # noqa: E402
import untrained_bn as ub  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_calibration_sets_batchnorm_to_the_plain_average_of_the_crops():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU())
    crops = torch.randn(96, 1, 8, 12) * 2 + 5
    with torch.no_grad():
        h = net[0](crops)
    ub.calibrate(net, crops, batch=32)  # 3 equal batches, averaged with equal weights (not an EMA)
    assert not net.training and net[1].momentum is None
    assert torch.allclose(net[1].running_mean, h.mean(dim=(0, 2, 3)), atol=1e-4)
    per_batch_var = [h[i:i + 32].var(dim=(0, 2, 3)) for i in range(0, 96, 32)]  # BN keeps each batch's unbiased var
    assert torch.allclose(net[1].running_var, torch.stack(per_batch_var).mean(0), rtol=1e-4)
    assert not torch.allclose(net[1].running_var, torch.ones(3))


def test_centre_window_crops_long_clips_and_pads_short_ones_with_silence():
    m = np.arange(20, dtype=np.float32).reshape(2, 10)
    assert ub.centre_window(m, 4, -9.0).tolist() == [[3, 4, 5, 6], [13, 14, 15, 16]]
    w = ub.centre_window(m[:, :3], 7, -9.0)
    assert w[0].tolist() == [-9, -9, 0, 1, 2, -9, -9]


def test_untrained_bn_table_lists_each_model_of_each_run():
    acc = {"untrained": {"real_pitch": 20.0, "real_drum": 70.0, "mean": 45.0},
           "calibrated": {"real_pitch": 19.0, "real_drum": 64.0, "mean": 41.5},
           "trained": {"real_pitch": 19.5, "real_drum": 69.0, "mean": 44.25}}
    md = ub.table_md({"tg": {"encoder": "mobile", "step": 9, "accuracy_pct": acc}, "machine": {"cpus": 2}})
    lines = md.splitlines()
    assert lines[0] == "| run | encoder | step | model | pitch | drum | mean |"
    assert lines[3] == "| tg | mobile | 9 | calibrated | 19.0 | 64.0 | 41.5 |" and len(lines) == 5


def test_doc_markers_replace_only_their_own_table(tmp_path):
    doc = tmp_path / "d.md"
    doc.write_text("a\n<!-- x -->\nold\n<!-- x -->\nb\n<!-- y -->\nkeep\n<!-- y -->\n")
    bm.replace_between_markers(str(doc), "<!-- x -->", "\nnew\n")
    assert doc.read_text() == "a\n<!-- x -->\nnew\n<!-- x -->\nb\n<!-- y -->\nkeep\n<!-- y -->\n"
    with pytest.raises(ValueError, match="expected two <!-- z --> markers"):
        bm.replace_between_markers(str(doc), "<!-- z -->", "")


def test_real_clips_alternate_kinds_and_follow_the_seed(tmp_path):
    for kind in ("music", "speech"):
        (tmp_path / kind).mkdir()
        for i in range(2):
            t = np.arange(16000 * 2) / 16000
            f = 2000 + 1000 * i if kind == "music" else 200 + 100 * i  # music above speech
            sf.write(str(tmp_path / kind / f"{i}.wav"), (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), 16000)
    mels = tgh.real_clips("real", 3, 0, str(tmp_path))
    assert len(mels) == 3 and all(m.shape[0] == 64 and m.dtype == np.float32 for m in mels)
    peaks = [int(m.mean(1).argmax()) for m in mels]
    assert peaks[0] > peaks[1]  # music first (sorted kinds), then speech, alternating
    speech = tgh.real_clips("real_speech", 5, 0, str(tmp_path))
    assert len(speech) == 2 and all(int(m.mean(1).argmax()) < peaks[0] for m in speech)
    again = tgh.real_clips("real", 3, 0, str(tmp_path))
    assert all(np.array_equal(x, y) for x, y in zip(mels, again))
    with pytest.raises(SystemExit, match="no pretraining clips"):
        tgh.real_clips("real_drums", 2, 0, str(tmp_path))
