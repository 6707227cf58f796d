"""JoIN's result: the solution brought to full resolution (smooth fields resized, the other
components recomputed from the input) and the output layers with their metadata."""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ... import __version__
from ..base import OutputLayer, Result, resolve_precision
from ..tiling import TileBlender
from .params import PRECISION_NEEDS, UNEXPLAINED_K
from .plan import _resize
from .stage1 import JointSolver

#: napari display options of each output layer, by output name (an output not named here gets
#: none); ``"data"`` as the contrast limits: the layer's own range
DISPLAY: dict[str, dict[str, Any]] = {
    "albedo": {"contrast_limits": [0.0, 1.0]},
    "shading": {"colormap": "gray", "contrast_limits": [0.0, 1.0], "rgb": False},
    "flatfield": {"colormap": "inferno", "contrast_limits": "data", "rgb": False},
    "darkfield": {"colormap": "gray", "rgb": False},
}


def unexplained_mask(
    residual: np.ndarray, saturated: np.ndarray | None = None, fitted: np.ndarray | None = None
) -> np.ndarray:
    """Labels ``(…, H, W)`` uint8: 1 where ``|residual|`` (channels last or none) exceeds
    :data:`UNEXPLAINED_K` robust standard deviations (1.4826 · MAD) of the residual, 2 where the
    input is saturated (``saturated``, same spatial shape), 3 outside ``fitted`` (pixels of tiles
    that were not solved: a shared field solved on other tiles), 0 elsewhere."""
    r = np.abs(residual)
    ref = residual if fitted is None or not fitted.any() else residual[fitted]
    med = np.median(ref)
    mad = 1.4826 * np.median(np.abs(ref - med))
    thr = UNEXPLAINED_K * max(mad, 1e-6 * (float(np.abs(residual).max()) + 1e-12))
    big = (np.abs(residual - med) > thr) & (r > 0)
    mask = big.astype(np.uint8)
    if fitted is not None:
        mask[~fitted] = 3
    if saturated is not None:
        mask[saturated] = 2
    return mask


def _assemble(solver: JointSolver, recon: torch.Tensor, raw: dict[str, torch.Tensor]) -> Result:
    """Bring the solution of ``solver`` to full resolution and build the output layers.
    ``recon``: the final reconstruction of the tiles ``(T, C, P, P)``; ``raw``: the generator
    outputs it was decoded from ``{slot: (count, c, S, S)}`` in [-1, 1]."""
    prob, p, model, slots, extra = solver.prob, solver.p, solver.model, solver.slots, solver.extra
    arr, layout, tiles, groups, top, lin_full = (
        prob.arr,
        prob.layout,
        prob.tiles,
        prob.groups,
        prob.top,
        prob.lin_full,
    )
    n, c, hy, hx = lin_full.shape
    wh, ww = prob.work_hw
    n_groups = max(groups) + 1
    # smooth fields straight from the generators (64² → full size), one per group
    smooth_full: dict[str, np.ndarray] = {}
    for k, s in slots.items():
        if s.comp.smooth:
            comp = model.component(s.comp, raw[k], c)
            # bicubic resizing overshoots a little: keep the field within the prior's [floor, 1]
            smooth_full[k] = _resize(comp, (hy, hx), smooth=True).clamp(s.comp.floor, 1.0).cpu().numpy()
    # reconstruction at working scale, blended over the solved tiles, then at full size; where no
    # tile was solved (a shared field needs only some) it is the input itself, marked "not fitted"
    rec_planes, fit_planes = [], []
    work_np = _resize(lin_full, (wh, ww)).numpy()
    for i in range(n):
        blend = TileBlender((c, wh, ww))
        for j, (pi, t) in enumerate(tiles):
            if pi == i:
                blend.add(t, recon[j].float().cpu().numpy())
        fit = blend.wacc > 0
        rec_planes.append(np.where(fit, blend.acc / np.maximum(blend.wacc, 1e-12), work_np[i]))
        fit_planes.append(fit)
    rec_full = _resize(torch.from_numpy(np.stack(rec_planes)), (hy, hx)).numpy()
    fitted = (
        F.interpolate(torch.from_numpy(np.stack(fit_planes)[:, None].astype(np.float32)), (hy, hx)).numpy()[
            :, 0
        ]
        > 0.5
    )
    rec_full = np.where(fitted[:, None], rec_full, lin_full.numpy())
    outs: dict[str, list[np.ndarray]] = {name: [] for name in model.outputs}
    lin = lin_full.numpy()
    extra0 = {k: v[0] for k, v in extra.items()}  # the one restart left
    for i in range(n):
        g_ = groups[i]
        sm = {k: v[g_] for k, v in smooth_full.items()}
        res = model.full_resolution(lin[i], sm, model.full_resolution_extra(extra0, g_, (hy, hx)))
        for name, v in res.items():
            outs[name].append(v)
    # one field for the whole stack: its outputs per group come out once, as 2-D layers
    shared = model.shared_across_planes and n_groups == 1 and n > 1
    layers: list[OutputLayer] = []
    for o in model.output_layers:
        planes_ = outs[o.name][:1] if shared and o.per_group else outs[o.name]
        kwargs = copy.deepcopy(DISPLAY.get(o.name, {}))
        if kwargs.get("contrast_limits") == "data":
            lo_, hi_ = float(np.min(planes_)), float(np.max(planes_))
            kwargs["contrast_limits"] = [lo_, max(hi_, lo_ + 1e-3)]
        a = np.stack(planes_).astype(np.float32)  # (N, C', H, W)
        if o.intensity:
            a = a * np.float32(top)
        if o.grey or a.shape[1] == 1:
            a = a[:, :1]
            out = a.reshape(*layout.lead_shape, hy, hx) if a.shape[0] == n else a.reshape(hy, hx)
        else:
            out = layout.from_planes(a)
        layers.append(OutputLayer(np.ascontiguousarray(out, np.float32), o.name, "image", 1.0, kwargs))
    rec = model.delinearise(rec_full)
    rec_img = layout.from_planes((rec * top).astype(np.float32))
    residual = (np.asarray(arr, np.float32) - rec_img).astype(np.float32)
    layers.append(OutputLayer(rec_img.astype(np.float32), "reconstruction", "image", 1.0, {}))
    layers.append(
        OutputLayer(residual, "residual", "image", 1.0, {"colormap": "twilight_shifted", "rgb": False})
    )
    res_planes = layout.to_planes(residual)  # (N, C, H, W)
    res_mag = np.abs(res_planes).max(1).reshape(*layout.lead_shape, hy, hx)
    sat = None
    if arr.dtype.kind == "u":
        top_v = np.iinfo(arr.dtype).max
        sat = (layout.to_planes(np.asarray(arr)) >= top_v).any(1).reshape(*layout.lead_shape, hy, hx)
    fitted_img = fitted.reshape(*layout.lead_shape, hy, hx)
    layers.append(
        OutputLayer(
            unexplained_mask(res_mag, sat, None if fitted.all() else fitted_img),
            "unexplained",
            "labels",
            1.0,
            {},
        )
    )
    meta = {
        "engine": "join",
        "napari_genprior_version": __version__,
        **{k: v for k, v in dataclasses.asdict(p).items()},
        "priors_used": {k: s.label for k, s in slots.items()},
        "device": str(prob.dev),
        "precision_used": resolve_precision(p.precision, prob.dev, needs=PRECISION_NEEDS),
        "stage2_smooth_used": p.stage2_smooth_of(model) if p.finetune_steps > 0 else None,
        "in_domain_metric_used": p.metric_of(model),
        "channel_axis": layout.channel_axis,
        "work_size": [wh, ww],
        "tiles": len(tiles),
        "fitted_fraction": round(float(fitted.mean()), 4),
        "tile_size": prob.plan[0].ys.stop - prob.plan[0].ys.start,
        "shared_field": bool(shared or (model.shared_across_planes and n == 1)),
        "losses": solver.losses,
        "intensity_scale": top,
        "wall_time_s": round(time.perf_counter() - prob.t0, 3),
    }
    meta.update(model.extra_metadata(extra0))
    if prob.warnings:
        meta["warnings"] = prob.warnings
    return Result(layers, meta)
