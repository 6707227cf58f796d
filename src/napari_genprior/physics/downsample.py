"""Lanczos-2 downsampler: the fixed degradation DIP uses for super-resolution."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LanczosDownsampler", "lanczos2_kernel"]


def lanczos2_kernel(factor: int) -> np.ndarray:
    """1-D Lanczos kernel (support 2) for downsampling by ``factor``, phase 0.5.

    Returns ``4 * factor`` taps summing to 1 (the kernel DIP calls width ``4*factor + 1``
    with phase 0.5: taps sit half-way between high-resolution pixels).
    """
    if factor < 1:
        raise ValueError("factor must be >= 1")
    n = 4 * factor
    x = (np.arange(n) + 0.5 - n / 2) / factor
    k = np.sinc(x) * np.sinc(x / 2)
    k[np.abs(x) >= 2] = 0.0
    return (k / k.sum()).astype(np.float32)


class LanczosDownsampler(nn.Module):
    """``(B, C, H, W) → (B, C, H/factor, W/factor)``, separable Lanczos-2, replicate padding.

    ``H`` and ``W`` must be multiples of ``factor``. Output keeps the input's range
    (the kernel sums to 1; small ringing is possible near sharp edges).
    """

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = int(factor)
        self.register_buffer("kernel", torch.from_numpy(lanczos2_kernel(self.factor)), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.factor
        if f == 1:
            return x
        b, c, h, w = x.shape
        if h % f or w % f:
            raise ValueError(f"size {h}x{w} is not a multiple of the factor {f}")
        pad = (len(self.kernel) - f) // 2
        k = self.kernel.to(x.dtype)
        y = F.pad(x.reshape(b * c, 1, h, w), (pad, pad, pad, pad), mode="replicate")
        y = F.conv2d(y, k.view(1, 1, 1, -1), stride=(1, f))
        y = F.conv2d(y, k.view(1, 1, -1, 1), stride=(f, 1))
        return y.reshape(b, c, h // f, w // f)
