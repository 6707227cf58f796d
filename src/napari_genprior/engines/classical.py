"""Classical single-image decompositions (the baselines JoIN is measured against). Numpy + scipy + scikit-image only.

- :func:`retinex_shading`: multi-scale Retinex (Jobson et al. 1997) read as an illumination
  estimate: log S = mean over σ of log(G_σ ∗ L), L the luminance; A = I / S.
- :func:`blur_shading`: "shading = blurred luminance" (one Gaussian).
- :func:`blur_flatfield`: the flat-field as the blurred image itself, normalised to mean 1.

The decomposition errors (si-MSE, LMSE) live in :mod:`napari_genprior.metrics`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["blur_flatfield", "blur_shading", "retinex_shading"]

#: Retinex scales for a 256-pixel image (15, 80, 250 px); scaled with the image size.
RETINEX_SIGMAS = (15.0, 80.0, 250.0)


def _luminance(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image, np.float64)
    return a.mean(-1) if a.ndim == 3 else a


def retinex_shading(image: np.ndarray, eps: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """``image`` ``(H, W)`` or ``(H, W, 3)``, linear, >= 0 → ``(albedo like image, shading (H, W))``
    by multi-scale Retinex: the shading is the geometric mean of the luminance blurred at three
    scales (15, 80 and 250 px at 256², scaled to the image)."""
    lum = _luminance(image) + eps
    k = max(image.shape[:2]) / 256.0
    logs = [np.log(ndi.gaussian_filter(lum, s * k, mode="reflect")) for s in RETINEX_SIGMAS]
    s = np.exp(np.mean(logs, axis=0))
    s = s / s.max()
    alb = np.asarray(image, np.float64) / (s[..., None] if np.ndim(image) == 3 else s)
    return alb.astype(np.float32), s.astype(np.float32)


def blur_shading(
    image: np.ndarray, sigma: float | None = None, eps: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """``(albedo, shading)`` with the shading the luminance blurred by ``sigma`` (default: 1/16 of
    the image side)."""
    lum = _luminance(image)
    sigma = sigma or max(image.shape[:2]) / 16
    s = ndi.gaussian_filter(lum, sigma, mode="reflect") + eps
    s = s / s.max()
    alb = np.asarray(image, np.float64) / (s[..., None] if np.ndim(image) == 3 else s)
    return alb.astype(np.float32), s.astype(np.float32)


def blur_flatfield(image: np.ndarray, sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(corrected, flatfield)`` of a grey ``(H, W)`` image (or the mean over a ``(N, H, W)``
    stack): the field is the image blurred by ``sigma`` (default 1/8 of the side), mean 1."""
    a = np.asarray(image, np.float64)
    base = a.mean(0) if a.ndim == 3 else a
    sigma = sigma or max(base.shape) / 8
    f = ndi.gaussian_filter(base, sigma, mode="reflect")
    f = np.maximum(f, 1e-6 * max(float(f.max()), 1e-12))
    f = f / f.mean()
    return (a / f).astype(np.float32), f.astype(np.float32)
