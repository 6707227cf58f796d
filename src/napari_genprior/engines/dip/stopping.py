"""When a DIP fit stops without a ground truth, and the iterate statistics the rules watch.

Two rules (both chosen with studies/dip_stop_study.py on its tuning images, reported on the others):

- denoising: :class:`WhitenessStop`, the residual ``x - y`` turns white;
- inpainting and SR: :class:`VarianceStop`, ES-WMV with a tolerance (the windowed variance of
  the iterates stops falling).
"""

from __future__ import annotations

import collections
import math
from typing import Any

import torch

#: ES-WMV counts a fall of the windowed iterate variance only when it is at least this fraction
#: below the previous reference, so a long plateau stops the fit too.
AUTO_TOLERANCE = 0.01
#: Denoising with automatic stopping watches the residual ``x - y`` instead of the iterates'
#: variance: its lag-1 autocorrelation (mean of the x and y neighbours, moving mean of the last
#: :data:`WHITENESS_SMOOTH` steps) is positive while the image's content is still in it and turns
#: negative once the network follows the noise, which is white. The fit stops when it falls below
#: this level, from step :data:`WHITENESS_START` on. No noise estimate is needed, so fine texture
#: that inflates one cannot stop the fit early, and the rule holds for Poisson–Gaussian noise too
#: (independent from pixel to pixel).
AUTO_WHITENESS = 0.0
WHITENESS_SMOOTH = 50
WHITENESS_START = 100
#: A guard for small images, where the network follows the noise within a few dozen steps and
#: the residual's correlation never turns negative: denoising also stops once the residual
#: (whitened by the estimated noise variance, same moving mean) is below this fraction of the
#: noise. Low enough that a noise estimate inflated by texture does not reach it before the fit
#: reaches the image.
AUTO_OVERFIT = 0.7


def auto_stop_settings(task: str) -> dict[str, Any]:
    """The residual-whiteness settings a run with ``iterations="auto"`` records in its config:
    ``auto_whiteness`` and ``auto_overfit`` for denoising, none for the other tasks (ES-WMV)."""
    if task == "denoise" and AUTO_WHITENESS is not None:
        return {"auto_whiteness": AUTO_WHITENESS, "auto_overfit": AUTO_OVERFIT}
    return {}


class MovingWindow:
    """The last ``size`` iterates on the device and their per-pixel variance (ES-WMV, uncertainty).

    Running sums (float64) make each step O(pixels) rather than O(size × pixels).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.buf: torch.Tensor | None = None
        self.s1: torch.Tensor | None = None
        self.s2: torch.Tensor | None = None
        self.count = 0

    def push(self, x: torch.Tensor) -> None:
        x64 = x.to(torch.float32 if x.device.type == "mps" else torch.float64)  # MPS has no float64
        if self.buf is None:
            self.buf = torch.empty((self.size, *x.shape), dtype=x.dtype, device=x.device)
            self.s1 = torch.zeros_like(x64)
            self.s2 = torch.zeros_like(x64)
        k = self.count % self.size
        if self.count >= self.size:
            old = self.buf[k].to(x64.dtype)
            self.s1 -= old
            self.s2 -= old * old
        self.buf[k] = x
        self.s1 += x64
        self.s2 += x64 * x64
        self.count += 1

    @property
    def full(self) -> bool:
        return self.count >= self.size

    def variance_map(self) -> torch.Tensor:
        """Per-pixel variance over the window, ``(C, H, W)``, float32."""
        n = min(self.count, self.size)
        mean = self.s1 / n
        return (self.s2 / n - mean * mean).clamp_min(0.0).to(torch.float32)


def residual_correlation(r: torch.Tensor) -> torch.Tensor:
    """Lag-1 autocorrelation of a residual ``(C, H, W)`` (each channel centred), the mean of its x
    and y neighbours: about 0 for white noise, > 0 while image structure is left in it, < 0 once
    a fit follows the noise (the residual turns high-pass). A 0-d tensor."""
    r = r - r.mean(dim=(-2, -1), keepdim=True)
    num = (r[..., 1:, :] * r[..., :-1, :]).mean() + (r[..., :, 1:] * r[..., :, :-1]).mean()
    return num / (2.0 * (r * r).mean()).clamp_min(1e-30)


class WhitenessStop:
    """Denoising's rule: stop at the first step from :data:`WHITENESS_START` on where the residual's
    lag-1 autocorrelation (moving mean over :data:`WHITENESS_SMOOTH` steps) is below ``level``,
    or where the residual whitened by the noise variance (``chi²`` per pixel, same moving mean) is
    below ``overfit`` (``None``: no noise variance, no guard). The estimate returned is the
    output average at the stop."""

    def __init__(self, level: float, overfit: float | None) -> None:
        self.level, self.overfit = level, overfit
        self.rhos: collections.deque[float] = collections.deque(maxlen=WHITENESS_SMOOTH)
        self.chi2s: collections.deque[float] = collections.deque(maxlen=WHITENESS_SMOOTH)
        self.start = WHITENESS_START

    def push(self, resid: torch.Tensor, chi2: float | None) -> None:
        """Record one step's residual ``(C, H, W)`` and its whitened mean square (or ``None``)."""
        self.rhos.append(float(residual_correlation(resid)))
        if chi2 is not None:
            self.chi2s.append(chi2)

    def should_stop(self, step: int) -> bool:
        """Whether the fit stops after ``step`` (1-based) steps."""
        if step < self.start or len(self.rhos) < self.rhos.maxlen:
            return False
        if sum(self.rhos) / len(self.rhos) < self.level:
            return True
        return self.overfit is not None and sum(self.chi2s) / len(self.chi2s) < self.overfit


class VarianceStop:
    """ES-WMV with a tolerance: ``t*`` is the last step where the mean variance of the window fell
    at least :data:`AUTO_TOLERANCE` below its value at the previous such step (a minimum, or the
    start of a plateau). The fit stops ``patience`` steps after ``t*``; :attr:`best` holds the
    estimate of step ``t*`` and :attr:`spread` its per-pixel std ``(H, W)``."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_var, self.best_step = math.inf, 0
        self.best: torch.Tensor | None = None
        self.spread: torch.Tensor | None = None

    def update(self, step: int, window: MovingWindow, estimate: torch.Tensor) -> None:
        """After ``step`` steps: compare the window's variance with the reference; on a fall,
        keep a copy of ``estimate`` ``(C, H, W)`` as the best so far."""
        if not window.full:
            return
        vmap = window.variance_map()
        v = float(vmap.mean())
        if v < (1.0 - AUTO_TOLERANCE) * self.best_var:  # a significant fall
            self.best_var, self.best_step = v, step
            self.best = estimate.clone()
            self.spread = vmap.mean(dim=0).sqrt()

    def should_stop(self, step: int) -> bool:
        return self.best is not None and step - self.best_step >= self.patience
