"""Parameter and multiply-add counts, output shapes (``python -m models summary``).

Multiply-adds (MACs) are counted by our own forward hooks on every ``nn.Conv2d`` (timm's scaled-WS
convs included) and ``nn.Linear``: ``MACs = output elements x (C_in / groups) x k_h x k_w`` for a
conv and ``output elements x in_features`` for a linear layer, per example.  Normalisation,
activations, pooling, weight standardisation and the residual additions are not counted.
FLOPs are ~2 x MACs (``torch.utils.flop_counter.FlopCounterMode`` reports 2 x MACs; the tests check
the two agree).  Tagliasacchi et al. 2019's Table 1 "FLOPs" column is 2 x MACs: its 18.7M for the
96 x 64 input corresponds to ~9.3M multiply-adds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch import nn

from .base import Encoder
from .registry import build_encoder

#: (label, encoder name, kwargs) listed by ``python -m models summary``
VARIANTS: list[tuple[str, str, dict[str, Any]]] = [
    ("mobile", "mobile", {}),
    ("mobile (width=4, d=256)", "mobile", {"width": 4, "d": 256}),
    ("audio_ntt (d=512)", "audio_ntt", {"d": 512}),
    ("audio_ntt (d=1024)", "audio_ntt", {"d": 1024}),
    ("audio_ntt (d=2048)", "audio_ntt", {"d": 2048}),
    ("efficientnet_b0", "efficientnet_b0", {}),
    ("efficientnet_b0 (head=cola)", "efficientnet_b0", {"head": "cola"}),
    ("resnet50", "resnet50", {}),
    ("nfnet_f0", "nfnet_f0", {}),
    ("slowfast_nfnet_f0", "slowfast_nfnet_f0", {}),
    ("slowfast_nfnet_f0 (features=1728)", "slowfast_nfnet_f0", {"features": 1728}),
]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, x: torch.Tensor, method: str = "forward") -> int:
    """Multiply-adds per example of ``getattr(model, method)(x)`` (hooks on Conv2d and Linear)."""
    total = 0

    def conv_hook(m: nn.Conv2d, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        kh, kw = m.kernel_size
        total += out.numel() * (m.in_channels // m.groups) * kh * kw

    def linear_hook(m: nn.Linear, _inp: Any, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * m.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x) if method == "forward" else getattr(model, method)(x)
    finally:
        for h in handles:
            h.remove()
        model.train(was)
    return total // x.shape[0]


@dataclass
class Summary:
    label: str
    name: str
    kwargs: dict[str, Any]
    params: int
    embedding_dim: int
    frame_dim: int
    frame_rate: float
    n_mels: int
    macs: dict[int, int] = field(default_factory=dict)
    shapes: dict[int, dict[str, Any]] = field(default_factory=dict)


def summarize(encoder: Encoder, n_frames: Iterable[int] = (96, 1001), label: str | None = None) -> Summary:
    """Params, MACs and output shapes of ``encoder`` on ``[1, 1, n_mels, T]`` for each T."""
    s = Summary(label or encoder.name, encoder.name, encoder.config(), count_params(encoder), encoder.embedding_dim,
                encoder.frame_dim, encoder.frame_rate, encoder.n_mels)
    encoder.eval()
    for t in n_frames:
        x = torch.zeros(1, 1, encoder.n_mels, t)
        s.macs[t] = count_macs(encoder, x)
        with torch.no_grad():
            blocks = encoder.blocks(x)
            s.shapes[t] = {
                "forward": tuple(encoder(x).shape),
                "frames": tuple(encoder.frames(x).shape),
                "blocks": [tuple(b.shape) for b in blocks],
            }
    return s


def _fmt_m(n: int) -> str:
    return f"{n / 1e6:,.2f}M" if n < 1e9 else f"{n / 1e9:,.2f}G"


def format_table(rows: list[Summary], n_frames: tuple[int, ...] = (96, 1001)) -> str:
    head = ["encoder", "params", "n_mels"] + [f"MACs@{t}" for t in n_frames] + \
           [f"forward / frames @{t}" for t in n_frames] + ["blocks (last @96)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.label, f"{r.params:,}", str(r.n_mels)] + [_fmt_m(r.macs[t]) for t in n_frames]
        for t in n_frames:
            sh = r.shapes[t]
            cells.append(f"{list(sh['forward'])} / {list(sh['frames'])}")
        b = r.shapes[n_frames[0]]["blocks"]
        cells.append(f"{len(b)} maps, last {list(b[-1])}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(n_frames: tuple[int, ...] = (96, 1001), names: list[str] | None = None) -> str:
    rows = []
    for label, name, kw in VARIANTS:
        if names and name not in names:
            continue
        torch.manual_seed(0)
        rows.append(summarize(build_encoder(name, **kw), n_frames, label))
    table = format_table(rows, n_frames)
    print(table)
    print("\nMACs = multiply-adds per example (Conv2d + Linear, forward hooks); FLOPs ~ 2 x MACs.")
    return table
