"""A DIP run: input checks, the noise estimate, planes and tiles fitted one by one, the result."""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable, Generator
from typing import Any

import numpy as np
import torch

from ... import __version__
from ...imaging import Normalizer, PlaneLayout, check_image, guess_channel_axis
from ...physics.noise import anscombe, anscombe_inverse, estimate_poisson_gaussian, estimate_sigma_pca
from ..base import Cancelled, EngineRun, InputError, OutputLayer, Progress, Result, resolve_device
from ..blockmatch import blockmatch_denoise
from ..tiling import Tile, TileBlender, tile_plan
from .fit import FitContext, PlaneFit, PlaneJob, fit_plane
from .params import (
    CONVERGED_STEPS,
    DEFAULT_TILE,
    OVERRIDABLE,
    POISSON_REG_SIGMA,
    DIPParams,
    preset_iterations,
    resolve_config,
    resolve_precision,
)


def _sigma2_pca(plane: np.ndarray, fallback: tuple[float, float]) -> float:
    """Noise variance of a ``(C, H, W)`` plane by patch PCA, the mean over channels; for planes
    too small for patches, the Haar-detail estimate ``fallback`` (``(a, b)``) at the plane's mean."""
    try:
        return float(np.mean([estimate_sigma_pca(ch) ** 2 for ch in plane]))
    except ValueError:
        return fallback[0] * float(plane.mean()) + fallback[1]


def tiles_for(image: np.ndarray, params: DIPParams | dict[str, Any] | None = None) -> int:
    """How many tiles each plane of ``image`` will be fitted in with ``params`` (1: no tiling)."""
    p = DIPParams.from_any(params)
    shape = np.shape(image)
    ch = guess_channel_axis(shape) if p.channel_axis == "auto" else p.channel_axis
    h, w = PlaneLayout(shape, ch).spatial_shape
    f = p.scale if p.task == "sr" else 1
    tile = DEFAULT_TILE if p.tile_size is None else int(p.tile_size)
    return len(tile_plan(h, w, f, tile, p.tile_overlap))


def _check_mask(mask: np.ndarray | None, layout: PlaneLayout, image_shape: tuple[int, ...]) -> np.ndarray:
    """Missing-pixel mask → ``(N, Y, X)`` bool (non-zero = missing)."""
    if mask is None:
        raise InputError("the inpaint task needs a mask: non-zero pixels mark what is missing")
    mk = np.asarray(mask)
    spatial = layout.spatial_shape
    full = (*layout.lead_shape, *spatial)
    if mk.shape == spatial:
        mk = np.broadcast_to(mk, full)
    elif mk.shape != full:
        want = f"{spatial} (Y, X)" + (f", or {full} (one mask per plane)" if full != spatial else "")
        raise InputError(
            f"mask shape {mk.shape} does not match the image {image_shape}: give a mask of shape {want}"
        )
    if mk.dtype.kind == "f" and not np.all(np.isfinite(mk)):
        raise InputError("mask contains NaN or infinite values")
    missing = (mk != 0).reshape(-1, *spatial)
    if not missing.any():
        raise InputError("the mask marks no pixel as missing: paint the pixels to fill in (non-zero)")
    if missing.all(axis=(1, 2)).any():
        raise InputError("the mask marks every pixel of a plane as missing: nothing is left to fit")
    return missing


def run(
    image: np.ndarray,
    params: DIPParams | dict[str, Any] | None = None,
    *,
    mask: np.ndarray | None = None,
    device: str | torch.device = "auto",
    cancel: Callable[[], bool] | None = None,
) -> EngineRun:
    """Run DIP on ``image``; a generator of :class:`Progress` that returns a :class:`Result`.

    ``image``: 2-D ``(Y, X)``, RGB/RGBA ``(Y, X, 3|4)``, multichannel (``channel_axis`` set) and
    up to two leading axes (T, Z) processed plane by plane; uint8, uint16 or float, any range.
    ``mask`` (inpaint): ``(Y, X)`` or matching the image without its channel axis; non-zero =
    missing. Output layers have the input's dtype and range; for ``sr`` Y and X grow by the scale.
    Bad input raises :class:`InputError` at once, before any work starts.
    """
    p = DIPParams.from_any(params)
    p.validate()
    arr = check_image(image)
    ch = guess_channel_axis(arr.shape) if p.channel_axis == "auto" else p.channel_axis
    layout = PlaneLayout(arr.shape, ch)
    missing = _check_mask(mask, layout, arr.shape) if p.task == "inpaint" else None
    dev = resolve_device(device)  # a bad device is refused whatever the method
    if p.resolved_method == "filter":
        return _execute_filter(arr, p, layout, cancel)
    cfg = resolve_config(p)
    cfg["precision"] = resolve_precision(cfg["precision"], dev)
    seed = p.seed if p.seed is not None else random.SystemRandom().randrange(2**31)
    return _execute(arr, p, layout, missing, dev, cfg, seed, cancel)


def _noise_settings(
    planes: np.ndarray, p: DIPParams, cfg: dict[str, Any]
) -> tuple[list[tuple[float, float] | None], list[tuple[float, float] | None], list[tuple[float, float]]]:
    """Per plane of ``planes`` ``(N, C, H, W)`` in ``[0, 1]``: the Poisson–Gaussian ``(a, b)`` of the
    data term (``None``: Gaussian loss), the variance ``(a, b)`` the residual is whitened with
    (``None``: not whitened), and the ``(a, b)`` recorded in the metadata. Sets the denoising
    input perturbation in ``cfg`` from the noise level where the preset leaves it open."""
    noise_est: list[tuple[float, float]] = []
    if p.task == "denoise" and (
        cfg["reg_noise"] is None or p.noise_model == "poisson-gaussian" or "auto_whiteness" in cfg
    ):
        for plane in planes:
            ab = [estimate_poisson_gaussian(ch_) for ch_ in plane]
            noise_est.append((float(np.mean([a for a, _ in ab])), float(np.mean([b for _, b in ab]))))
    if cfg["reg_noise"] is None:
        sigma = math.sqrt(np.median([a * float(planes.mean()) + b for a, b in noise_est]))
        low, high = cfg["denoise_reg"]
        if "poisson_reg" in cfg:  # follows the noise level, at most poisson_reg (fast, photon counts)
            cap = cfg["poisson_reg"]
            cfg["reg_noise"] = min(cap, max(low, cap * sigma / POISSON_REG_SIGMA))
        else:  # paper: 1/30 at σ = 25/255, 1/20 at σ = 50/255
            cfg["reg_noise"] = high if sigma > 37.5 / 255 else low
        cfg["noise_sigma_estimate"] = round(sigma, 5)
    n = len(planes)
    if p.task == "denoise" and p.noise_model == "poisson-gaussian":
        # the user's values where given, else the estimates
        noise_ab = [
            (p.noise_a if p.noise_a is not None else a, p.noise_b if p.noise_b is not None else b)
            for a, b in noise_est
        ]
        data = [(a, max(b, 1e-6)) for a, b in noise_ab]
        return data, data, noise_ab
    # Gaussian noise: the variance the residual is whitened with (progress, automatic stop) by
    # patch PCA, which fine texture inflates less than the Haar detail behind ``noise_est``.
    white = [(0.0, _sigma2_pca(plane, ab)) for plane, ab in zip(planes, noise_est)]
    return [None] * n, white if white else [None] * n, []


def _filter_plane(
    plane: np.ndarray, p: DIPParams, cancel: Callable[[], bool] | None
) -> tuple[np.ndarray, dict[str, float]]:
    """Denoise one ``(C, H, W)`` plane in ``[0, 1]`` with the block-matching filter; returns the
    estimate (same shape, ``[0, 1]``) and the noise it assumed (normalised units).

    Gaussian: σ by patch PCA (the estimate BM3D-estimated gets in benchmarks/denoise_peers.py).
    Poisson–Gaussian: the variance ``a·x + b`` (the user's values, else the Haar estimate) is made
    uniform by the generalised Anscombe transform, filtered at σ = 1 and transformed back."""
    ab = [estimate_poisson_gaussian(ch) for ch in plane]
    fallback = (float(np.mean([a for a, _ in ab])), float(np.mean([b for _, b in ab])))
    x = torch.from_numpy(np.ascontiguousarray(plane, dtype=np.float32))
    if p.noise_model == "poisson-gaussian":
        a = p.noise_a if p.noise_a is not None else fallback[0]
        b = p.noise_b if p.noise_b is not None else fallback[1]
        if a > 0:
            z = blockmatch_denoise(anscombe(x, a, b), 1.0, cancel=cancel)
            return anscombe_inverse(z, a, b).clamp(0.0, 1.0).numpy(), {"a": a, "b": b}
        sigma = math.sqrt(max(b, 0.0))  # no signal-dependent part: plain Gaussian
    else:
        sigma = math.sqrt(_sigma2_pca(plane, fallback))
    out = blockmatch_denoise(x, sigma, cancel=cancel)
    return out.clamp(0.0, 1.0).numpy(), {"sigma": sigma}


def _execute_filter(
    arr: np.ndarray, p: DIPParams, layout: PlaneLayout, cancel: Callable[[], bool] | None
) -> EngineRun:
    """Denoising by the block-matching filter, plane by plane: one progress event per plane."""
    norm = Normalizer.fit(arr)
    planes = layout.to_planes(norm.forward(arr))
    n = len(planes)
    t0 = time.perf_counter()
    outs, noise = [], []
    for k, plane in enumerate(planes):
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        out, level = _filter_plane(plane, p, cancel)
        outs.append(out)
        noise.append({key: round(v, 7) for key, v in level.items()})
        preview = layout.plane_view(norm.inverse(out, cast=False)) if p.preview_every else None
        yield Progress(k + 1, n, math.nan, preview, part=f"plane {k + 1}/{n}" if n > 1 else "")
    wall = time.perf_counter() - t0
    data = norm.inverse(layout.from_planes(np.stack(outs)))
    meta = {
        "engine": "dip",
        "napari_genprior_version": __version__,
        "task": "denoise",
        "method": "filter",
        "noise_model": p.noise_model,
        "noise": noise,
        "channel_axis": layout.channel_axis,
        "planes": n,
        "wall_time_s": round(wall, 3),
        "input_range": [norm.lo, norm.hi],
    }
    return Result([OutputLayer(data, "dip_denoise", "image", 1.0)], meta)


def _fit_tiled(
    plane: np.ndarray, miss: np.ndarray | None, job: PlaneJob, plan: list[Tile], ctx: FitContext
) -> Generator[Progress, None, tuple[list[PlaneFit], np.ndarray, np.ndarray | None]]:
    """Fit ``plane`` ``(C, H, W)`` in the overlapping tiles of ``plan``, blended by their ramps;
    previews show the blend so far. Returns the tiles' fits, the blend ``(C, H·f, W·f)`` and the
    blended spread ``(H·f, W·f)`` (with ``uncertainty``, else ``None``)."""
    c, h, w = plane.shape
    f = ctx.p.scale if ctx.p.task == "sr" else 1
    iters = ctx.cfg["iterations"]
    blend = TileBlender((c, h * f, w * f), f)
    spread_blend = TileBlender((1, h * f, w * f), f) if ctx.p.uncertainty else None
    base = np.repeat(np.repeat(plane, f, axis=1), f, axis=2) if f > 1 else plane
    fits = []
    for j, tl in enumerate(plan):

        def tile_view(est: np.ndarray, tl: Tile = tl) -> np.ndarray:
            return job.view(blend.preview(tl, est, base))

        tile_job = dataclasses.replace(
            job,
            y=plane[:, tl.ys, tl.xs],
            missing=None if miss is None else miss[tl.ys, tl.xs],
            step0=job.step0 + j * iters,
            view=tile_view,
            part=" · ".join(t for t in (job.part, f"tile {j + 1}/{len(plan)}") if t),
        )
        fit = yield from fit_plane(tile_job, ctx)
        fits.append(fit)
        blend.add(tl, fit.out)
        if spread_blend is not None:
            spread_blend.add(tl, fit.spread[None])
    return fits, blend.result(), None if spread_blend is None else spread_blend.result()[0]


def _execute(
    arr: np.ndarray,
    p: DIPParams,
    layout: PlaneLayout,
    missing: np.ndarray | None,
    dev: torch.device,
    cfg: dict[str, Any],
    seed: int,
    cancel: Callable[[], bool] | None,
) -> EngineRun:
    norm = Normalizer.fit(arr)
    planes = layout.to_planes(norm.forward(arr))
    n, c, h, w = planes.shape
    f = p.scale if p.task == "sr" else 1
    iters = cfg["iterations"]
    noise, noise_var, noise_ab = _noise_settings(planes, p, cfg)

    def view(plane: np.ndarray) -> np.ndarray:
        return layout.plane_view(norm.inverse(plane, cast=False))

    tile = DEFAULT_TILE if p.tile_size is None else int(p.tile_size)
    plan = tile_plan(h, w, f, tile, p.tile_overlap)
    n_tiles = len(plan)
    ctx = FitContext(p, cfg, dev, seed, iters * n * n_tiles, cancel)

    t0 = time.perf_counter()
    fits: list[PlaneFit] = []
    outs: list[np.ndarray] = []
    spreads: list[np.ndarray | None] = []
    for k in range(n):
        miss = None if missing is None else missing[k]
        job = PlaneJob(
            planes[k],
            miss,
            noise[k],
            noise_var[k],
            k * n_tiles * iters,
            view,
            f"plane {k + 1}/{n}" if n > 1 else "",
        )
        if n_tiles == 1:
            fit = yield from fit_plane(job, ctx)
            fits.append(fit)
            outs.append(fit.out)
            spreads.append(fit.spread)
        else:
            tile_fits, out, spread = yield from _fit_tiled(planes[k], miss, job, plan, ctx)
            fits += tile_fits
            outs.append(out)
            spreads.append(spread)
    wall = time.perf_counter() - t0

    data = norm.inverse(layout.from_planes(np.stack(outs)))
    if missing is not None:  # known pixels are kept exactly as they were
        data = np.where(layout.from_planes(np.repeat(missing[:, None], c, axis=1)), data, arr)
    meta = _metadata(p, cfg, seed, dev, layout, n, n_tiles, tile, wall, norm, fits)
    if noise_ab:
        meta["noise_ab"] = noise_ab
    suffix = f"dip_sr{p.scale}" if p.task == "sr" else f"dip_{p.task}"
    layers = [OutputLayer(data, suffix, "image", float(f))]
    if missing is not None:
        mk = missing.reshape(*layout.lead_shape, *layout.spatial_shape).astype(np.uint8)
        layers.append(OutputLayer(mk, "dip_mask", "labels", 1.0))
    if p.uncertainty:
        spread = np.stack(spreads).reshape(*layout.lead_shape, *spreads[0].shape)
        spread = (spread * (norm.hi - norm.lo)).astype(np.float32)  # in the input's units
        layers.append(
            OutputLayer(spread, "dip_uncertainty", "image", float(f), {"colormap": "magma", "rgb": False})
        )
    return Result(layers, meta)


def _metadata(
    p: DIPParams,
    cfg: dict[str, Any],
    seed: int,
    dev: torch.device,
    layout: PlaneLayout,
    n: int,
    n_tiles: int,
    tile: int,
    wall: float,
    norm: Normalizer,
    fits: list[PlaneFit],
) -> dict[str, Any]:
    """How the result was made: parameters, resolved config, planes and tiles, steps, warnings."""
    meta = {
        "engine": "dip",
        "napari_genprior_version": __version__,
        **{k: v for k, v in dataclasses.asdict(p).items() if k not in OVERRIDABLE},
        "method": "dip",
        "seed": seed,
        "device": str(dev),
        "config": cfg,
        "scale": p.scale if p.task == "sr" else 1,
        "channel_axis": layout.channel_axis,
        "planes": n,
        "tiles": n_tiles,
        "tile_size": tile if n_tiles > 1 else None,
        "wall_time_s": round(wall, 3),
        "input_range": [norm.lo, norm.hi],
    }
    if p.task != "sr":
        meta.pop("scale")
    if cfg["auto_stop"]:
        meta["stopped_at"] = [fit.steps for fit in fits]
        meta["chosen_step"] = [fit.chosen_step for fit in fits]
    fewest = min(fit.steps for fit in fits)
    # an automatic stop before CONVERGED_STEPS is the rule's finding (the residual is white), not a
    # run cut short
    if fewest < CONVERGED_STEPS and not cfg["auto_stop"]:
        full = preset_iterations(p.task, p.preset, p.scale)
        meta["warnings"] = [
            f"not converged: {fewest} steps are too few for the fit to reach the data; run at "
            f"least {CONVERGED_STEPS} (the {p.preset} preset runs {full}, or stops itself with 'auto')"
        ]
    if p.task == "denoise":
        meta["backtracks"] = sum(fit.backtracks for fit in fits)
    return meta
