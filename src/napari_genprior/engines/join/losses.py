"""JoIN's distances and regularisers (reconstruction, noise maps) and the projector's learning-rate
schedule. Tensors are ``(B, C, H, W)`` float32 in linear units."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    out = []
    for _ in range(levels - 1):
        if min(x.shape[-2:]) < 4:
            break
        down = F.avg_pool2d(x, 2)
        out.append(x - F.interpolate(down, size=x.shape[-2:], mode="bilinear", align_corners=False))
        x = down
    out.append(x)
    return out


def laplacian_distance(a: torch.Tensor, b: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """Per-sample Laplacian-pyramid L1 distance of ``(B, C, H, W)`` tensors → ``(B,)``; each level
    weighted by 2^level (coarse levels hold fewer pixels), so edges and structure count, not
    only the mean intensity."""
    total = torch.zeros(a.shape[0], device=a.device)
    for i, (pa, pb) in enumerate(zip(_laplacian_pyramid(a, levels), _laplacian_pyramid(b, levels))):
        total = total + (2.0**i) * (pa - pb).abs().mean((1, 2, 3))
    return total


def _distance(recon: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """``(B,)`` reconstruction distance of ``(B, C, H, W)`` tensors, of ``kind`` (:data:`DISTANCES`)."""
    if kind == "l1+lap":
        return 0.1 * (recon - target).abs().mean((1, 2, 3)) + 0.1 * laplacian_distance(recon, target)
    mse = (recon - target).square().mean((1, 2, 3))
    return mse + 0.1 * laplacian_distance(recon, target) if kind == "mse+lap" else mse


def projector_lr(t: float, base: float) -> float:
    """The StyleGAN2 projector's schedule at progress ``t`` ∈ [0, 1]: cosine ramp-down over the
    last 25 %, linear ramp-up over the first 5 %."""
    ramp = min(1.0, (1.0 - t) / 0.25)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return base * ramp * min(1.0, t / 0.05)


def _noise_reg(noises: list[torch.Tensor]) -> torch.Tensor:
    """The StyleGAN2 projector's noise regulariser: squared autocorrelation at every octave."""
    reg = torch.zeros(())
    for n in noises:
        while True:
            reg = (
                reg
                + (n * torch.roll(n, 1, dims=3)).mean().square()
                + (n * torch.roll(n, 1, dims=2)).mean().square()
            )
            if n.shape[-1] <= 8:
                break
            n = F.avg_pool2d(n, 2)
    return reg
