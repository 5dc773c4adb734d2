"""Trainer: every method trains on the demo shards; exact resume; clear failures (the loss falls: test_train_learns.py)."""
from __future__ import annotations

import json
import math
import os

import pytest
import torch

from models.objectives import OBJECTIVES
from tests._train_support import small_flags
from tests._train_support import train_cfg as _cfg
from train.config import load_config
from train.loop import NonFiniteLoss, train


@pytest.mark.parametrize("method", OBJECTIVES.names())
def test_every_method_runs_20_steps(demo_small, tmp_path, method):
    shards_root, _ = demo_small
    torch.manual_seed(0)
    s = train(_cfg(os.path.join(shards_root, "pretrain"), tmp_path / method, method, 20, small_flags(method)))
    assert s["step"] == 20 and len(s["losses"]) == 20
    assert all(math.isfinite(v) for v in s["losses"])
    meta = json.load(open(tmp_path / method / "encoder.json"))
    assert meta["method"] == method and meta["step"] == 20
    assert (tmp_path / method / "encoder.safetensors").stat().st_size > 0
    rows = [json.loads(line) for line in open(tmp_path / method / "metrics.jsonl")]
    assert [r["step"] for r in rows] == list(range(1, 21)) and rows[0]["world_size"] == 1


def test_resume_matches_uninterrupted_run(demo_small, tmp_path):
    from train.export import load_encoder  # noqa: F401  (export must be importable for eval)

    d = os.path.join(demo_small[0], "pretrain")
    extra = ["--save-every", "4"]
    full = train(_cfg(d, tmp_path / "full", "temporal_gap", 10, extra))
    part = train(_cfg(d, tmp_path / "part", "temporal_gap", 4, extra))
    assert part["losses"] == full["losses"][:4]
    resumed = train(_cfg(d, tmp_path / "part", "temporal_gap", 10, [*extra, "--resume"]))
    assert len(resumed["losses"]) == 6
    for a, b in zip(resumed["losses"], full["losses"][4:]):
        assert abs(a - b) <= 1e-6
    rows = [json.loads(line) for line in open(tmp_path / "part" / "metrics.jsonl")]
    assert [r["step"] for r in rows] == list(range(1, 11))
    ckpts = sorted(os.listdir(tmp_path / "part" / "checkpoints"))
    assert "step_0000008" in ckpts and "latest" in ckpts


def test_non_finite_loss_stops_and_keeps_checkpoint(demo_small, tmp_path):
    d = os.path.join(demo_small[0], "pretrain")
    out = tmp_path / "nan"
    # SGD at lr 1e30: step 1 is finite (and checkpointed), the parameters then overflow to NaN
    with pytest.raises(NonFiniteLoss, match="non-finite loss .* at step 2"):
        train(_cfg(d, out, "temporal_gap", 8, ["--save-every", "1", "--hp", "optimizer=sgd", "--hp", "lr=1e30"]))
    ckpts = sorted(os.listdir(out / "checkpoints"))
    assert ckpts == ["latest", "step_0000001"]
    assert (out / "checkpoints" / "latest").read_text().strip() == "step_0000001"
    assert (out / "checkpoints" / "step_0000001" / "COMPLETE").exists()
    meta = json.load(open(out / "encoder.json"))
    assert meta["step"] == 1
    from train.export import load_encoder

    enc, _ = load_encoder(str(out))
    assert all(torch.isfinite(p).all() for p in enc.parameters())


def test_impossible_pairing_fails_before_first_step(demo_small, tmp_path):
    d = os.path.join(demo_small[0], "pretrain")
    with pytest.raises(ValueError, match="n_mels"):
        train(_cfg(d, tmp_path / "x", "temporal_gap", 2, ["--encoder-arg", "n_mels=80"]))
    with pytest.raises(ValueError, match="unknown hyperparameters"):
        train(_cfg(d, tmp_path / "y", "temporal_gap", 2, ["--hp", "no_such_thing=1"]))
    assert not (tmp_path / "x" / "metrics.jsonl").exists()


def test_method_defaults_follow_papers():
    from models.objectives import OBJECTIVES

    assert OBJECTIVES["byol_a"].default_encoder == ("audio_ntt", {"d": 2048})
    assert OBJECTIVES["simclr"].default_encoder[0] == "slowfast_nfnet_f0"
    assert OBJECTIVES["multi_strategy"].default_encoder[0] == "efficientnet_b0"
    hp = OBJECTIVES["byol_a"].default_hparams()
    assert (hp.optimizer, hp.lr, hp.batch_size, hp.ema_tau) == ("adam", 3e-4, 256, 0.99)
    hp = OBJECTIVES["barlow_twins"].default_hparams()
    assert (hp.optimizer, hp.lr, hp.lr_bias) == ("lars", 0.2, 0.0048)
    hp = OBJECTIVES["temporal_gap"].default_hparams()
    assert (hp.optimizer, hp.lr) == ("adam", 1e-4)
    assert OBJECTIVES["audio2vec_cbow"].default_hparams().lr == 1e-3


def test_yaml_config_and_cli_precedence(tmp_path):
    from models import ENCODERS
    from models.objectives import OBJECTIVES

    p = tmp_path / "cfg.yaml"
    p.write_text("method: byol_a\nsteps: 5\nhparams:\n  lr: 0.01\nencoder_kwargs:\n  d: 512\n")
    cfg = load_config(["--config", str(p), "--steps", "7", "--hp", "ema_tau=0.9", "--hp", "lr=1e-3"],
                      sorted(OBJECTIVES), sorted(ENCODERS))
    assert (cfg.method, cfg.steps) == ("byol_a", 7)
    assert cfg.hparams == {"lr": 1e-3, "ema_tau": 0.9} and cfg.encoder_kwargs == {"d": 512}
    p.write_text("method: byol_a\nsteps_typo: 5\n")
    with pytest.raises(SystemExit, match="unknown fields"):
        load_config(["--config", str(p)], sorted(OBJECTIVES), sorted(ENCODERS))


def test_several_shard_directories(demo_small, tmp_path):
    root = demo_small[0]
    dirs = [os.path.join(root, "pretrain"), os.path.join(root, "train")]
    s = train(_cfg(dirs[0], tmp_path / "two", "temporal_gap", 3, ["--shards", *dirs]))
    assert s["step"] == 3
    import yaml

    cfg = yaml.safe_load(open(tmp_path / "two" / "config.yaml"))
    assert sorted(cfg["manifest_sha256"]) == sorted(dirs) and cfg["shards"] == dirs


def test_bf16_mixed_precision_and_grad_accumulation(demo_small, tmp_path):
    d = os.path.join(demo_small[0], "pretrain")
    s = train(_cfg(d, tmp_path / "bf16", "byol_a", 4, [*small_flags("byol_a"), "--mixed-precision", "bf16",
                                                        "--grad-accum", "2", "--clip-grad", "1.0"]))
    assert s["step"] == 4 and all(math.isfinite(v) for v in s["losses"])
    import yaml

    cfg = yaml.safe_load(open(tmp_path / "bf16" / "config.yaml"))
    assert cfg["local_batch"] == 4 and cfg["grad_accum"] == 2 and cfg["mixed_precision"] == "bf16"


def test_default_steps_follow_the_papers_training_length():
    from types import SimpleNamespace

    from models.objectives import OBJECTIVES
    from train.loop import DEFAULT_STEPS, resolve_steps

    assert resolve_steps(7, OBJECTIVES["byol_a"].default_hparams(), 10.0) == 7  # --steps wins
    assert resolve_steps(None, OBJECTIVES["temporal_gap"].default_hparams(), 10.0) == 300_000  # Tagliasacchi et al. 2019 Sec. 4
    assert resolve_steps(None, OBJECTIVES["simclr"].default_hparams(), 10.0) == 200_000
    # BYOL-A: 100 epochs; 1,000 clips at batch 256 -> 3.90625 steps per epoch -> 391 steps
    assert resolve_steps(None, OBJECTIVES["byol_a"].default_hparams(), 1000 / 256) == 391
    assert resolve_steps(None, SimpleNamespace(total_steps=None, epochs=None), None) == DEFAULT_STEPS


def test_batch_coupled_losses_refuse_gradient_accumulation(demo_small, tmp_path):
    d = os.path.join(demo_small[0], "pretrain")
    with pytest.raises(ValueError, match="couples the examples"):
        train(_cfg(d, tmp_path / "acc", "simclr", 2, [*small_flags("simclr"), "--grad-accum", "2"]))


def test_lars_adapts_weights_even_without_weight_decay():
    from types import SimpleNamespace

    from train.optim import build_optimizer

    w, b = torch.nn.Parameter(torch.ones(4, 4)), torch.nn.Parameter(torch.ones(4))
    hp = SimpleNamespace(optimizer="lars", lr=0.2, momentum=0.9, weight_decay=0.0, lars_trust_coeff=1e-3)
    opt = build_optimizer([{"name": "weights", "params": [w]}, {"name": "bias_bn", "params": [b]}], hp)
    assert opt.param_groups[0]["always_adapt"] and not opt.param_groups[1]["always_adapt"]
    w.grad, b.grad = torch.full_like(w, 1.0), torch.full_like(b, 1.0)
    opt.step()
    # trust ratio 1e-3 * |w| / |g| = 1e-3 on the weights: a step of 0.2e-3, not 0.2
    assert torch.allclose(w, torch.full_like(w, 1 - 0.2e-3), atol=1e-7)
    assert torch.allclose(b, torch.full_like(b, 1 - 0.2))


def test_probe_needs_the_eval_plugin(demo_small, tmp_path, capsys):
    """train/pretrain.py knows no eval code: --probe-every without eval/pretrain.py is a one-line error."""
    from train.pretrain import main

    argv = ["--method", "temporal_gap", "--shards", os.path.join(demo_small[0], "pretrain"), "--out",
            str(tmp_path / "r"), "--steps", "1", "--probe-every", "1", "--tracker", "none"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "eval/pretrain.py" in err
    assert not (tmp_path / "r" / "encoder.json").exists()


def test_pairing_is_checked_before_step_1(demo_small, tmp_path):
    """batch_keys against the sampler's keys and needs_frames / needs_blocks against the encoder, before
    any step runs, each a one-line error."""
    from types import SimpleNamespace

    from pipeline import build_sampler
    from train.loop import check_pairing

    d = os.path.join(demo_small[0], "pretrain")
    with pytest.raises(ValueError, match=r"reads batch key\(s\) \['x1', 'x2', 'target'\] that sampler 'crop'") as e:
        train(_cfg(d, tmp_path / "keys", "temporal_gap", 2, ["--sampler", "crop"]))
    assert "\n" not in str(e.value) and not (tmp_path / "keys" / "metrics.jsonl").exists()

    class NoFrames(torch.nn.Module):
        name, embedding_dim, n_mels = "noframes", 8, 64

        def forward(self, x):
            return x.mean((1, 2))[:, :1].repeat(1, 8)

    for method, what in (("multi_strategy", "frames"), ("delores_m", "blocks")):
        cls = OBJECTIVES[method]
        with pytest.raises(ValueError, match=f"has no {what}\\(\\)") as e:
            check_pairing(cls, build_sampler(cls.sampler, **cls.sampler_kwargs), NoFrames(), 16)
        assert "\n" not in str(e.value)
    views = build_sampler("views", augment_on="device")  # its device transform turns x into x1, x2
    assert views.keys == ("x",) and views.provides == ("x1", "x2")
    views.bind(SimpleNamespace(mean=-5.0, std=4.0, frontend={}, vocabulary=[]))
    assert views.input_norm == {"mean": -5.0, "std": 4.0}


def test_views_augmentations_go_to_a_gpu_by_default():
    """The trainer settles the ``views`` samplers' ``augment_on='auto'`` for its device: the batched torch
    augmentations on CUDA, the DataLoader workers on CPU; a ``--sampler-arg augment_on=...`` wins."""
    from train.config import TrainConfig
    from train.loop import _sampler_kwargs

    for method in ("byol_a", "byol_a_v2", "delores_m"):
        cls = OBJECTIVES[method]
        cfg = TrainConfig(method=method)
        assert _sampler_kwargs(cfg, cls.sampler, cls, cls.HParams(), None, "cuda")["augment_on"] == "device"
        assert _sampler_kwargs(cfg, cls.sampler, cls, cls.HParams(), None, "cpu")["augment_on"] == "worker"
        pinned = TrainConfig(method=method, sampler_kwargs={"augment_on": "worker"})
        assert _sampler_kwargs(pinned, cls.sampler, cls, cls.HParams(), None, "cuda")["augment_on"] == "worker"
    cls = OBJECTIVES["temporal_gap"]
    assert "augment_on" not in _sampler_kwargs(TrainConfig(method="temporal_gap"), cls.sampler, cls, cls.HParams(),
                                               None, "cuda")


def test_train_knows_no_method_or_sampler_name():
    """The trainer is generic: no objective or sampler name is written anywhere in train/."""
    import glob

    from pipeline import SAMPLERS

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    names = set(OBJECTIVES.names()) | set(SAMPLERS.names())
    for path in glob.glob(os.path.join(root, "train", "*.py")):
        src = open(path).read()
        found = [n for n in names if f'"{n}"' in src or f"'{n}'" in src]
        assert not found, (path, found)


def test_delores_queue_is_capped_by_the_data_unless_set(demo_small, tmp_path, caplog):
    """A MoCo queue longer than the dataset holds crops of the query's own clip as negatives: the trainer
    caps ``delores_m``'s default ``queue_size`` at the largest power of two <= half the clips of the
    shards (24 -> 8) with a warning; an explicit ``--hp queue_size`` is kept."""
    import logging

    from safetensors.torch import load_file

    from models.objectives.delores_m import DeLoResMObjective, queue_cap

    assert [queue_cap(n) for n in (1, 24, 640, 131072, 250_000, 10**6)] == [1, 8, 256, 65536, 65536, 2**18]
    assert DeLoResMObjective.data_hparams([], 640, {}) == {"queue_size": 256}
    assert DeLoResMObjective.data_hparams([], 250_000, {}) == {}  # G22's 0.25 M clips: the paper's 65,536
    assert DeLoResMObjective.data_hparams([], 640, {"queue_size": "8"}) == {}
    assert DeLoResMObjective.data_hparams([], 10**6, {}) == {} and DeLoResMObjective.data_hparams([], None) == {}
    shards_root, _ = demo_small
    small = ["--encoder", "audio_ntt", "--encoder-arg", "d=512", "--hp", "block_proj_units=16", "--hp", "out_dim=8"]
    for extra, want in (([], 8), (["--hp", "queue_size=32"], 32)):
        out = tmp_path / f"q{want}"
        with caplog.at_level(logging.WARNING, logger="melstream.models"):
            caplog.clear()
            train(_cfg(os.path.join(shards_root, "pretrain"), out, "delores_m", 1, small + extra))
        state = load_file(str(next(out.glob("checkpoints/step_*/model.safetensors"))))
        queue = next(v for k, v in state.items() if k.endswith("queue"))
        assert queue.shape == (want, 8)
        assert ("24 clips" in caplog.text) == (want == 8)
