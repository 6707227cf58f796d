"""Sample data for napari's File ▸ Open Sample menu. Made offline; returns layer-data tuples."""

from __future__ import annotations

from typing import Any

import numpy as np
from skimage import data as skdata
from skimage import transform

from .synthetic import fluorescence, poisson_gaussian_noise

__all__ = [
    "albedo_prior_samples",
    "astronaut_noisy",
    "camera_missing",
    "fluorescence_sample",
    "illumination_prior_samples",
    "nuclei_prior_samples",
    "prior_samples",
    "shading_prior_samples",
]

LayerData = tuple[np.ndarray, dict[str, Any], str]


def fluorescence_sample() -> list[LayerData]:
    """Synthetic fluorescence 256×256: clean ground truth (float32, ADU) and Poisson–Gaussian noisy (uint16)."""
    clean, noisy = poisson_gaussian_noise(fluorescence((256, 256), seed=0), seed=0)
    lim = [float(noisy.min()), float(np.percentile(noisy, 99.9))]
    meta = {
        "source": "napari_genprior.data.synthetic.fluorescence(seed=0)",
        "photons": 60,
        "gain": 2.0,
        "offset": 100.0,
        "read_noise": 3.0,
        "noise_model": "poisson-gaussian",  # the Deep Image Prior widget picks it from here
    }
    return [
        (clean, {"name": "fluo_clean", "contrast_limits": lim, "metadata": meta, "visible": False}, "image"),
        (noisy, {"name": "fluo_noisy", "contrast_limits": lim, "metadata": meta}, "image"),
    ]


def natural_pair(sigma: float = 25.0, size: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's astronaut at ``size``² RGB uint8, clean and with Gaussian noise σ (uint8)."""
    clean = transform.resize(skdata.astronaut(), (size, size), anti_aliasing=True, preserve_range=True)
    rng = np.random.default_rng(seed)
    noisy = np.clip(clean + rng.normal(0, sigma, clean.shape), 0, 255)
    return np.rint(clean).astype(np.uint8), np.rint(noisy).astype(np.uint8)


def astronaut_noisy() -> list[LayerData]:
    """scikit-image's astronaut (256×256 RGB): clean, and with Gaussian noise σ = 25."""
    clean, noisy = natural_pair()
    return [
        (clean, {"name": "astronaut_clean", "visible": False}, "image"),
        (noisy, {"name": "astronaut_noisy"}, "image"),
    ]


def missing_pixels(shape: tuple[int, int], fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """Random missing-pixel mask ``(Y, X)`` uint8: 1 = missing."""
    return (np.random.default_rng(seed).random(shape) < fraction).astype(np.uint8)


def camera_missing() -> list[LayerData]:
    """scikit-image's camera (256×256 uint8) with 50 % of the pixels missing, and the mask (Labels)."""
    clean = np.rint(transform.resize(skdata.camera(), (256, 256), anti_aliasing=True, preserve_range=True))
    clean = clean.astype(np.uint8)
    mask = missing_pixels(clean.shape)
    damaged = np.where(mask > 0, 0, clean).astype(np.uint8)
    return [
        (clean, {"name": "camera_clean", "visible": False}, "image"),
        (damaged, {"name": "camera_damaged"}, "image"),
        (mask, {"name": "camera_missing", "opacity": 0.4}, "labels"),
    ]


def prior_samples(name: str, n: int = 16, seed: int = 0) -> list[LayerData]:
    """``n`` samples of a bundled GAN prior as one stack layer ``(n, S, S)`` or ``(n, S, S, 3)``
    float32 in ``[0, 1]``; scroll the first axis to browse them."""
    from ..engines.prior import load_prior, sample_prior
    from ..models import card

    x = sample_prior(load_prior(name), n, seed=seed)
    meta = {"prior": name, "seed": seed, "model_card": card(name).get("summary", "")}
    kw = {"name": f"{name}_prior_samples", "metadata": meta, "contrast_limits": [0.0, 1.0]}
    if x.ndim == 4:
        kw["rgb"] = True
    return [(x, kw, "image")]


def albedo_prior_samples() -> list[LayerData]:
    """16 samples of the bundled ``albedo`` prior (colour, 64×64)."""
    return prior_samples("albedo")


def shading_prior_samples() -> list[LayerData]:
    """16 samples of the bundled ``shading`` prior (grey, 64×64)."""
    return prior_samples("shading")


def nuclei_prior_samples() -> list[LayerData]:
    """16 samples of the bundled ``nuclei`` prior (fluorescence, 128×128)."""
    return prior_samples("nuclei")


def illumination_prior_samples() -> list[LayerData]:
    """16 samples of the bundled ``illumination`` prior (uneven-illumination fields, 64×64)."""
    return prior_samples("illumination")
