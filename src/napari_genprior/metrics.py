"""Every image metric of the project, computed in one place (engines, training, CLI, benchmarks).

- :func:`psnr`, :func:`ssim`: scikit-image's, for one image pair; :func:`image_metrics`: both for a
  result against a reference with the CLI's data-range rule; :func:`psnr_from_mse`.
- :func:`si_mse`, :func:`lmse`: scale-invariant MSE and local scale-invariant MSE (Grosse et al.
  2009), the usual intrinsic-image errors.
- :func:`swd`: how close a generator's samples are to real data: sliced Wasserstein distance (SWD)
  of Laplacian-pyramid patches (Karras et al., 2018). For every pyramid level of at least
  ``min_size`` pixels, 7×7 patches (all channels) are drawn at random positions from each image.
  Both patch sets are normalised with the *reference* set's per-channel mean and std (so
  differences in brightness and contrast count too), projected on random unit directions, sorted,
  and compared: the SWD of a level is the mean absolute difference of the sorted projections,
  reported ×1000. Smaller is closer; two independent draws of the same data give the noise floor.
  :func:`layout_correlation`: whether samples repeat one layout.
"""

from __future__ import annotations

import math

import numpy as np
from skimage.transform import pyramid_laplacian

from .errors import InputError

__all__ = [
    "image_metrics",
    "laplacian_patches",
    "layout_correlation",
    "lmse",
    "psnr",
    "psnr_from_mse",
    "si_mse",
    "sliced_wasserstein",
    "ssim",
    "swd",
]


def psnr(reference: np.ndarray, estimate: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR (dB) of ``estimate`` against ``reference`` (same shape), scikit-image's."""
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(reference, estimate, data_range=data_range))


def ssim(
    reference: np.ndarray, estimate: np.ndarray, data_range: float = 1.0, channel_axis: int | None = None
) -> float:
    """SSIM of ``estimate`` against ``reference`` (same shape), scikit-image's."""
    from skimage.metrics import structural_similarity

    return float(structural_similarity(reference, estimate, data_range=data_range, channel_axis=channel_axis))


def psnr_from_mse(mse: float, peak: float = 1.0) -> float:
    """PSNR (dB) of a mean squared error for signals of peak-to-peak range ``peak``."""
    return 10.0 * math.log10(peak * peak / max(mse, 1e-12))


def image_metrics(result: np.ndarray, reference: np.ndarray, channel_axis: int | None) -> dict[str, float]:
    """PSNR (dB) and SSIM of ``result`` against ``reference`` (same shape), scikit-image metrics.

    The data range is the dtype's for uint8, else the reference's max − min.
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    if result.shape != reference.shape:
        raise InputError(f"reference shape {reference.shape} does not match the result {result.shape}")
    ref = reference.astype(np.float64)
    out = result.astype(np.float64)
    rng = 255.0 if reference.dtype == np.uint8 else float(ref.max() - ref.min()) or 1.0
    spatial = [s for i, s in enumerate(ref.shape) if channel_axis is None or i != channel_axis % ref.ndim]
    win = min(7, min(spatial) - (1 - min(spatial) % 2))
    ssim = structural_similarity(ref, out, data_range=rng, channel_axis=channel_axis, win_size=max(win, 3))
    return {"psnr": float(peak_signal_noise_ratio(ref, out, data_range=rng)), "ssim": float(ssim)}


def si_mse(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Scale-invariant MSE: min over α of mean((α·estimate − truth)²). Arrays of one shape."""
    e = np.asarray(estimate, np.float64).ravel()
    t = np.asarray(truth, np.float64).ravel()
    den = float(e @ e)
    alpha = float(e @ t) / den if den > 0 else 0.0
    return float(np.mean((alpha * e - t) ** 2))


def lmse(estimate: np.ndarray, truth: np.ndarray, window: int | None = None) -> float:
    """Local scale-invariant MSE (Grosse et al. 2009): the scale-invariant squared error summed
    over overlapping windows (side ``window``, default 20/256 of the image side, at least 8;
    stride half of it), divided by the same sum for an all-zero estimate. ``(H, W[, C])``."""
    e = np.asarray(estimate, np.float64)
    t = np.asarray(truth, np.float64)
    h, w = t.shape[:2]
    k = window or max(8, round(20 * max(h, w) / 256))
    step = max(1, k // 2)
    num = den = 0.0
    for y in range(0, max(1, h - k + 1), step):
        for x in range(0, max(1, w - k + 1), step):
            ew, tw = e[y : y + k, x : x + k].ravel(), t[y : y + k, x : x + k].ravel()
            d = float(ew @ ew)
            alpha = float(ew @ tw) / d if d > 0 else 0.0
            num += float(np.sum((alpha * ew - tw) ** 2))
            den += float(tw @ tw)
    return num / den if den > 0 else 0.0


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


def standardise(images: np.ndarray) -> np.ndarray:
    """Each image ``(N, H, W[, C])`` to mean 0.5 and standard deviation 0.15 (clipped to [0, 1]):
    what is left is its texture and layout, not its brightness or contrast."""
    x = np.asarray(images, np.float32)
    axes = tuple(range(1, x.ndim))
    m, s = x.mean(axes, keepdims=True), x.std(axes, keepdims=True) + 1e-6
    return np.clip((x - m) / s * 0.15 + 0.5, 0.0, 1.0)


def swd(
    reference: np.ndarray, candidate: np.ndarray, seed: int = 0, standardised: bool = False, **kw
) -> dict[str, object]:
    """SWD ×1000 of ``candidate`` images against ``reference`` images, both ``(N, H, W[, C])`` in
    ``[0, 1]``: ``{"levels": [finest … coarsest], "mean": float}``. ``standardised``: each image
    through :func:`standardise` first, so that brightness and contrast, which differ between
    acquisitions (and between a z-stack's planes), do not count."""
    if standardised:
        reference, candidate = standardise(reference), standardise(candidate)
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
