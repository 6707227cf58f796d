"""Flat-field stacks by their statistics (``stack_method``): the closed-form estimate of
:mod:`napari_genprior.engines.flatstack`, returned as JoIN's outputs. On real specimens under
synthetic fields it measured better than the joint inversion of the GAN priors, at a thousandth of
the time (docs/join.md); ``stack_method='priors'`` keeps the inversion."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ... import __version__
from ...physics.composition import FlatField, _detail_correlation
from ..base import EngineRun, OutputLayer, Progress, Result, check_cancel
from ..flatstack import SPARSE_OCCUPANCY, occupancy, stack_estimate
from .assemble import DISPLAY
from .plan import Setup

__all__ = ["uses_statistics", "execute_statistics"]


def _shared_content(planes: torch.Tensor) -> float:
    """Mean correlation of the planes' fine detail (see ``FlatField.SHARED_CONTENT``)."""
    k = FlatField.STACK_GRID
    small = F.adaptive_avg_pool2d(planes[:, None].float(), k)
    return _detail_correlation(small - FlatField()._blur(small))


def uses_statistics(setup: Setup) -> tuple[bool, str]:
    """Whether ``setup`` (a checked run) is solved by the stack's statistics, and a note for the
    user when its planes show the same content (a z-stack or time-lapse of one field of view),
    whose statistics keep some of the specimen. The priors measured worse on such stacks too, so
    ``auto`` still uses the statistics there (docs/join.md)."""
    p, layout = setup.p, setup.layout
    if p.forward != "flatfield" or p.per_plane or layout.n_planes < 2 or p.stack_method == "priors":
        return False, ""
    planes = torch.from_numpy(layout.to_planes(np.asarray(setup.arr, np.float32))[:, 0])
    occ = occupancy(planes)
    if occ < SPARSE_OCCUPANCY:
        return True, (
            f"the planes are mostly background (sparse cells: {occ:.0%} of the pixels stand out): the field "
            "comes from the planes' background (each pixel's median), which measured only a little better "
            "than no correction there, BaSiCPy better (docs/join.md): check the field, or use BaSiCPy for "
            "such tile scans"
        )
    corr = _shared_content(planes)
    if corr >= FlatField.SHARED_CONTENT:
        return True, (
            f"the planes show much the same content (detail correlation {corr:.2f}: a z-stack or time-lapse "
            "of one field of view?), so the field may keep some of the specimen: planes of different "
            "fields of view give a better field"
        )
    return True, ""


def execute_statistics(
    setup: Setup, cancel: Callable[[], bool] | None, notes: list[str] | None = None
) -> EngineRun:
    """The run: ``corrected`` ``(…, Y, X)`` = (I − D) / F, ``flatfield`` ``(Y, X)`` (mean 1) and
    ``darkfield`` ``(Y, X)`` in the input's units; metadata says whether the stack pinned the dark
    offset down."""
    t0 = time.perf_counter()
    p, layout = setup.p, setup.layout
    check_cancel(cancel)
    yield Progress(0, 1, float("nan"), message="stack statistics", loss_label="")
    planes = layout.to_planes(np.asarray(setup.arr, np.float32))[:, 0]  # (N, H, W)
    est = stack_estimate(planes, dark=p.darkfield != "none")
    warnings = list(notes or [])
    if p.darkfield != "none" and not est.dark_identified:
        warnings.append(est.note)
    if p.darkfield == "field":
        warnings.append(
            "the stack's statistics give one dark offset for the whole field of view (darkfield 'scalar')"
        )
    corrected = (planes - est.dark) / est.flatfield
    lead = layout.lead_shape
    hy, hx = layout.spatial_shape
    layers = [
        OutputLayer(corrected.reshape(*lead, hy, hx).astype(np.float32), "corrected", "image", 1.0, {}),
        OutputLayer(est.flatfield, "flatfield", "image", 1.0, _display("flatfield", est.flatfield)),
        OutputLayer(est.dark, "darkfield", "image", 1.0, _display("darkfield", est.dark)),
    ]
    meta = {
        "engine": "join",
        "napari_genprior_version": __version__,
        **dataclasses.asdict(p),
        "stack_method_used": "statistics",
        "dark_identified": est.dark_identified,
        "dark_note": est.note,
        "dark_fit": est.fit,
        "planes": int(planes.shape[0]),
        "warnings": warnings,
        "wall_time_s": round(time.perf_counter() - t0, 3),
    }
    yield Progress(1, 1, float("nan"), message="stack statistics", loss_label="")
    return Result(layers, meta)


def _display(name: str, a: np.ndarray) -> dict:
    """napari keyword arguments for output ``name``; contrast limits from the data (at least a
    small range: a constant dark-field would get none)."""
    kw = dict(DISPLAY.get(name, {}))
    if name == "darkfield" or kw.get("contrast_limits") == "data":
        lo = float(a.min())
        kw["contrast_limits"] = [lo, lo + max(1e-3, float(a.max()) - lo)]
    return kw
