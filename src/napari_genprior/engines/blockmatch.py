"""Collaborative block-matching denoising, in torch: the classical filter DIP's denoising is
measured against (BM3D's two stages, Dabov et al. 2007), written here from the paper.

1. *Hard thresholding.* For reference patches on a grid (every :data:`STRIDE` pixels), the
   :data:`GROUP_HARD` most similar 8×8 patches within ±:data:`SEARCH` pixels are stacked and
   transformed (2-D Haar per patch, Haar along the stack); coefficients below
   :data:`THRESHOLD` σ are zeroed, the groups transformed back and every patch averaged into the
   image, weighted by how few coefficients its group kept.
2. *Empirical Wiener.* Groups of :data:`GROUP_WIENER` patches are matched again on the first
   estimate (the *pilot*), transformed (2-D DCT per patch, Haar along the stack), and each noisy
   coefficient is scaled by ``p² / (p² + σ²)``, ``p`` the pilot's coefficient.

Colour images are matched on the luminance of an orthonormal opponent colour transform (which
keeps white noise white with the same σ) and filtered in it. Other channel counts are matched on
their mean and filtered per channel. The image is processed in bands of reference rows, so
memory stays bounded for planes of any size. Noise is white Gaussian with a known σ; for
Poisson–Gaussian data the caller stabilises the variance first
(:func:`napari_genprior.physics.noise.anscombe`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .base import Cancelled

__all__ = ["blockmatch_denoise"]

PATCH = 8
STRIDE = 3
SEARCH = 19
#: group sizes (powers of two, for the Haar transform along the group)
GROUP_HARD = 16
GROUP_WIENER = 32
#: the transforms (``haar`` or ``dct``) along a group and over each patch in the hard-thresholding
#: stage (the Wiener stage's patch transform is always the DCT); studies/denoise_filter_study.py
#: compares them on the tuning images
GROUP_TRANSFORM = "haar"
HARD_PATCH_TRANSFORM = "haar"
#: BM3D's hard threshold for its first stage, in units of σ
THRESHOLD = 2.7
#: reference rows per band: bounds the distance table and the groups in memory
BAND_REFS = 2048


def _dct_matrix(n: int) -> torch.Tensor:
    """Orthonormal DCT-II matrix ``(n, n)``: row k is the k-th basis vector."""
    k = torch.arange(n, dtype=torch.float64)
    c = torch.cos(math.pi * (2 * k[None] + 1) * k[:, None] / (2 * n))
    c[0] /= math.sqrt(2.0)
    return (c * math.sqrt(2.0 / n)).float()


def _haar_matrix(n: int) -> torch.Tensor:
    """Orthonormal Haar matrix ``(n, n)``, ``n`` a power of two: row 0 the mean, then the
    differences from the coarsest to the finest scale."""
    if n == 1:
        return torch.ones(1, 1)
    coarse = torch.kron(_haar_matrix(n // 2), torch.tensor([[1.0, 1.0]]))
    fine = torch.kron(torch.eye(n // 2), torch.tensor([[1.0, -1.0]]))
    m = torch.cat([coarse, fine])
    return m / m.norm(dim=1, keepdim=True)


def _opponent() -> torch.Tensor:
    """Orthonormal opponent colour transform ``(3, 3)``: luminance, red–blue, green–magenta."""
    m = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, -1.0], [0.5, -1.0, 0.5]], dtype=torch.float64)
    return (m / m.norm(dim=1, keepdim=True)).float()


def _reference_grid(n: int) -> torch.Tensor:
    """Patch origins every :data:`STRIDE` pixels along an axis of ``n`` patch positions, the last included."""
    pos = list(range(0, n, STRIDE))
    if pos[-1] != n - 1:
        pos.append(n - 1)
    return torch.tensor(pos)


def _match(guide: torch.Tensor, ry: torch.Tensor, rx: torch.Tensor, k: int) -> torch.Tensor:
    """For reference patch origins ``(ry[i], rx[j])`` (all pairs) in ``guide`` ``(H, W)``: the
    ``k`` most similar patches within ±SEARCH pixels, as the flat pixel indices of their top-left
    corners in ``guide``, ``(len(ry)·len(rx), k)``; the reference itself is among them."""
    h = guide.shape[0] - PATCH + 1
    r = SEARCH
    y0, y1 = int(ry.min()), int(ry.max())
    # the rows this band's searches touch, padded with NaN outside the image
    top, bottom = max(0, y0 - r), min(h, y1 + r + 1)
    sub = guide[top : bottom + PATCH - 1]
    pad = F.pad(sub[None, None], (r, r, r, r), value=float("nan"))[0, 0]
    # distances only at the band's reference rows: crop each shifted difference to them
    rows = slice(y0 - top, y1 - top + PATCH)
    ref = sub[rows]
    offs = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1)]
    yy, xx = torch.meshgrid(ry - y0, rx, indexing="ij")
    yy, xx = yy.reshape(-1), xx.reshape(-1)
    dist = torch.empty(len(yy), len(offs))
    for s in range(0, len(offs), 64):
        chunk = offs[s : s + 64]
        shifted = torch.stack(
            [
                pad[r + dy + rows.start : r + dy + rows.stop, r + dx : r + dx + guide.shape[1]]
                for dy, dx in chunk
            ]
        )
        box = F.avg_pool2d((shifted - ref).square()[:, None], PATCH, stride=1)[:, 0]
        dist[:, s : s + len(chunk)] = box[:, yy, xx].T
    dist = torch.nan_to_num(dist, nan=math.inf)
    best = dist.topk(k, dim=1, largest=False).indices
    o = torch.tensor(offs)
    gy = (yy + y0)[:, None] + o[best, 0]
    gx = xx[:, None] + o[best, 1]
    return gy * guide.shape[1] + gx


def _stage(
    y: torch.Tensor,
    guide: torch.Tensor,
    pilot: torch.Tensor | None,
    sigma: float,
    k: int,
    cancel: Callable[[], bool] | None,
) -> torch.Tensor:
    """One stage over ``y`` ``(C, H, W)``: hard thresholding (``pilot`` ``None``) or Wiener."""
    c, hh, ww = y.shape
    # a small or thin plane has fewer patches within reach of a corner reference than a group
    # holds: groups shrink to the largest power of two that every reference can fill
    reach = min(hh - PATCH + 1, SEARCH + 1) * min(ww - PATCH + 1, SEARCH + 1)
    k = 2 ** int(math.log2(min(k, reach)))
    # the 2-D transform of a flattened 8×8 patch
    m = _haar_matrix(PATCH) if pilot is None and HARD_PATCH_TRANSFORM == "haar" else _dct_matrix(PATCH)
    d2 = torch.kron(m, m)
    # along the group: Haar as in BM3D; the DCT did worse on the tuning images (the study)
    dk = _haar_matrix(k) if GROUP_TRANSFORM == "haar" else _dct_matrix(k)
    ys, xs = _reference_grid(hh - PATCH + 1), _reference_grid(ww - PATCH + 1)
    # a patch's 64 pixels as offsets from its top-left corner in the flattened image: patches are
    # gathered and scattered directly, never unfolded whole (that would be 64 copies of the image)
    inside = (torch.arange(PATCH)[:, None] * ww + torch.arange(PATCH)[None]).reshape(-1)
    flat_y = y.reshape(c, -1)
    flat_p = pilot.reshape(c, -1) if pilot is not None else None
    num = torch.zeros(c, hh * ww)
    den = torch.zeros(c, hh * ww)
    rows = max(1, BAND_REFS // len(xs))
    for b in range(0, len(ys), rows):
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        corner = _match(guide, ys[b : b + rows], xs, k)  # (N, k)
        pix = corner[..., None] + inside  # (N, k, 64)

        def spectrum(flat: torch.Tensor, pix: torch.Tensor = pix) -> torch.Tensor:
            return torch.einsum("ab,cnkb,lk->cnla", d2, flat[:, pix], dk)  # (C, N, k, 64)

        coef = spectrum(flat_y)
        if flat_p is None:
            keep = coef.abs() > THRESHOLD * sigma
            keep[..., 0, 0] = True  # each group's mean stays
            coef = coef * keep
            weight = 1.0 / keep.sum(dim=(2, 3)).float()
        else:
            p2 = spectrum(flat_p).square()
            gain = p2 / (p2 + sigma * sigma)
            coef = coef * gain
            weight = 1.0 / (gain.square().sum(dim=(2, 3)) + 1e-6)
        wk = weight[:, :, None, None]  # (C, N, 1, 1)
        patches = torch.einsum("ab,cnla,lk->cnkb", d2, coef, dk) * wk
        at = pix.reshape(-1)
        num.index_add_(1, at, patches.reshape(c, -1))
        den.index_add_(1, at, wk.expand(c, *pix.shape).reshape(c, -1))
    return (num / den.clamp_min(1e-12)).reshape(c, hh, ww)


def blockmatch_denoise(
    image: torch.Tensor, sigma: float, *, cancel: Callable[[], bool] | None = None
) -> torch.Tensor:
    """Denoise ``image`` ``(C, H, W)`` (float, any range) with white Gaussian noise of std ``sigma``
    (the image's units) by the two collaborative stages; returns ``(C, H, W)`` float32.
    Planes under 8 pixels a side, or ``sigma <= 0``, come back unchanged."""
    x = image.detach().float().cpu()
    c, hh, ww = x.shape
    if sigma <= 0 or min(hh, ww) < PATCH:
        return x.clone()
    colour = _opponent() if c == 3 else None
    if colour is not None:
        x = torch.einsum("ij,jhw->ihw", colour, x)
    guide = x[0] if colour is not None else x.mean(0)
    basic = _stage(x, guide, None, sigma, GROUP_HARD, cancel)
    guide = basic[0] if colour is not None else basic.mean(0)
    out = _stage(x, guide, basic, sigma, GROUP_WIENER, cancel)
    if colour is not None:
        out = torch.einsum("ij,jhw->ihw", colour.T, out)  # orthonormal: the inverse is the transpose
    return out
