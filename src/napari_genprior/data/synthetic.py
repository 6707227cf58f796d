"""Synthetic fluorescence microscopy images with a known ground truth. Numpy + scikit-image."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage import draw

__all__ = ["fluorescence", "poisson_gaussian_noise"]


def fluorescence(
    shape: tuple[int, int] = (256, 256),
    seed: int = 0,
    n_nuclei: int | None = None,
    n_filaments: int | None = None,
    psf_sigma: float = 1.5,
) -> np.ndarray:
    """A clean fluorescence-like image: textured nuclei, thin filaments, PSF blur.

    Returns ``(Y, X)`` float32 in ``[0, 1]`` (relative intensity; background ≈ 0.03).
    Same seed, same image.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    area = h * w / 256**2
    n_nuclei = int(n_nuclei if n_nuclei is not None else max(3, round(rng.integers(10, 18) * area)))
    n_filaments = int(n_filaments if n_filaments is not None else max(3, round(rng.integers(12, 20) * area)))
    img = np.zeros(shape, np.float64)

    # Nuclei: ellipses with a smooth internal texture and a brighter rim.
    texture = ndi.gaussian_filter(rng.standard_normal(shape), 2.0)
    texture /= texture.std() + 1e-12
    for _ in range(n_nuclei):
        r = rng.uniform(9, 18)
        ry, rx = r * rng.uniform(0.7, 1.0), r * rng.uniform(0.8, 1.2)
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        rr, cc = draw.ellipse(cy, cx, ry, rx, shape=shape, rotation=rng.uniform(0, np.pi))
        level = rng.uniform(0.35, 0.7)
        img[rr, cc] = np.maximum(img[rr, cc], level * (1 + 0.25 * texture[rr, cc]))

    # Filaments: smooth random walks drawn as anti-aliased polylines.
    fil = np.zeros(shape, np.float64)
    for _ in range(n_filaments):
        y, x = rng.uniform(0, h), rng.uniform(0, w)
        angle = rng.uniform(0, 2 * np.pi)
        level = rng.uniform(0.5, 1.0)
        for _ in range(int(rng.integers(20, 60))):
            angle += rng.normal(0, 0.15)
            y2, x2 = y + 3 * np.sin(angle), x + 3 * np.cos(angle)
            rr, cc, val = draw.line_aa(int(y), int(x), int(y2), int(x2))
            ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            fil[rr[ok], cc[ok]] = np.maximum(fil[rr[ok], cc[ok]], level * val[ok])
            y, x = y2, x2
    img = np.maximum(img, fil)

    img = ndi.gaussian_filter(img, psf_sigma) + 0.03
    return (img / img.max()).astype(np.float32)


def poisson_gaussian_noise(
    clean: np.ndarray,
    photons: float = 60.0,
    gain: float = 2.0,
    offset: float = 100.0,
    read_noise: float = 3.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate a camera: ``clean`` in ``[0, 1]`` → (expected ADU as float32, noisy uint16 ADU).

    ``photons`` at intensity 1; ADU = offset + gain·Poisson(photons·clean) + N(0, read_noise²).
    """
    rng = np.random.default_rng(seed)
    expected = photons * np.asarray(clean, np.float64)
    counts = rng.poisson(expected)
    noisy = offset + gain * counts + rng.normal(0, read_noise, counts.shape)
    ideal = (offset + gain * expected).astype(np.float32)
    return ideal, np.clip(np.rint(noisy), 0, 65535).astype(np.uint16)
