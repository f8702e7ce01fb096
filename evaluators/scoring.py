"""Scoring a trained model: top-1 accuracy on images kept on the device, in batches."""

from __future__ import annotations

import torch
from torch import nn

from evaluators.augment import to_input

__all__ = ["evaluate"]


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor,
             std: torch.Tensor, resolution: int, batch_size: int, tta_flip: bool,
             channels_last: bool = True) -> float:
    """Top-1 accuracy on (x, y), optionally averaging the logits of each image and its flip.

    Out of GPU memory, it scores again at half the batch (the trained model is kept)."""
    while True:
        try:
            return _accuracy(model, x, y, mean, std, resolution, batch_size, tta_flip,
                             channels_last)
        except torch.cuda.OutOfMemoryError:
            if batch_size <= 1:
                raise
        batch_size //= 2  # outside the except block: its traceback no longer holds memory
        torch.cuda.empty_cache()


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mean: torch.Tensor,
              std: torch.Tensor, resolution: int, batch_size: int, tta_flip: bool,
              channels_last: bool) -> float:
    model.eval()
    cuda = x.device.type == "cuda"
    correct = 0
    for i in range(0, len(y), batch_size):
        xb = to_input(x[i:i + batch_size], mean, std, resolution, channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cuda):
            logits = model(xb).float()
            if tta_flip:
                logits = logits + model(xb.flip(3)).float()
        correct += int((logits.argmax(1) == y[i:i + batch_size]).sum())
    return correct / max(1, len(y))
