"""Encoders: paper parameter counts, shapes, frames/blocks/forward consistency, official BYOL-A keys."""
from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import models
from models.summary import count_macs, count_params


@pytest.fixture(scope="module")
def encoders() -> dict[str, models.Encoder]:
    """One eval-mode instance per registered encoder (the big ones are built once)."""
    torch.manual_seed(0)
    return {name: models.build_encoder(name).eval() for name in models.ENCODERS}


def x_for(enc: models.Encoder, t: int, b: int = 2) -> torch.Tensor:
    return torch.randn(b, 1, enc.n_mels, t, generator=torch.Generator().manual_seed(t))


# --------------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize("d,expected", [(512, 600_192), (1024, 1_649_792), (2048, 5_321_856)])
def test_audio_ntt_params_exact(d: int, expected: int) -> None:
    """Niizumi et al. 2021, Appendix A / Table IV."""
    assert count_params(models.build_encoder("audio_ntt", d=d)) == expected


def test_mobile_params_and_macs() -> None:
    """Tagliasacchi et al. 2019, Table 1: ~125k params; FLOPs column 18.7M (= 2 x multiply-adds)."""
    enc = models.build_encoder("mobile")
    assert abs(count_params(enc) - 125_000) / 125_000 < 0.02
    macs = count_macs(enc, torch.zeros(1, 1, 64, 96))
    assert abs(2 * macs - 18.7e6) / 18.7e6 < 0.03
    # per layer (Table 1, FLOPs): 2.9M, 4M, 4M, 3.9M, 3.9M; FC 33k
    per_layer = [count_macs(layer, torch.zeros(1, c, 64 >> i, 96 >> i))
                 for i, (layer, c) in enumerate(zip(enc.layers, [1, 8, 16, 32, 64]))]
    for got, want in zip(per_layer, [2.9e6, 4e6, 4e6, 3.9e6, 3.9e6]):
        assert abs(2 * got - want) / want < 0.06
    assert 2 * count_macs(enc.fc, torch.zeros(1, 128)) == pytest.approx(33e3, rel=0.01)


def test_mobile_large_variant() -> None:
    """Sec. 4 (Table 5): 4x channels, 256-d embeddings."""
    enc = models.build_encoder("mobile", width=4, d=256)
    assert [l.bn.num_features for l in enc.layers] == [32, 64, 128, 256, 512]
    assert enc.embedding_dim == 256 and enc(torch.randn(2, 1, 64, 96)).shape == (2, 256)


@pytest.mark.parametrize("name,paper", [("efficientnet_b0", 4.0e6), ("resnet50", 23e6), ("nfnet_f0", 68e6),
                                        ("slowfast_nfnet_f0", 63e6)])
def test_wang2022_table2_params(encoders: dict, name: str, paper: float) -> None:
    """Wang et al. 2022, Table 2 (#Params column), within 5 %."""
    n = count_params(encoders[name])
    assert abs(n - paper) / paper < 0.05, n


def test_macs_counter_matches_flop_counter(encoders: dict) -> None:
    """Our hook counter == torch's FlopCounterMode / 2 (it counts FLOPs = 2 x MACs)."""
    for name in ("mobile", "audio_ntt"):
        enc, x = encoders[name], torch.zeros(1, 1, 64, 96)
        with FlopCounterMode(display=False) as fc, torch.no_grad():
            enc(x)
        assert count_macs(enc, x) == fc.get_total_flops() // 2


# --------------------------------------------------------------------------- shapes
EXPECTED_T = {  # frames() length for T input frames
    "mobile": lambda t: t // 32,
    "audio_ntt": lambda t: t // 8,
    "efficientnet_b0": lambda t: -(-t // 32),
    "resnet50": lambda t: -(-t // 32),
    "nfnet_f0": lambda t: -(-t // 32),
    "slowfast_nfnet_f0": lambda t: -(-t // 16),
}
EXPECTED_DIM = {"mobile": (128, 128), "audio_ntt": (2048, 2048), "efficientnet_b0": (1280, 1280),
                "resnet50": (2048, 2048), "nfnet_f0": (3072, 3072), "slowfast_nfnet_f0": (3456, 3456)}
N_BLOCKS = {"mobile": 5, "audio_ntt": 3, "efficientnet_b0": 8, "resnet50": 4, "nfnet_f0": 5, "slowfast_nfnet_f0": 10}


@pytest.mark.parametrize("t", [96, 300, 1001])
@pytest.mark.parametrize("name", sorted(EXPECTED_T))
def test_shapes(encoders: dict, name: str, t: int) -> None:
    enc = encoders[name]
    b = 2 if t < 1001 or name in ("mobile", "audio_ntt", "efficientnet_b0") else 1
    x = x_for(enc, t, b)
    d, fd = EXPECTED_DIM[name]
    assert (enc.embedding_dim, enc.frame_dim) == (d, fd)
    assert enc.frame_rate == pytest.approx(100 / enc.time_stride)
    with torch.no_grad():
        blocks = enc.blocks(x)
        frames = enc.frames(x)
        emb = enc(x)
    assert emb.shape == (b, d)
    assert frames.shape == (b, EXPECTED_T[name](t), fd)
    assert len(blocks) == N_BLOCKS[name]
    assert all(bl.dim() == 4 and bl.shape[0] == b for bl in blocks)
    assert torch.isfinite(emb).all()
    if t == 96:
        assert enc.n_frames_out(t) == EXPECTED_T[name](t)


@pytest.mark.parametrize("name", models.ENCODERS.names())
def test_every_encoder_keeps_the_contract(encoders: dict, name: str) -> None:
    """Iterates the registry (docs/contracts.md "Encoders"): shapes agree with the declared attributes and
    ``config()`` rebuilds the same architecture."""
    enc = encoders[name]
    t = max(96, enc.min_frames)
    x = x_for(enc, t, 1)
    with torch.no_grad():
        emb, frames, blocks = enc(x), enc.frames(x), enc.blocks(x)
    assert emb.shape == (1, enc.embedding_dim) and torch.isfinite(emb).all()
    assert frames.shape == (1, enc.n_frames_out(t), enc.frame_dim)
    assert blocks and all(b.dim() == 4 and b.shape[0] == 1 for b in blocks)
    assert enc.name == name and enc.n_mels == x.shape[2]
    rebuilt = models.build_encoder(name, **enc.config())
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in enc.state_dict().items()}


def test_frames_blocks_forward_consistent(encoders: dict) -> None:
    """forward == pooling of frames; frames == frequency-reduction of the last block."""
    with torch.no_grad():
        enc = encoders["mobile"]
        x = x_for(enc, 96)
        last = enc.blocks(x)[-1]
        assert torch.allclose(enc.frames(x), last.amax(2).transpose(1, 2))
        assert torch.allclose(enc(x), enc.fc(last.amax((2, 3))), atol=1e-6)

        enc = encoders["audio_ntt"]
        x = x_for(enc, 96)
        last, fr = enc.blocks(x)[-1], enc.frames(x)
        b, c, f, t = last.shape
        flat = torch.stack([torch.cat([last[:, :, m, k] for m in range(f)], dim=1) for k in range(t)], dim=1)
        assert torch.allclose(fr, enc.fc(flat), atol=1e-5)
        assert torch.allclose(enc(x), fr.max(1).values + fr.mean(1), atol=1e-5)

        for name in ("efficientnet_b0", "resnet50", "nfnet_f0"):
            enc = encoders[name]
            x = x_for(enc, 96)
            last = enc.blocks(x)[-1]
            assert torch.allclose(enc.frames(x), last.mean(2).transpose(1, 2), atol=1e-5)
            assert torch.allclose(enc(x), last.mean((2, 3)), atol=1e-5)  # global average pooling

        enc = encoders["slowfast_nfnet_f0"]
        x = x_for(enc, 96)  # fast path has 24 frames: exact 4:1 pooling
        maps = enc.blocks(x)
        assert maps[-2].shape[1] == 3072 and maps[-1].shape[1] == 384
        gap = torch.cat([maps[-2].mean((2, 3)), maps[-1].mean((2, 3))], dim=1)
        assert torch.allclose(enc(x), gap, atol=1e-4, rtol=1e-4)


def test_efficientnet_cola_head() -> None:
    """Kuroyanagi & Komatsu 2022, Sec. 3.2: 512-unit FC + LayerNorm + tanh on 512 x 3 frames."""
    enc = models.build_encoder("efficientnet_b0", head="cola").eval()
    x = torch.randn(2, 1, 64, 96)
    with torch.no_grad():
        fr = enc.frames(x)
        h = enc.blocks(x)[-1].mean(2).transpose(1, 2)
        assert fr.shape == (2, 3, 512) and fr.abs().max() <= 1
        assert torch.allclose(fr, torch.tanh(enc.head[1](enc.head[0](h))), atol=1e-6)
        assert torch.allclose(enc(x), fr.mean(1), atol=1e-6)
    with pytest.raises(ValueError):
        models.build_encoder("efficientnet_b0", head="mlp")


def test_slowfast_structure(encoders: dict) -> None:
    """Wang et al. 2022, Table 5 / Appendix B as reconstructed in models/encoders/slowfast_nfnet.py."""
    enc = encoders["slowfast_nfnet_f0"]
    assert enc.n_mels == 80 and enc.frame_rate == 6.25
    slow, fast = enc.slow.stages, enc.fast.stages
    assert [len(s) for s in slow] == [1, 2, 6, 3] == [len(s) for s in fast]
    # separable convs: (k_t x 1) then (1 x 3); our kernels are (F, T); slow has no time kernel in stages 1-2
    assert [s[0].conv2.kernel_size for s in slow] == [(1, 1), (1, 1), (1, 3), (1, 3)]
    assert all(s[0].conv2.kernel_size == (1, 3) and s[0].conv2b.kernel_size == (3, 1) for s in fast)
    # group width 128 / 16 (the mid widths 128, 256, 768, 768 and 16, 32, 96, 96)
    assert [s[0].conv2.groups for s in slow] == [1, 2, 6, 6] == [s[0].conv2.groups for s in fast]
    # stride 2 in frequency, 1 in time, for stages 2-4
    assert [s[0].conv2b.stride for s in slow] == [(1, 1), (2, 1), (2, 1), (2, 1)]
    # 8x the channels; fast-to-slow fusion before every stage with time stride 4
    assert [s[-1].conv3.out_channels for s in slow] == [8 * s[-1].conv3.out_channels for s in fast]
    assert all(f.conv.stride == (1, 4) and f.conv.kernel_size == (1, 7) for f in enc.fuse)
    # normaliser-free: no BatchNorm/LayerNorm anywhere; stochastic depth up to 0.1
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)) for m in enc.modules())
    rates = [m.drop_prob for m in enc.modules() if hasattr(m, "drop_prob")]
    assert max(rates) == pytest.approx(0.1 * 11 / 12) and len(rates) == 2 * 11
    small = models.build_encoder("slowfast_nfnet_f0", features=1728, fusion="slowfast", slow_input="maxpool",
                                 n_mels=64).eval()
    with torch.no_grad():
        assert small(torch.randn(1, 1, 64, 100)).shape == (1, 1728)


def test_stochastic_depth_only_in_training(encoders: dict) -> None:
    enc = encoders["slowfast_nfnet_f0"]
    x = x_for(enc, 64, 1)
    with torch.no_grad():
        assert torch.equal(enc(x), enc(x))


# --------------------------------------------------------------------------- config / registry
def test_config_rebuilds_identical_encoder() -> None:
    for name, kw in [("mobile", {"width": 2, "d": 64, "n_mels": 80}), ("audio_ntt", {"d": 512}),
                     ("efficientnet_b0", {"head": "cola"})]:
        enc = models.build_encoder(name, **kw).eval()
        cfg = json.loads(json.dumps(enc.config()))
        assert {k: cfg[k] for k in kw} == kw
        clone = models.build_encoder(enc.name, **cfg).eval()
        clone.load_state_dict(enc.state_dict())
        x = torch.randn(2, 1, enc.n_mels, 96)
        with torch.no_grad():
            assert torch.equal(enc(x), clone(x))
    with pytest.raises(KeyError):
        models.build_encoder("nope")


def test_n_mels_80_and_bad_input() -> None:
    for name in ("mobile", "audio_ntt", "efficientnet_b0"):
        enc = models.build_encoder(name, n_mels=80).eval()
        with torch.no_grad():
            assert enc(torch.randn(1, 1, 80, 96)).shape == (1, enc.embedding_dim)
    assert models.build_encoder("audio_ntt", n_mels=80, d=512).fc[0].in_features == 640
    enc = models.build_encoder("mobile")
    with pytest.raises(ValueError):
        enc(torch.randn(1, 64, 96))
    with pytest.raises(ValueError):
        enc(torch.randn(1, 1, 64, 16))  # fewer than 32 frames


# --------------------------------------------------------------------------- official BYOL-A layout
class OfficialLayoutAudioNTT(nn.Module):
    """Reference written from Niizumi et al. 2021 Table IV, with the official key layout."""

    def __init__(self, n_mels: int = 64, d: int = 512) -> None:
        super().__init__()
        mods: list[nn.Module] = []
        for c_in in (1, 64, 64):
            mods += [nn.Conv2d(c_in, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*mods)
        self.fc = nn.Sequential(nn.Linear(64 * (n_mels // 8), d), nn.ReLU(), nn.Dropout(0.3), nn.Linear(d, d), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)                      # (batch, ch, mel, time)
        h = h.permute(0, 3, 2, 1).flatten(2)      # (batch, time, mel * ch)
        h = self.fc(h)
        return h.max(1).values + h.mean(1)


def test_audio_ntt_loads_official_state_dict(tmp_path) -> None:
    torch.manual_seed(1)
    ref = OfficialLayoutAudioNTT(d=512)
    for m in ref.modules():  # non-trivial BN statistics
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
    ref.eval()
    path = tmp_path / "AudioNTT2020-BYOLA-64x96d512.pth"
    torch.save(ref.state_dict(), path)
    state = torch.load(path, weights_only=True)
    expected = {f"features.{i}.{p}" for i in (0, 4, 8) for p in ("weight", "bias")}
    expected |= {f"features.{i}.{p}" for i in (1, 5, 9)
                 for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")}
    expected |= {f"fc.{i}.{p}" for i in (0, 3) for p in ("weight", "bias")}
    assert set(state) == expected
    enc = models.build_encoder("audio_ntt", d=512).eval()
    assert set(enc.state_dict()) == expected
    enc.load_state_dict(state, strict=True)
    for t in (96, 300):
        x = torch.randn(3, 1, 64, t)
        with torch.no_grad():
            assert torch.equal(enc(x), ref(x))


# --------------------------------------------------------------------------- decoders
def test_mobile_decoder_mirrors_encoder() -> None:
    """Tagliasacchi et al. 2019, Sec. 3: CBoW (2P embeddings in, 1 slice out), skip-gram (2P out)."""
    enc = models.build_encoder("mobile")
    cbow = models.build_decoder(enc, in_dim=4 * enc.embedding_dim, out_slices=1)
    sg = models.build_decoder(enc, out_slices=4)
    assert isinstance(cbow, models.MobileDecoder) and len(cbow.layers) == 5
    assert [l.time_conv.out_channels for l in sg.layers] == [64, 32, 16, 8, 4]
    z = torch.randn(2, 4 * 128, requires_grad=True)
    out = cbow(z)
    assert out.shape == (2, 1, 64, 96)
    out.pow(2).mean().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0
    assert sg(torch.randn(2, 128)).shape == (2, 4, 64, 96)
    big = models.build_decoder(models.build_encoder("mobile", width=4, d=256), n_frames=100, n_mels=80)
    assert big.layers[0].time_conv.in_channels == 512 and big(torch.randn(1, 256)).shape == (1, 1, 80, 100)


def test_generic_decoder() -> None:
    enc = models.build_encoder("audio_ntt", d=512)
    dec = models.build_decoder(enc, out_slices=4, n_frames=96)
    assert isinstance(dec, models.MLPDecoder)
    assert dec(torch.randn(3, 512)).shape == (3, 4, 64, 96)
    assert models.build_decoder("resnet50", in_dim=2048, n_mels=80)(torch.randn(1, 2048)).shape == (1, 1, 80, 96)
    with pytest.raises(ValueError):
        models.build_decoder("resnet50")


@pytest.mark.parametrize("name", models.ENCODERS.names())
def test_embed_and_blocks_is_forward_and_blocks_in_one_pass(encoders: dict, name: str) -> None:
    """``embed_and_blocks`` returns exactly ``(forward(x), blocks(x))`` (eval mode: dropout off) for every
    encoder, and runs the trunk once: the first block module is called once, not twice."""
    enc = encoders[name]
    was = enc.training
    enc.eval()
    t = max(96, enc.min_frames)
    x = x_for(enc, t, 2)
    calls: list[int] = []
    first = next(m for m in enc.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)))
    hook = first.register_forward_hook(lambda *a: calls.append(1))
    try:
        with torch.no_grad():
            emb, blocks = enc.embed_and_blocks(x)
            n_joint = len(calls)
            ref_emb, ref_blocks = enc(x), enc.blocks(x)
    finally:
        hook.remove()
        enc.train(was)
    assert n_joint == 1, f"{name}: the trunk ran {n_joint} times"
    assert torch.allclose(emb, ref_emb, atol=1e-5, rtol=1e-4)
    assert len(blocks) == len(ref_blocks)
    for b, r in zip(blocks, ref_blocks):
        assert torch.allclose(b, r, atol=1e-5, rtol=1e-4)
