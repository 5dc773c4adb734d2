"""ViT patch encoders and AudioNTT2022: parameter counts, shapes, patch order, long inputs, consistency."""
from __future__ import annotations

import math

import pytest
import timm
import torch

import models
from models.summary import count_params

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(**kw) -> models.Encoder:
    torch.manual_seed(0)
    args = dict(n_mels=64, n_frames=96, depth=2)
    args.update(kw)
    return models.build_encoder("vit_tiny", **args).eval()


# --------------------------------------------------------------------------- parameter counts
@pytest.mark.parametrize("name,timm_name,paper", [("vit_tiny", "vit_tiny_patch16_224", 5.7e6),
                                                  ("vit_small", "vit_small_patch16_224", 22e6),
                                                  ("vit_base", "vit_base_patch16_224", 86e6)])
def test_vit_params_match_timm_and_paper(name: str, timm_name: str, paper: float) -> None:
    """Same trunk as timm's ViT (1 input channel, no classifier); our positions are a fixed sin-cos table
    (a buffer, not a parameter).  Papers: DeiT Table 1 (Ti 5.7M / S 22M incl. 3-channel stem + head),
    ViT-Base 86M (Dosovitskiy et al. Table 1; Audio-MAE / M2D's encoder)."""
    ours = count_params(models.build_encoder(name))
    ref = timm.create_model(timm_name, pretrained=False, in_chans=1, num_classes=0)
    assert ours == count_params(ref) - ref.pos_embed.numel()
    assert abs(ours - paper) / paper < 0.07, ours
    if name == "vit_base":
        assert abs(ours - 86e6) / 86e6 < 0.01  # 85,254,144


def test_audio_ntt2022_params_and_dims() -> None:
    """BYOL-A v2 (Niizumi et al. 2023, Sec. III-B): 6.3M parameters, 1024 local + 2048 global = 3072-d."""
    enc = models.build_encoder("audio_ntt2022").eval()
    assert count_params(enc) == 6_333_376
    assert enc.embedding_dim == enc.frame_dim == 3072 and enc.time_stride == 4
    x = torch.randn(2, 1, 64, 96)
    with torch.no_grad():
        fr = enc.frames(x)
        assert fr.shape == (2, 24, 3072)
        last = enc.blocks(x)[-1]  # [2, 64, 16, 24]
        local = last.permute(0, 3, 2, 1).reshape(2, 24, 1024)
        assert torch.allclose(fr[..., :1024], local) and torch.allclose(fr[..., 1024:], enc.fc(local))
        assert torch.allclose(enc(x), fr.mean(1) + fr.amax(1))


# --------------------------------------------------------------------------- shapes and consistency
@pytest.mark.parametrize("t", [64, 96, 100, 250])
def test_vit_shapes(t: int) -> None:
    enc = tiny()
    x = torch.randn(2, 1, 64, t)
    with torch.no_grad():
        fr, emb, bl = enc.frames(x), enc(x), enc.blocks(x)
    n_out = math.ceil(t / 16)
    assert fr.shape == (2, n_out, 4 * 192) and emb.shape == (2, 4 * 192)
    assert enc.frame_rate == pytest.approx(6.25) and enc.n_frames_out(t) == n_out
    assert len(bl) == 2 and all(b.shape == (2, 192, 4, n_out) for b in bl)
    assert torch.allclose(emb, fr.mean(1), atol=1e-6)
    # frames = final LayerNorm of the last layer, frequency patches concatenated per time step
    last = bl[-1].permute(0, 3, 2, 1)  # [B, T', F', D]
    assert torch.allclose(fr, enc.norm(last).reshape(2, n_out, 4 * 192), atol=1e-5)


def test_patch_order_and_embedding_match_timm_patch_embed() -> None:
    """patchify + linear embedding == timm's conv PatchEmbed, patch (f, t) at index f * T' + t."""
    enc = tiny()
    x = torch.randn(2, 1, 64, 96)
    p = enc.patchify(x)
    assert p.shape == (2, 24, 256)
    assert torch.equal(p[1, 1 * 6 + 4], x[1, 0, 16:32, 64:80].reshape(-1))  # f=1, t=4
    idx = torch.arange(24).expand(2, -1)
    with torch.no_grad():
        ours = enc.embed_patches(p, idx, 6)
        ref = enc.patch_embed(x) + enc.pos_embed
        assert torch.allclose(ours, ref, atol=1e-5)
        # the masked objectives' token path equals the frames() path when every patch is visible
        grid = enc.encode_tokens(ours).reshape(2, 4, 6, 192).permute(0, 2, 1, 3).reshape(2, 6, 768)
        assert torch.allclose(grid, enc.frames(x), atol=1e-5)


def test_positions_short_and_long_inputs() -> None:
    enc = tiny()  # grid 4 x 6
    pe = enc.pos_embed.view(4, 6, -1)
    assert torch.allclose(enc.pos_embed, timm.layers.build_sincos2d_pos_embed([4, 6], dim=192), atol=1e-6)
    assert torch.allclose(enc.pos_for(6), enc.pos_embed)
    assert torch.equal(enc.pos_for(3).view(4, 3, -1), pe[:, :3])  # shorter: first columns (time kept)
    enc.long_input = "extend"
    assert torch.allclose(enc.pos_for(10).view(4, 10, -1)[:, :6], pe, atol=1e-6)
    enc.long_input = "interpolate"  # positions scaled into the training span: ends pinned, the rest in between
    up = enc.pos_for(11).view(4, 11, -1)
    assert up.shape == (4, 11, 192) and not torch.allclose(up[:, :6], pe)
    assert torch.allclose(up[:, ::2], pe, atol=1e-6)  # t' = 2 t * 5/10 hits every training column
    assert torch.equal(enc.pos_for(3).view(4, 3, -1), pe[:, :3])
    # chunk: a 2.5-chunk input is encoded as 3 padded chunks, each equal to encoding it alone
    enc.long_input = "chunk"
    x = torch.randn(1, 1, 64, 240)
    with torch.no_grad():
        fr = enc.frames(x)
        first = enc.frames(x[..., :96])
        third = enc.frames(torch.nn.functional.pad(x[..., 192:], (0, 48)))
    assert fr.shape == (1, 15, 768)
    assert torch.allclose(fr[:, :6], first, atol=1e-5) and torch.allclose(fr[:, 12:], third[:, :3], atol=1e-5)


def test_vit_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match="multiple of the patch size"):
        models.build_encoder("vit_tiny", n_mels=70)
    enc = tiny()
    with pytest.raises(ValueError, match="64 mel bins"):
        enc(torch.randn(1, 1, 80, 96))
    clone = models.build_encoder(enc.name, **enc.config())
    assert clone.config() == enc.config() and count_params(clone) == count_params(enc)


def test_onnx_export_keeps_time_dynamic(tmp_path) -> None:
    """The position table is computed branch-free from the input length, so one ONNX file serves any length
    (shorter than, equal to and longer than the training grid)."""
    from models.export import export_encoder, run_exported

    enc = tiny(depth=1)
    path = tmp_path / "vit.onnx"
    assert export_encoder(enc, path, "onnx")["max_abs_diff_vs_torch"] < 1e-4
    for b, t in [(1, 64), (2, 96), (1, 250)]:
        x = torch.randn(b, 1, 64, t)
        with torch.no_grad():
            ref = enc(x).numpy()
        out = run_exported(path, "onnx", x)
        assert out.shape == ref.shape and abs(out - ref).max() < 1e-4
