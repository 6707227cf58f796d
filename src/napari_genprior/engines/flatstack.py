"""Closed-form flat-field and dark-field of a stack, in torch: the starting point JoIN refines.

A stack of planes ``I_i = F·X_i + D`` whose specimens ``X_i`` vary from plane to plane (BaSiC's
premise) has a mean plane ``M = F·μ + D`` and a per-pixel low quantile across planes
``Q = F·β + D`` (μ: the specimens' mean level, β: their background level; both about the same
everywhere when the specimens are spread over the field). Both are smooth copies of ``F`` with
the same offset ``D``, so over the pixels ``Q = a·M + c`` with ``a = β/μ`` and ``c = D·(1 − a)``:
the dark offset is ``c / (1 − a)``, identified where ``F`` varies enough for the fit to be tight
and ``a`` is clearly below 1 (the background darker than the mean). The field is then the smoothed
``M − D``, mean 1. Nothing here is learned; it takes milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["SPARSE_OCCUPANCY", "StackEstimate", "occupancy", "smooth_plane", "stack_estimate"]

#: side of the grid the field is smoothed on (it has no detail finer than this)
GRID = 64
#: the field's smoothing, as a fraction of the image side (the blurred-image baseline's 1/8)
SIGMA_FRACTION = 1 / 8
#: the per-pixel quantile across planes that stands for the background
QUANTILE = 0.1
#: fewer planes than this: the dark offset is estimated and reported but not subtracted. The mean
#: of fewer planes keeps more specimen, which subtracting the offset amplifies in the field: on the
#: tuning stacks (studies/flatfield_stack_init.py) subtracting it made the field worse at 8 planes
#: and better at 32
MIN_PLANES_FOR_DARK = 16
#: the trimmed mean's cut at each end, a fraction of the planes (at least one plane). More than
#: one plane helped the dense tuning stacks at 32 planes but hurt sparse ones (docs/join.md)
TRIM = 0.0


@dataclass
class StackEstimate:
    """``flatfield`` ``(H, W)`` float32, mean 1; ``dark`` ``(H, W)`` float32 in image units (0 when
    it could not be identified); ``dark_identified``: whether the stack pinned it down; ``note``:
    why not, for the user; ``fit``: the regression's slope, intercept and R²."""

    flatfield: np.ndarray
    dark: np.ndarray
    dark_identified: bool
    note: str
    fit: dict[str, float]


def _gauss1d(sigma: float, device: torch.device) -> torch.Tensor:
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def smooth_plane(plane: torch.Tensor, sigma_fraction: float = SIGMA_FRACTION) -> torch.Tensor:
    """``(H, W)`` → the same size, Gaussian-smoothed with σ = ``sigma_fraction`` × the longer side,
    computed on a grid of at most :data:`GRID` pixels a side (area-averaged down, bicubic back up),
    so that a 4096² plane costs what a 64² one does. Reflecting borders."""
    h, w = plane.shape
    scale = min(1.0, GRID / max(h, w))
    gh, gw = max(4, round(h * scale)), max(4, round(w * scale))
    x = F.adaptive_avg_pool2d(plane[None, None].float(), (gh, gw))
    sigma = sigma_fraction * max(gh, gw)
    k = _gauss1d(sigma, x.device)
    r = k.numel() // 2
    # reflect padding needs pad < size: repeat the reflection for a kernel wider than the grid
    for dim, kern in ((3, k.view(1, 1, 1, -1)), (2, k.view(1, 1, -1, 1))):
        pad = (r, r, 0, 0) if dim == 3 else (0, 0, r, r)
        n = x.shape[dim]
        if r < n:
            x = F.conv2d(F.pad(x, pad, mode="reflect"), kern)
        else:
            x = F.conv2d(F.pad(x, pad, mode="replicate"), kern)
    return F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)[0, 0]


#: below this :func:`occupancy` the planes are mostly background (a tile scan of sparse cells):
#: there the statistics of the planes follow the cells more than the field (measured on tuning
#: tiles: studies/flatfield_stack_init.py --sparse); dense or mixed specimens measured 0.13–0.19,
#: sparse time-lapse tiles 0.07–0.08
SPARSE_OCCUPANCY = 0.1


def occupancy(stack: np.ndarray | torch.Tensor) -> float:
    """The mean fraction of each plane's pixels that stand out from its background (above its
    median by more than a quarter of the way to its 99th percentile): about 0.07 for sparse cells,
    0.13 or more for dense nuclei. ``stack``: ``(N, H, W)``."""
    x = torch.as_tensor(np.asarray(stack, np.float32) if not torch.is_tensor(stack) else stack).float()
    x = x.reshape(x.shape[0], -1)[:, :: max(1, x[0].numel() // 262_144)]
    med = x.median(1, keepdim=True).values
    hi = torch.quantile(x, 0.99, dim=1, keepdim=True)
    return float(((x - med) > 0.25 * (hi - med)).float().mean())


def stack_estimate(
    stack: np.ndarray | torch.Tensor,
    *,
    dark: bool = True,
    quantile: float = QUANTILE,
    sigma_fraction: float = SIGMA_FRACTION,
    trim: float = TRIM,
) -> StackEstimate:
    """The closed-form field and dark offset of a stack ``(N, H, W)`` (N ≥ 2, any units).

    ``dark=False`` fixes the offset at 0. The dark offset is a scalar over the field of view.
    ``trim``: the fraction of planes left out at each end of every pixel's sorted values before
    the mean (at least one each from 3 planes on).
    """
    x = torch.as_tensor(np.asarray(stack, np.float32) if not torch.is_tensor(stack) else stack).float()
    if x.ndim != 3 or x.shape[0] < 2:
        raise ValueError(f"a stack (N, H, W) with N >= 2 is needed, not shape {tuple(x.shape)}")
    n = x.shape[0]
    k = max(1, round(trim * n)) if n >= 3 else 0
    k = min(k, (n - 1) // 2)
    sparse = occupancy(x) < SPARSE_OCCUPANCY
    # a trimmed mean: a plane with a bright cluster at one place drags a plain mean there
    # (measured on the tuning stacks: studies/flatfield_stack_init.py)
    mean = x.sort(0).values[k : n - k].mean(0) if k else x.mean(0)
    low = torch.quantile(x.reshape(x.shape[0], -1), quantile, dim=0).view_as(mean)
    m_s, q_s = smooth_plane(mean, sigma_fraction / 2), smooth_plane(low, sigma_fraction / 2)
    mv, qv = m_s.flatten().double(), q_s.flatten().double()
    mc = mv - mv.mean()
    a = float((mc * (qv - qv.mean())).sum() / mc.square().sum().clamp_min(1e-30))
    c = float(qv.mean() - a * mv.mean())
    resid = qv - (a * mv + c)
    r2 = 1.0 - float(resid.square().sum() / (qv - qv.mean()).square().sum().clamp_min(1e-30))
    fit = {"slope": round(a, 5), "intercept": round(c, 6), "r2": round(r2, 4)}
    d, identified, note = 0.0, False, "dark offset not estimated (dark=False)"
    if dark:
        lo_plane = float(x.amin())
        if not (0.0 <= a < 0.9):
            note = (
                "the stack does not pin the dark offset down (its background is about as bright as its "
                f"mean: slope {a:.2f}); none is subtracted"
            )
        else:
            d = c / (1.0 - a)
            if not (0.0 <= d <= max(float(mv.min()), 0.0)) or d > lo_plane + 3 * float(x.std()):
                note = (
                    f"the dark offset estimated ({d:.4g}) is implausible for this stack; none is subtracted"
                )
                d = 0.0
            elif sparse:
                note = (
                    f"dark offset estimated at {d:.4g} but not subtracted: the planes are mostly background, "
                    "where subtracting it measured worse (the mean plane follows the cells)"
                )
                d = 0.0
            elif n < MIN_PLANES_FOR_DARK:
                note = (
                    f"dark offset estimated at {d:.4g} but not subtracted: {n} planes are too few to tell it "
                    f"from the field reliably (at least {MIN_PLANES_FOR_DARK})"
                )
                d = 0.0
            else:
                identified, note = True, f"dark offset {d:.4g} from the stack (background against field)"
    # mostly background (sparse cells): every pixel shows background in most planes, so its median
    # across planes follows the field without the few cells that drag the mean (studies/
    # flatfield_stack_init.py --sparse: the mean made the corrected planes worse than the raw ones)
    base = x.median(0).values if sparse else mean
    field = smooth_plane(base - d, sigma_fraction).clamp_min(1e-6)
    field = field / field.mean()
    dark_map = torch.full_like(field, d)
    return StackEstimate(
        field.numpy().astype(np.float32), dark_map.numpy().astype(np.float32), identified, note, fit
    )
