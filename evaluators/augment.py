"""Batched augmentation on uint8 tensors, on the device that trains: no per-image loops."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["random_crop_flip", "to_input"]


def random_crop_flip(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator
                     ) -> torch.Tensor:
    """Random ``pad``-pixel translations (zero padding) and horizontal flips of a batch.

    Args:
        x: (N, C, H, W) uint8 images.
        gen: a generator on x's device, so runs are reproducible.
    """
    n, c, h, w = x.shape
    if pad:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device, generator=gen)
        dx = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device, generator=gen)
        rows = (dy + torch.arange(h, device=x.device)).view(n, 1, h, 1)
        cols = (dx + torch.arange(w, device=x.device)).view(n, 1, 1, w)
        batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
        chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
        x = padded[batch, chan, rows, cols]
    if flip:
        mask = torch.rand(n, device=x.device, generator=gen) < 0.5
        x = torch.where(mask.view(n, 1, 1, 1), x.flip(3), x)
    return x


def to_input(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, resolution: int,
             channels_last: bool) -> torch.Tensor:
    """uint8 (N, C, H, W) -> normalised float, resized to ``resolution`` when it differs."""
    out = (x.float().div_(255) - mean) / std
    if out.shape[-1] != resolution or out.shape[-2] != resolution:
        out = F.interpolate(out, size=(resolution, resolution), mode="bilinear",
                            antialias=True, align_corners=False)
    if channels_last:
        out = out.contiguous(memory_format=torch.channels_last)
    return out
