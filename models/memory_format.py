"""The memory layout of a model's weights and activations (``train --memory-format``; eval's frozen encoders).

``channels_last`` (NHWC) stores a 4-D tensor channel-innermost.  Converting the model's 4-D weights is
enough: a convolution whose weight is channels_last returns a channels_last activation, so the whole
convolutional trunk runs in NHWC and oneDNN (CPU) or cuDNN (GPU) picks its faster kernels.  Measured on
one CPU thread (``make bench-memory-format``): ``mobile`` and ``audio_ntt`` forward+backward ~1.5x faster.
The numbers are those of the contiguous model up to float rounding (``tests/test_memory_format.py``);
checkpoints and exported weights are written contiguous, so a run's files do not depend on the layout.

Training converts per ``--memory-format``; evaluation converts every frozen encoder with ``auto`` (forward
1.3-2.5x on one CPU thread).  ``auto`` converts when the model holds a ``Conv2d`` and leaves ViTs (whose 4-D patch-embedding weight
sees one call per batch) as they are.
"""
from __future__ import annotations

import torch
from torch import nn

CHOICES = ("auto", "channels_last", "contiguous")


def has_conv2d(model: nn.Module) -> bool:
    """Whether ``model`` holds a 2-D convolution beyond a single patch embedding (ViT)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if len(convs) != 1:
        return bool(convs)
    c = convs[0]
    return c.kernel_size != c.stride  # a lone non-overlapping conv is a patch embedding


def resolve(choice: str, model: nn.Module) -> str:
    """``auto`` -> ``channels_last`` for convolutional models, else ``contiguous``."""
    if choice not in CHOICES:
        raise ValueError(f"memory format must be one of {CHOICES}, got {choice!r}")
    if choice == "auto":
        return "channels_last" if has_conv2d(model) else "contiguous"
    return choice


def apply(model: nn.Module, choice: str) -> str:
    """Convert ``model``'s 4-D parameters and buffers in place; returns the resolved format."""
    fmt = resolve(choice, model)
    layout = torch.channels_last if fmt == "channels_last" else torch.contiguous_format
    model.to(memory_format=layout)  # type: ignore[call-overload]  # torch's stubs omit this documented overload
    return fmt
