"""Noise models: data-fidelity losses and noise-level estimation (normalised units)."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)

__all__ = [
    "anscombe",
    "anscombe_inverse",
    "estimate_poisson_gaussian",
    "estimate_sigma_pca",
    "gaussian_loss",
    "poisson_gaussian_nll",
]


def gaussian_loss(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted mean squared error. ``x, y``: ``(B, C, H, W)``; ``weight``: broadcastable, ``{0, 1}``."""
    w = weight.expand_as(x)
    return ((x - y) ** 2 * w).sum() / w.sum().clamp_min(1.0)


def poisson_gaussian_nll(
    x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor, a: float, b: float
) -> torch.Tensor:
    """Negative log-likelihood of ``y`` under Poisson–Gaussian noise around ``x``.

    Uses the usual heteroscedastic Gaussian approximation: ``Var[y | x] = a·x + b`` with
    ``a`` the Poisson gain and ``b`` the read-noise variance, all in normalised units
    (images in ``[0, 1]``). ``x, y``: ``(B, C, H, W)``; ``weight``: broadcastable mask.
    """
    var = (a * x.clamp_min(0.0) + b).clamp_min(1e-6)
    w = weight.expand_as(x)
    nll = 0.5 * ((x - y) ** 2 / var + torch.log(var))
    return (nll * w).sum() / w.sum().clamp_min(1.0)


def estimate_poisson_gaussian(image: np.ndarray, bins: int = 12) -> tuple[float, float]:
    """Estimate ``(a, b)`` of ``Var[y] = a·E[y] + b`` from one noisy image.

    ``image``: ``(H, W)`` float, any range (the result is in the image's units). Uses the
    finest diagonal Haar detail (noise only, in flat areas) against the local mean, a robust
    (median-based) variance per intensity bin, and a least-squares line. ``a, b >= 0``.
    """
    y = np.asarray(image, dtype=np.float64)
    h, w = (y.shape[0] // 2) * 2, (y.shape[1] // 2) * 2
    if h < 4 or w < 4:
        raise ValueError("image too small to estimate noise")
    y = y[:h, :w]
    p00, p10, p01, p11 = y[0::2, 0::2], y[1::2, 0::2], y[0::2, 1::2], y[1::2, 1::2]
    detail = ((p00 - p10 - p01 + p11) / 2).ravel()
    mean = ((p00 + p10 + p01 + p11) / 4).ravel()
    edges = np.unique(np.quantile(mean, np.linspace(0, 1, bins + 1)))
    mus, vs = [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (mean >= lo) & (mean <= hi)
        if sel.sum() < 20:
            continue
        mad = np.median(np.abs(detail[sel] - np.median(detail[sel])))
        mus.append(mean[sel].mean())
        vs.append((mad / 0.6745) ** 2)
    if len(mus) < 2:
        v = float(np.median(vs)) if vs else 0.0
        return 0.0, v
    a, b = np.polyfit(np.asarray(mus), np.asarray(vs), 1)
    if a < 0:
        a, b = 0.0, float(np.median(vs))
    if b < 0:
        b = 0.0
    return float(a), float(b)


def estimate_sigma_pca(image: np.ndarray, patch: int = 7, max_patches: int = 40000, seed: int = 0) -> float:
    """Standard deviation of additive white Gaussian noise in one ``(H, W)`` image (its units).

    The eigenvalues of the covariance of ``patch``² pixel patches: the image's content lives in a
    few large ones, the noise spreads evenly over all of them, so the smallest eigenvalues whose
    mean is also their median are taken as noise (Chen, Zhu & Heng, ICCV 2015). Unlike a
    wavelet-detail estimate, fine texture does not inflate it much: texture occupies its own
    eigenvectors.
    """
    y = np.asarray(image, dtype=np.float64)
    if y.ndim != 2 or min(y.shape) < 2 * patch:
        raise ValueError(f"need a 2-D image of at least {2 * patch} pixels a side, not {y.shape}")
    view = np.lib.stride_tricks.sliding_window_view(y, (patch, patch))  # no copy
    n = view.shape[0] * view.shape[1]
    if n > max_patches:  # a random subset: the covariance converges long before all patches
        k = np.random.default_rng(seed).choice(n, max_patches, replace=False)
        win = view[k // view.shape[1], k % view.shape[1]].reshape(-1, patch * patch)
    else:
        win = view.reshape(-1, patch * patch)
    lam = np.sort(np.linalg.eigvalsh(np.cov(win, rowvar=False)))[::-1].clip(min=0.0)
    for i in range(len(lam)):
        tail = lam[i:]
        tau = tail.mean()
        if np.sum(tail > tau) >= np.sum(tail < tau):  # big (content) eigenvalues no longer pull the mean up
            return float(np.sqrt(tau))
    return float(np.sqrt(lam[-1]))


def anscombe(y: ArrayT, a: float, b: float) -> ArrayT:
    """Generalised Anscombe transform of ``y`` (array or tensor, any shape) whose noise variance
    is ``a·x + b`` (``a > 0``; the image's units): the result's noise has unit variance."""
    arg = a * y + 0.375 * a * a + b
    root = arg.clamp_min(0.0).sqrt() if isinstance(arg, torch.Tensor) else np.sqrt(np.maximum(arg, 0.0))
    return 2.0 / a * root


def anscombe_inverse(z: ArrayT, a: float, b: float) -> ArrayT:
    """The asymptotically unbiased inverse of :func:`anscombe` (E[z] ≈ 2√(x/a + 1/8 + b/a²)):
    back to the image's units, same shape."""
    return a * ((z / 2.0) ** 2 - 0.125 - b / (a * a))
