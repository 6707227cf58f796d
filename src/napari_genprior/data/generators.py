"""Seeded, offline generators of synthetic training/evaluation images for the generative priors.

Domains: ``albedo`` (colour material regions), ``shading`` (Lambertian shading of smooth surfaces),
``scene`` (albedo × shading, with the ground-truth pair), ``nuclei`` (fluorescence nuclei) and
``illumination`` (smooth uneven-illumination fields). Every sample is a pure function of its seed.
Seeds from :data:`EVAL_SEED_START` upward are reserved for evaluation and never used in training.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage as ndi

from .synthetic import fluorescence

__all__ = ["DOMAINS", "EVAL_SEED_START", "albedo", "generate", "illumination", "nuclei", "scene", "shading"]

EVAL_SEED_START = 1_000_000


def _smooth_noise(rng: np.random.Generator, size: int, sigma: float) -> np.ndarray:
    """Zero-mean, unit-std smooth noise ``(size, size)``; wraps around for seamless texture."""
    n = ndi.gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap")
    return (n - n.mean()) / (n.std() + 1e-12)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return np.array([(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i])


def voronoi_labels(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """A warped Voronoi partition of a ``size``² square into ``n`` regions: ``(size, size)`` int labels.

    Draws the ``n`` centres, then two smooth-noise warps, from ``rng`` (in that order)."""
    pts = rng.uniform(0, size, (n, 2))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    # Warp the coordinates a little so boundaries are not perfectly straight.
    warp = size / 16
    wy = yy + warp * _smooth_noise(rng, size, size / 8)
    wx = xx + warp * _smooth_noise(rng, size, size / 8)
    d = (wy[..., None] - pts[:, 0]) ** 2 + (wx[..., None] - pts[:, 1]) ** 2
    return d.argmin(axis=-1)


def albedo(size: int = 64, seed: int = 0) -> np.ndarray:
    """Colour material regions: ``(size, size, 3)`` float32 in ``[0, 1]``.

    A Voronoi partition into 3–9 regions, each a random colour; about half the regions carry a
    texture (smooth noise or stripes) that modulates the colour.
    """
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 10))
    label = voronoi_labels(rng, size, n)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    out = np.zeros((size, size, 3))
    for k in range(n):
        colour = _hsv_to_rgb(rng.uniform(), rng.uniform(0.2, 0.9), rng.uniform(0.3, 0.95))
        region = label == k
        kind = rng.integers(3)
        if kind == 0:
            mod = np.ones((size, size))
        elif kind == 1:
            mod = 1 + 0.15 * _smooth_noise(rng, size, rng.uniform(0.8, 3))
        else:
            angle, period = rng.uniform(0, np.pi), rng.uniform(size / 12, size / 5)
            mod = 1 + 0.12 * np.sin(2 * np.pi * (yy * np.sin(angle) + xx * np.cos(angle)) / period)
        out[region] = colour * mod[region, None]
    return np.clip(out, 0, 1).astype(np.float32)


def shading(size: int = 64, seed: int = 0) -> np.ndarray:
    """Lambertian shading of a random smooth surface: ``(size, size)`` float32 in ``[0, 1]``.

    Height field = smooth noise plus a few bumps; light from a random direction (elevation
    25°–75°) plus a random ambient term 0.05–0.3.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    h = 0.08 * _smooth_noise(rng, size, size / rng.uniform(6, 12))
    for _ in range(int(rng.integers(1, 5))):
        cy, cx, r = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
        h += rng.uniform(-0.3, 0.5) * r * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r**2))
    gy, gx = np.gradient(h * size, 1.0)
    normal = np.stack([-gx, -gy, np.ones_like(h)], axis=-1)
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    az, el = rng.uniform(0, 2 * np.pi), np.deg2rad(rng.uniform(25, 75))
    light = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    ambient = rng.uniform(0.05, 0.3)
    s = ambient + (1 - ambient) * np.clip(normal @ light, 0, None)
    return np.clip(s, 0, 1).astype(np.float32)


def scene(size: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """``{"image": albedo·shading (size, size, 3), "albedo": …, "shading": (size, size)}``, float32.

    The albedo uses ``seed`` and the shading ``seed + 500_000`` so the two are independent.
    """
    a = albedo(size, seed)
    s = shading(size, seed + 500_000)
    return {"image": (a * s[..., None]).astype(np.float32), "albedo": a, "shading": s}


def nuclei(size: int = 128, seed: int = 0) -> np.ndarray:
    """Fluorescence nuclei with texture and PSF blur, varied density: ``(size, size)`` float32 in ``[0, 1]``."""
    rng = np.random.default_rng(seed)
    density = rng.uniform(4, 24) * (size / 128) ** 2
    return fluorescence(
        (size, size),
        seed=seed,
        n_nuclei=max(1, round(density)),
        n_filaments=0,
        psf_sigma=rng.uniform(1.0, 2.0),
    )


def illumination(size: int = 64, seed: int = 0) -> np.ndarray:
    """A smooth uneven-illumination (flat-field) field: ``(size, size)`` float32, max 1, min ≥ 0.2.

    Radial vignetting around a random centre times a low-frequency random modulation.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    cy, cx = rng.uniform(0.25, 0.75, 2)
    r2 = (yy - cy) ** 2 + (xx - cx) ** 2
    vignette = np.exp(-r2 / (2 * rng.uniform(0.25, 0.7) ** 2))
    mod = 1 + 0.15 * _smooth_noise(rng, size, size / 4)
    f = vignette * mod
    f = f / f.max()
    lo = rng.uniform(0.2, 0.6)
    return (lo + (1 - lo) * (f - f.min()) / (f.max() - f.min() + 1e-12)).astype(np.float32)


DOMAINS: dict[str, Callable[..., np.ndarray | dict[str, np.ndarray]]] = {
    "albedo": albedo,
    "shading": shading,
    "scene": scene,
    "nuclei": nuclei,
    "illumination": illumination,
}


def generate(domain: str, n: int, size: int, seed: int = 0) -> list[np.ndarray | dict[str, np.ndarray]]:
    """``n`` samples of ``domain``; sample ``i`` uses seed ``seed + i``."""
    if domain not in DOMAINS:
        raise ValueError(f"unknown domain {domain!r}: choose one of {', '.join(DOMAINS)}")
    return [DOMAINS[domain](size, seed + i) for i in range(n)]
