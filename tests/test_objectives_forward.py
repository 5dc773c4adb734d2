"""Smoke tests: every objective gives a finite scalar loss whose gradient reaches the encoder,
EMA targets / queues behave, ``check`` rejects impossible pairings."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from models import build_encoder
from models.objectives import OBJECTIVES, build_objective

F_, N_, V_ = 16, 16, 5  # tiny log-mel inputs [B, 1, 16, 16]; 5 classes


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: see conftest



def small(name: str) -> dict:
    """The objective's own small test hyperparameters (``test_config``; its ``n_frames`` is the 16-frame
    input's here), plus what its data would give."""
    cls = OBJECTIVES[name]
    hp = {k: v for k, v in cls.test_config.get("hparams", {}).items() if k != "n_frames"}
    return {**hp, **cls.data_hparams([f"c{i}" for i in range(V_)])}


class TinyEncoder(nn.Module):
    """Implements the encoder interface: forward / frames / blocks + attributes."""

    name = "tiny"

    def __init__(self, n_mels: int = F_, d: int = 12, frame_dim: int = 10, frames_ok: bool = True, blocks_ok: bool = True):
        super().__init__()
        self.n_mels, self.embedding_dim, self.frame_dim = n_mels, d, frame_dim
        self.frames_ok, self.blocks_ok = frames_ok, blocks_ok
        self.b1 = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
        self.b2 = nn.Sequential(nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2))
        self.frame_proj = nn.Linear(6, frame_dim)
        self.fc = nn.Linear(frame_dim, d)

    def _blocks(self, x):
        h1 = self.b1(x)
        return [h1, self.b2(h1)]

    def blocks(self, x):
        if not self.blocks_ok:
            raise NotImplementedError("no blocks")
        return self._blocks(x)

    def _frames(self, x):
        return self.frame_proj(self._blocks(x)[-1].mean(2).transpose(1, 2))  # [B, T/4, frame_dim]

    def frames(self, x):
        if not self.frames_ok:
            raise NotImplementedError("no frames")
        return self._frames(x)

    def forward(self, x):
        return self.fc(self._frames(x).amax(1))


def tiny_encoder(name: str) -> nn.Module:
    """The encoder for the 16 x 16 forward tests: ``TinyEncoder``, or the objective's own ``tiny_encoder``
    (``test_config``) when it needs a particular kind (a ViT patch encoder for masked modeling)."""
    spec = OBJECTIVES[name].test_config.get("tiny_encoder")
    return build_encoder(spec[0], **spec[1]) if spec else TinyEncoder()


def make_batch(name: str, b: int = 4, n_mels: int = F_, n: int = N_, v: int = V_, encoder: nn.Module | None = None) -> dict:
    """A batch from the objective's own sampler (the one the trainer builds) on random clips, collated as
    the loader does: no hand-kept table of batch layouts.  ``encoder``: the one the sampler's options
    (``sampler_options``, e.g. its patch grid) follow."""
    from types import SimpleNamespace

    import numpy as np

    from pipeline import build_sampler
    from pipeline.dataset import collate
    from shards.frontend import get_preset

    cls = OBJECTIVES[name]
    opts = cls.sampler_options(cls.HParams(**{**small(name), "n_frames": n}), encoder) if encoder is not None else {}
    sampler = build_sampler(cls.sampler, **{**cls.sampler_kwargs, **{k: v for k, v in opts.items() if v is not None},
                                             "n_frames": n})
    fe = {**get_preset("byol_a").to_dict(), "n_mels": n_mels}
    sampler.bind(SimpleNamespace(mean=0.0, std=1.0, frontend=fe, vocabulary=[f"c{i}" for i in range(v)]))
    rng = np.random.default_rng(0)
    examples: list = []
    i = 0
    while len(examples) < b:
        mel = rng.standard_normal((n_mels, sampler.min_frames + 2 * n)).astype(np.float32)
        out = sampler(mel, {"key": f"k{i}", "labels": [f"c{i % v}", f"c{(i + 2) % v}"]}, rng)
        examples += [] if out is None else (out if isinstance(out, list) else [out])
        i += 1
    batch = collate(examples[:b], [True] * b, sampler, rng)
    assert set(cls.batch_keys) <= set(batch), (name, sorted(batch))
    return batch


def _assert_trains(obj: nn.Module, batch: dict) -> dict:
    obj.train()
    out = obj(batch)
    loss = out["loss"]
    assert loss.dim() == 0 and torch.isfinite(loss), out
    for k, v in out.items():
        assert v.dim() == 0 and torch.isfinite(v), k
        if k != "loss":
            assert not v.requires_grad, k
    loss.backward()
    grads = [p.grad for p in obj.encoder.parameters() if p.grad is not None]
    assert grads and any(g.abs().sum() > 0 for g in grads), "no gradient reached the encoder"
    names = {n for n, _ in obj.trainable_named_parameters()}
    for group in obj.param_groups():
        assert group["lr"] > 0 and group["params"]
    n_grouped = sum(len(g["params"]) for g in obj.param_groups())
    assert n_grouped == len(names)
    return out


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_forward_tiny_encoder(name):
    torch.manual_seed(0)
    enc = tiny_encoder(name)
    obj = build_objective(name, enc, n_frames=N_, **small(name))
    assert obj.encoder is enc
    _assert_trains(obj, make_batch(name, encoder=enc))
    obj.after_step()


@pytest.mark.parametrize("name", ["byol_a", "delores_m"])
def test_ema_targets(name):
    torch.manual_seed(0)
    obj = build_objective(name, TinyEncoder(), n_frames=N_, **small(name))
    targets = [m for t, _ in obj.ema_pairs for m in [getattr(obj, t)]]
    tparams = {id(p) for m in targets for p in m.parameters()}
    assert tparams and all(not p.requires_grad for m in targets for p in m.parameters())
    assert not tparams & {id(p) for g in obj.param_groups() for p in g["params"]}
    opt = torch.optim.SGD([p for g in obj.param_groups() for p in g["params"]], lr=0.5)
    _assert_trains(obj, make_batch(name))
    opt.step()
    t_enc, o_enc = obj.target_encoder, obj.encoder
    before = [p.clone() for p in t_enc.parameters()]
    obj.after_step()
    tau = obj.hparams.ema_tau
    for p_t, p_b, p_o in zip(t_enc.parameters(), before, o_enc.parameters()):
        assert torch.allclose(p_t, tau * p_b + (1 - tau) * p_o, atol=1e-6)
    assert any(not torch.equal(p_t, p_b) for p_t, p_b in zip(t_enc.parameters(), before))
    for b_t, b_o in zip(t_enc.buffers(), o_enc.buffers()):
        assert torch.equal(b_t, b_o)


def test_delores_shuffle_bn_uses_per_group_statistics():
    """``bn_splits=2``: the student runs on 2 groups of consecutive rows, the teacher on 2 groups of a random
    permutation, outputs back in input order (MoCo's shuffle BN on one process); 1 keeps the whole batch."""
    torch.manual_seed(0)
    obj = build_objective("delores_m", build_encoder("audio_ntt", d=64), n_frames=32, block_proj_units=16,
                          queue_size=64, out_dim=8, proj_dropout=0.0, bn_splits=2).train()
    for m in obj.modules():
        if isinstance(m, nn.Dropout):
            m.eval()  # BatchNorm stays in training mode (batch statistics); only the randomness goes
    x = torch.randn(8, 1, 64, 32)
    torch.manual_seed(1)
    k, tb = obj._teacher(x)
    torch.manual_seed(1)
    perm = torch.randperm(8)
    inv = torch.argsort(perm)
    parts = [obj._teacher_one(x[perm][:4]), obj._teacher_one(x[perm][4:])]
    assert torch.allclose(k, torch.cat([p[0] for p in parts])[inv], atol=1e-5)
    assert torch.allclose(tb[-1], torch.cat([p[1][-1] for p in parts])[inv], atol=1e-5)
    assert not torch.allclose(k, obj._teacher_one(x)[0], atol=1e-3)  # group statistics, not the batch's
    q, _ = obj._groups(obj._student, x)
    assert torch.allclose(q, torch.cat([obj._student(x[:4])[0], obj._student(x[4:])[0]]), atol=1e-5)
    obj.hparams.bn_splits = 1
    assert torch.allclose(obj._groups(obj._student, x)[0], obj._student(x)[0], atol=1e-6)
    with pytest.raises(ValueError, match="bn_splits"):
        build_objective("delores_m", build_encoder("audio_ntt", d=64), n_frames=32, bn_splits=0)


def test_delores_queue_is_a_checkpointed_fifo():
    torch.manual_seed(0)
    obj = build_objective("delores_m", TinyEncoder(), n_frames=N_, **{**small("delores_m"), "queue_size": 10})
    sd = obj.state_dict()
    assert "queue" in sd and "queue_ptr" in sd and sd["queue"].shape == (10, 8)
    obj.eval()
    q0 = obj.queue.clone()
    obj(make_batch("delores_m"))
    assert torch.equal(obj.queue, q0) and int(obj.queue_ptr) == 0  # eval does not enqueue
    obj.train()
    obj(make_batch("delores_m"))  # 2 x 4 keys enqueued
    assert int(obj.queue_ptr) == 8
    assert torch.equal(obj.queue[8:], q0[8:]) and not torch.equal(obj.queue[:8], q0[:8])
    assert torch.allclose(obj.queue[:8].norm(dim=1), torch.ones(8))
    keys = torch.nn.functional.normalize(torch.randn(5, 8), dim=1)
    obj._enqueue(keys)  # wraps around: slots 8, 9, 0, 1, 2
    assert int(obj.queue_ptr) == 3
    assert torch.allclose(obj.queue[[8, 9, 0, 1, 2]], keys)


def test_barlow_param_groups_lars_rates():
    obj = build_objective("barlow_twins", TinyEncoder(), n_frames=N_, **small("barlow_twins"))
    groups = {g["name"]: g for g in obj.param_groups(batch_size=512)}
    assert groups["weights"]["lr"] == pytest.approx(0.4) and groups["bias_bn"]["lr"] == pytest.approx(0.0096)
    assert groups["bias_bn"]["weight_decay"] == 0.0 and groups["weights"]["weight_decay"] == 1.5e-6
    assert all(p.ndim > 1 for p in groups["weights"]["params"]) and all(p.ndim == 1 for p in groups["bias_bn"]["params"])
    from timm.optim import Lars

    Lars(obj.param_groups(), lr=0.1, momentum=0.9)  # the trainer's LARS accepts the groups


def test_check_rejects_impossible_pairings():
    with pytest.raises(ValueError, match="frames"):
        build_objective("multi_strategy", TinyEncoder(frames_ok=False), n_frames=N_)
    with pytest.raises(ValueError, match="blocks"):
        build_objective("delores_m", TinyEncoder(blocks_ok=False), n_frames=N_)
    with pytest.raises(ValueError, match="num_classes"):
        build_objective("supervised", TinyEncoder())
    with pytest.raises(TypeError):
        build_objective("simclr", TinyEncoder(), no_such_hparam=1)
    # the generic decoder for a non-mobile encoder is not an error
    OBJECTIVES["audio2vec_cbow"].check(TinyEncoder())


def test_injected_decoder_is_used():
    class Dec(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4 * 12, F_ * N_)

        def forward(self, z):
            return self.lin(z).view(-1, 1, F_, N_)

    dec = Dec()
    obj = build_objective("audio2vec_cbow", TinyEncoder(), decoder=dec, n_frames=N_)
    assert obj.decoder is dec
    _assert_trains(obj, make_batch("audio2vec_cbow"))
    assert dec.lin.weight.grad is not None


# --------------------------------------------------------------------------- real encoders
@pytest.mark.parametrize("name", ["autoencoder", "audio2vec_cbow", "audio2vec_skipgram", "temporal_gap", "triplet"])
def test_mobile_encoder_objectives(name):
    torch.manual_seed(0)
    enc = build_encoder("mobile")
    obj = build_objective(name, enc, n_frames=32)
    if name.startswith("audio2vec") or name == "autoencoder":
        assert type(obj.decoder).__name__ == "MobileDecoder"
    _assert_trains(obj, make_batch(name, b=2, n_mels=64, n=32))


@pytest.mark.parametrize("name", ["byol_a", "barlow_twins", "delores_m", "cola", "simclr", "supervised"])
def test_audio_ntt_objectives(name):
    torch.manual_seed(0)
    enc = build_encoder("audio_ntt", d=32)
    obj = build_objective(name, enc, n_frames=16, **small(name))
    if name == "delores_m":
        assert len(obj.block_projectors) == 3  # AudioNTT blocks B1-B3
    _assert_trains(obj, make_batch(name, b=4, n_mels=64, n=16))
    obj.after_step()


def test_multi_strategy_efficientnet():
    torch.manual_seed(0)
    enc = build_encoder("efficientnet_b0", head="cola", head_dim=16)
    obj = build_objective("multi_strategy", enc, n_frames=64, head_dim=8)
    out = _assert_trains(obj, make_batch("multi_strategy", b=2, n_mels=64, n=64))
    assert {"loss_clip", "loss_frame", "loss_pitch"} <= set(out)


def test_autoencoder_on_non_mobile_uses_generic_decoder():
    enc = build_encoder("audio_ntt", d=16)
    obj = build_objective("autoencoder", enc, n_frames=16)
    assert type(obj.decoder).__name__ == "MLPDecoder"
    _assert_trains(obj, make_batch("autoencoder", b=2, n_mels=64, n=16))



def test_supervised_mixing_softmax_and_preset():
    from models.objectives.losses import soft_target_ce

    torch.manual_seed(0)
    obj = build_objective("supervised", TinyEncoder(), num_classes=4)
    assert obj.hparams.mix_beta == (5.0, 2.0) and obj.hparams.loss == "bce"  # W22 defaults
    x = torch.randn(64, 1, F_, N_)
    y = torch.nn.functional.one_hot(torch.arange(64) % 4, 4).float()
    mx, my = obj.mix(x, y)
    own = my[torch.arange(64), torch.arange(64) % 4]  # weight left on each example's own class
    two = (my > 0).sum(1) == 2  # rows mixed with another class
    assert torch.allclose(my.sum(1), torch.ones(64)) and ((my > 0).sum(1) <= 2).all()  # label mass preserved
    assert two.sum() > 32 and 0.6 < float(own[two].mean()) < 0.8  # lambda ~ Beta(5, 2), mean 5/7
    i = int(torch.nonzero(two)[0])
    j = int(torch.nonzero((x.flatten(1) - (mx[i].flatten() - own[i] * x[i].flatten()) / (1 - own[i])).abs().amax(1) < 1e-4)[0])
    assert j != i and torch.allclose(mx[i], own[i] * x[i] + (1 - own[i]) * x[j], atol=1e-5)  # same lambda for x
    # preset: T19's single-label softmax CE without mixing, through the --hp route as well
    t19 = build_objective("supervised", TinyEncoder(), num_classes=4, preset="tagliasacchi2019")
    assert (t19.hparams.loss, t19.hparams.mix_beta, t19.hparams.lr, t19.hparams.batch_size) == ("softmax", None, 1e-3, 256)
    assert OBJECTIVES["supervised"].default_hparams("tagliasacchi2019").loss == "softmax"
    with pytest.raises(ValueError, match="unknown preset"):
        build_objective("supervised", TinyEncoder(), num_classes=4, preset="nope")
    # soft-target CE equals the usual CE on one-hot rows and skips unlabelled rows
    logits = torch.randn(6, 4)
    y6 = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 3, 0, 1]), 4).float()
    assert torch.allclose(soft_target_ce(logits, y6), torch.nn.functional.cross_entropy(logits, y6.argmax(1)), atol=1e-6)
    y6[5] = 0
    assert torch.allclose(soft_target_ce(logits, y6), torch.nn.functional.cross_entropy(logits[:5], y6[:5].argmax(1)), atol=1e-6)
    out = t19({"x": x[:8], "labels": y[:8]})
    out["loss"].backward()
    assert torch.isfinite(out["loss"])
