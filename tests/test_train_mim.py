"""Masked modeling through the real trainer: exact resume of m2d (EMA ramp, target encoder), the 80-mel
refusal naming the re-ingest command, input normalisation recorded, export + HEAR API on a ViT run."""
from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from tests._train_support import small_flags
from tests._train_support import train_cfg as _cfg
from train.loop import train


def test_m2d_resume_continues_exactly(demo_small, tmp_path):
    d = os.path.join(demo_small[0], "pretrain")
    extra = [*small_flags("m2d"), "--save-every", "3"]
    full = train(_cfg(d, tmp_path / "full", "m2d", 6, extra))
    # an interrupted copy: only the step-3 checkpoint survives
    shutil.copytree(tmp_path / "full", tmp_path / "part")
    ck = tmp_path / "part" / "checkpoints"
    shutil.rmtree(ck / "step_0000006")
    (ck / "latest").write_text("step_0000003\n")
    resumed = train(_cfg(d, tmp_path / "part", "m2d", 6, [*extra, "--resume"]))
    assert len(resumed["losses"]) == 3
    for a, b in zip(resumed["losses"], full["losses"][3:]):
        assert abs(a - b) <= 1e-6, (resumed["losses"], full["losses"])
    from safetensors.torch import load_file

    sf = lambda run: load_file(str(tmp_path / run / "checkpoints" / "step_0000006" / "model.safetensors"))  # noqa: E731
    a, b = sf("full"), sf("part")
    assert int(a["ema_step"]) == 6 and a.keys() == b.keys()
    assert any(k.startswith("target_encoder.") for k in a)
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
    rows = [json.loads(line) for line in open(tmp_path / "part" / "metrics.jsonl")]
    assert [r["step"] for r in rows] == list(range(1, 7))
    assert rows[0]["ema_tau"] == pytest.approx(0.99995) and rows[-1]["ema_tau"] == pytest.approx(0.99999)


def test_m2d_paper_frontend_mismatch_names_reingest(demo_small, tmp_path):
    d = os.path.join(demo_small[0], "pretrain")  # 64-mel byol_a shards; M2D's vit_base wants 80 mels
    with pytest.raises(ValueError, match=r"expects 80-mel input .*python -m ingest folder SRC --out DIR --preset m2d"):
        train(_cfg(d, tmp_path / "x", "m2d", 1))
    with pytest.raises(ValueError, match=r"--preset audio_mae"):
        train(_cfg(d, tmp_path / "y", "mae", 1))


def test_vit_run_exports_with_input_norm_and_serves_hear(demo_small, tmp_path):
    d = os.path.join(demo_small[0], "pretrain")
    out = tmp_path / "mae"
    train(_cfg(d, out, "mae", 2, small_flags("mae")))
    meta = json.load(open(out / "encoder.json"))
    assert meta["encoder"] == "vit_tiny" and set(meta["input_norm"]) == {"mean", "std"}
    from eval import hear

    m = hear.load_model(str(out))
    audio = 0.1 * torch.randn(2, 16000 * 3, generator=torch.Generator().manual_seed(0))
    scene = hear.get_scene_embeddings(audio, m)
    emb, ts = hear.get_timestamp_embeddings(audio, m)
    assert scene.shape == (2, 4 * 192) and torch.isfinite(scene).all()
    assert emb.shape[0] == 2 and emb.shape[-1] == m.timestamp_embedding_size and ts.shape == emb.shape[:2]
