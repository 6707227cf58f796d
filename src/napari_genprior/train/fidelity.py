"""The trivial baseline beside a generator's fidelity figure (SWD, in :mod:`napari_genprior.metrics`),
so that the number means something.

"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

__all__ = ["blurred_noise"]


def blurred_noise(like: np.ndarray, n: int, sigma: float = 2.0, seed: int = 0) -> np.ndarray:
    """The trivial baseline: ``n`` images of Gaussian-blurred white noise with the per-channel mean
    and std of ``like`` ``(N, H, W[, C])``, clipped to ``[0, 1]``; same shape per image."""
    like = np.asarray(like, np.float32)
    rng = np.random.default_rng(seed)
    chan = like.ndim == 4
    x = like if chan else like[..., None]
    mean = x.mean(axis=(0, 1, 2))
    std = x.std(axis=(0, 1, 2))
    shape = (n, *x.shape[1:])
    noise = ndi.gaussian_filter(rng.standard_normal(shape), (0, sigma, sigma, 0), mode="wrap")
    noise = (noise - noise.mean(axis=(0, 1, 2))) / (noise.std(axis=(0, 1, 2)) + 1e-12)
    out = np.clip(noise * std + mean, 0, 1).astype(np.float32)
    return out if chan else out[..., 0]
