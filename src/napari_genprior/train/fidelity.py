"""How close are a generator's samples to real data? Sliced Wasserstein distance (SWD) of
Laplacian-pyramid patches (Karras et al., 2018), with a trivial baseline so the number means
something.

For every pyramid level of at least ``min_size`` pixels, 7×7 patches (all channels) are drawn
at random positions from each image. Both patch sets are normalised with the *reference* set's
per-channel mean and std (so differences in brightness and contrast count too), projected on
random unit directions, sorted, and compared: the SWD of a level is the mean absolute difference
of the sorted projections, reported ×1000. Smaller is closer; two independent draws of the same
data give the noise floor.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.transform import pyramid_laplacian

__all__ = ["blurred_noise", "laplacian_patches", "layout_correlation", "sliced_wasserstein", "swd"]


def laplacian_patches(
    images: np.ndarray,
    patches_per_image: int = 64,
    patch: int = 7,
    min_size: int = 16,
    seed: int = 0,
) -> list[np.ndarray]:
    """Patch descriptors per Laplacian-pyramid level, finest first.

    ``images``: ``(N, H, W)`` or ``(N, H, W, C)`` float in ``[0, 1]``. Returns one array per level
    with side ≥ ``min_size``, each ``(N·patches_per_image, C·patch²)`` float32.
    """
    images = np.asarray(images, np.float32)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4:
        raise ValueError(f"images must be (N, H, W) or (N, H, W, C), not {images.shape}")
    n, h, w, c = images.shape
    levels = 0
    while min(h, w) // 2**levels >= min_size:
        levels += 1
    if levels == 0:
        raise ValueError(f"images of {h}×{w} are smaller than min_size={min_size}")
    rng = np.random.default_rng(seed)
    out: list[list[np.ndarray]] = [[] for _ in range(levels)]
    for img in images:
        pyr = pyramid_laplacian(img, max_layer=levels - 1, downscale=2, channel_axis=-1)
        for lev, band in enumerate(pyr):
            bh, bw = band.shape[:2]
            ys = rng.integers(0, bh - patch + 1, patches_per_image)
            xs = rng.integers(0, bw - patch + 1, patches_per_image)
            idx_y = ys[:, None, None] + np.arange(patch)[None, :, None]
            idx_x = xs[:, None, None] + np.arange(patch)[None, None, :]
            p = band[idx_y, idx_x]  # (P, patch, patch, C)
            out[lev].append(p.transpose(0, 3, 1, 2).reshape(patches_per_image, -1))
    return [np.concatenate(o).astype(np.float32) for o in out]


def sliced_wasserstein(
    a: np.ndarray, b: np.ndarray, directions: int = 256, repeats: int = 4, seed: int = 0
) -> float:
    """SWD between two descriptor sets ``(M, D)`` and ``(M', D)`` (equal sizes are best; the larger
    is subsampled to the smaller): mean |sorted projection difference| over random unit directions."""
    m = min(len(a), len(b))
    rng = np.random.default_rng(seed)
    a = a[rng.permutation(len(a))[:m]]
    b = b[rng.permutation(len(b))[:m]]
    dists = []
    for _ in range(repeats):
        d = rng.standard_normal((a.shape[1], directions)).astype(np.float32)
        d /= np.linalg.norm(d, axis=0, keepdims=True)
        pa = np.sort(a @ d, axis=0)
        pb = np.sort(b @ d, axis=0)
        dists.append(float(np.abs(pa - pb).mean()))
    return float(np.mean(dists))


def swd(reference: np.ndarray, candidate: np.ndarray, seed: int = 0, **kw) -> dict[str, object]:
    """SWD ×1000 of ``candidate`` images against ``reference`` images, both ``(N, H, W[, C])`` in
    ``[0, 1]``: ``{"levels": [finest … coarsest], "mean": float}``."""
    reference = np.asarray(reference, np.float32)
    ref = laplacian_patches(reference, seed=seed, **kw)
    cand = laplacian_patches(candidate, seed=seed + 1, **kw)
    chans = 1 if reference.ndim == 3 else reference.shape[-1]
    levels = []
    for r, q in zip(ref, cand, strict=True):
        per = r.reshape(len(r), chans, -1)  # per channel over all patch positions
        mu = np.repeat(per.mean(axis=(0, 2)), per.shape[2])[None]
        sd = np.repeat(per.std(axis=(0, 2)), per.shape[2])[None] + 1e-8
        levels.append(1000 * sliced_wasserstein((r - mu) / sd, (q - mu) / sd, seed=seed))
    return {"levels": [round(v, 2) for v in levels], "mean": round(float(np.mean(levels)), 2)}


def layout_correlation(images: np.ndarray, margin: int = 0) -> float:
    """Mean pairwise correlation of the images' edge maps (gradient magnitude of the channel mean).

    ``images``: ``(N, H, W)`` or ``(N, H, W, C)``, N ≥ 2. About 0 when the images' layouts are
    independent (as for real data); near 1 when every image puts its edges in the same places —
    the layout collapse a patch statistic such as SWD does not see. ``margin`` pixels at each
    border are left out (so a frame artefact shared by all samples does not dominate).
    """
    x = np.asarray(images, np.float64)
    if x.ndim == 4:
        x = x.mean(-1)
    if x.ndim != 3 or len(x) < 2:
        raise ValueError(f"need at least two images (N, H, W[, C]), not {x.shape}")
    if margin > 0:
        if 2 * margin + 2 > min(x.shape[1:]):
            raise ValueError(f"margin {margin} leaves too little of {x.shape[1]}×{x.shape[2]} images")
        x = x[:, margin:-margin, margin:-margin]
    gy, gx = np.gradient(x, axis=(1, 2))
    e = np.hypot(gy, gx).reshape(len(x), -1)
    e = (e - e.mean(1, keepdims=True)) / (e.std(1, keepdims=True) + 1e-12)
    c = e @ e.T / e.shape[1]
    n = len(c)
    return float((c.sum() - np.trace(c)) / (n * (n - 1)))


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
