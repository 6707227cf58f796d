"""Image degradations: how LR images are made from HR ones, for training pairs and benchmarks.

:func:`bicubic_down` and :func:`quantise` (IRN's fitting target and rounding), :func:`degrade` (one
NumPy image: ``bicubic`` or ``realistic``, GLEAN's synthetic-data pairs) and :func:`degrade_batch`
(batches in torch, on any device):

- ``bicubic``: the documented clean resize, antialiased bicubic ``1/scale``.
- ``acquisition``: what a lower-magnification acquisition of the same specimen gives: a Gaussian
  blur (extra PSF width, σ ∈ [0, 0.5·scale] HR pixels), pixel integration (area average over
  ``scale × scale``), then Poisson noise (peak 30–1000 photons) and Gaussian read noise
  (σ ∈ [0, 0.02]).
- ``mixed``: per image, ``bicubic`` with probability ¼, else ``acquisition``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "DEGRADES",
    "TORCH_DEGRADES",
    "bicubic_down",
    "degrade",
    "degrade_batch",
    "gaussian_blur",
    "quantise",
]

TORCH_DEGRADES = ("bicubic", "acquisition", "mixed")
#: every degradation a GLEAN training run can name (``realistic``: NumPy only, :func:`degrade`)
DEGRADES = ("bicubic", "realistic", *TORCH_DEGRADES[1:])


def bicubic_down(x: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downscaling ``(B, C, H, W) → (B, C, H/s, W/s)`` (the fitting target)."""
    return F.interpolate(x, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)


def quantise(x: torch.Tensor, levels: int = 255) -> torch.Tensor:
    """Clamp to ``[0, 1]`` and round to ``levels`` steps, with a straight-through gradient."""
    q = torch.round(x.clamp(0, 1) * levels) / levels
    return x + (q - x).detach()


def degrade(
    hr: np.ndarray, scale: int, mode: str = "bicubic", rng: np.random.Generator | None = None
) -> np.ndarray:
    """HR ``(C, H, W)`` float in ``[0, 1]`` → LR ``(C, H/s, W/s)`` float32 in ``[0, 1]``.

    ``bicubic``: antialiased bicubic resize. ``realistic``: the LR is further blurred (Gaussian,
    σ ∈ [0, 0.7] LR pixels) and gets Poisson noise (peak 50–1000 photons) plus Gaussian read noise
    (σ ∈ [0, 0.02]); ``rng`` draws these.
    """
    from skimage.transform import resize

    c, h, w = hr.shape
    lr = resize(hr, (c, h // scale, w // scale), order=3, anti_aliasing=True).astype(np.float32)
    if mode == "realistic":
        from scipy.ndimage import gaussian_filter

        rng = rng or np.random.default_rng()
        lr = gaussian_filter(lr, (0, *(2 * [rng.uniform(0.0, 0.7)])))
        peak = rng.uniform(50, 1000)
        lr = rng.poisson(np.clip(lr, 0, None) * peak) / peak + rng.normal(0, rng.uniform(0, 0.02), lr.shape)
    elif mode != "bicubic":
        raise ValueError(f"unknown degrade {mode!r}: choose bicubic or realistic")
    return np.clip(lr, 0, 1).astype(np.float32)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image of ``x`` ``(B, C, H, W)`` with its own Gaussian σ (``(B,)``, pixels; 0 = none),
    reflect padding. Returns the same shape."""
    b, c, h, w = x.shape
    radius = max(1, int(torch.ceil(3 * sigma.max()).item()))
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    s = sigma.clamp_min(1e-3).to(x.dtype)[:, None]
    k = torch.exp(-0.5 * (t[None] / s) ** 2)
    k = k / k.sum(1, keepdim=True)  # (B, K); σ → 0 gives a delta
    k = k.repeat_interleave(c, 0)
    y = F.pad(x.reshape(1, b * c, h, w), (radius, radius, radius, radius), mode="reflect")
    y = F.conv2d(y, k[:, None, None, :], groups=b * c)
    y = F.conv2d(y, k[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w)


def degrade_batch(
    hr: torch.Tensor, scale: int, mode: str = "bicubic", generator: torch.Generator | None = None
) -> torch.Tensor:
    """HR ``(B, C, H, W)`` in ``[0, 1]`` → LR ``(B, C, H/scale, W/scale)`` in ``[0, 1]`` (see the
    module docstring for the modes). ``generator`` (on ``hr``'s device) draws the random settings."""
    if mode not in TORCH_DEGRADES:
        raise ValueError(f"unknown degrade {mode!r}: choose one of {', '.join(TORCH_DEGRADES)}")
    clean = bicubic_down(hr, scale).clamp(0, 1)
    if mode == "bicubic":
        return clean
    b, dev = hr.shape[0], hr.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=dev)

    blurred = gaussian_blur(hr, rand(b) * 0.5 * scale)
    lr = F.avg_pool2d(blurred, scale).clamp(0, 1)
    peak = torch.exp(math.log(30.0) + rand(b, 1, 1, 1) * math.log(1000 / 30))
    lr = torch.poisson(lr * peak, generator=generator) / peak
    lr = lr + torch.randn(lr.shape, generator=generator, device=dev) * rand(b, 1, 1, 1) * 0.02
    lr = lr.clamp(0, 1)
    if mode == "mixed":
        use_clean = (rand(b, 1, 1, 1) < 0.25).to(lr.dtype)
        lr = use_clean * clean + (1 - use_clean) * lr
    return lr
