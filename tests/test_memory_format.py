"""``--memory-format``: channels_last changes the speed of conv encoders, never their numbers."""
from __future__ import annotations

import copy

import pytest
import torch

import models
from models import memory_format

CONV = ("mobile", "audio_ntt", "audio_ntt2022", "efficientnet_b0")


def _forward_backward(enc: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(2)  # the same dropout masks for both layouts
    y = enc(x)
    y.square().mean().backward()
    return y.detach()


@pytest.mark.parametrize("name", CONV)
def test_channels_last_gives_the_contiguous_numbers(name: str) -> None:
    """Forward (train mode: batch statistics) and every gradient agree with the contiguous model: in float64
    to 1e-9 (the layouts compute the same function), in float32 to rounding (the order of sums differs
    with the kernel and thread count)."""
    torch.manual_seed(0)
    a = models.build_encoder(name).train()
    x = torch.randn(4, 1, a.n_mels, 96, generator=torch.Generator().manual_seed(1))
    for dtype, tol in ((torch.float64, 1e-9), (torch.float32, 2e-2)):
        a.zero_grad(set_to_none=True)
        a = a.to(dtype)
        b = copy.deepcopy(a)
        assert memory_format.apply(b, "auto") == "channels_last"
        assert all(p.is_contiguous(memory_format=torch.channels_last) for p in b.parameters() if p.dim() == 4)
        ya, yb = _forward_backward(a, x.to(dtype)), _forward_backward(b, x.to(dtype))
        assert float((yb - ya).norm() / ya.norm()) < tol / 10, dtype
        pairs = [(k, pa.grad, pb.grad) for (k, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters())
                 if pa.grad is not None]
        total = float(torch.cat([ga.flatten() for _, ga, _ in pairs]).norm())
        for k, ga, gb in pairs:  # a conv bias under BatchNorm has a ~0 gradient: judge it on the total's scale
            rel = float((gb - ga).norm()) / max(float(ga.norm()), 1e-3 * total)
            assert rel < tol, f"{dtype} {k}: gradients differ by {rel:.2e} of their norm"
    # the state dict is the same numbers; an exported copy loads into a fresh contiguous encoder
    fresh = models.build_encoder(name)
    fresh.load_state_dict({k: v.contiguous() for k, v in b.state_dict().items()})
    torch.testing.assert_close(fresh.eval()(x), b.eval()(x), rtol=1e-4, atol=1e-5)


def test_auto_leaves_vits_and_mlps_contiguous() -> None:
    vit = models.build_encoder("vit_tiny")
    assert memory_format.resolve("auto", vit) == "contiguous"
    assert memory_format.resolve("auto", torch.nn.Linear(3, 4)) == "contiguous"
    assert memory_format.resolve("auto", models.build_encoder("mobile")) == "channels_last"
    assert memory_format.resolve("contiguous", models.build_encoder("mobile")) == "contiguous"
    vit2 = models.build_encoder("vit_tiny")
    assert memory_format.apply(vit2, "channels_last") == "channels_last"
    with pytest.raises(ValueError, match="memory format must be one of"):
        memory_format.resolve("nhwc", vit)


def test_back_to_contiguous() -> None:
    enc = models.build_encoder("mobile")
    memory_format.apply(enc, "channels_last")
    memory_format.apply(enc, "contiguous")
    assert all(p.is_contiguous() for p in enc.parameters())
