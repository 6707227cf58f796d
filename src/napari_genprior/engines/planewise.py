"""Run an engine over a lazy array (dask, zarr, a pyramid level) one plane at a time.

The engines take numpy arrays. A lazy array with leading axes (T, Z, …) is never loaded whole:
each plane is read, restored on its own and written into the output, so memory holds one input
plane and the outputs. Planes of such a stack are independent runs (their own value range and
noise estimate), except where a caller passes a shared setting such as IRN's value range.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import InputError
from ..imaging import Normalizer
from .base import EngineRun, OutputLayer, Progress, Result

__all__ = [
    "MAX_OUTPUT_BYTES",
    "MAX_PLANE_PIXELS",
    "Start",
    "is_lazy",
    "lead_axes",
    "plane_indices",
    "run_planewise",
]

#: The most pixels one plane (Y × X × channels) of a lazy array may have: it is read whole.
MAX_PLANE_PIXELS = 128 * 1024**2
#: The most bytes the outputs of a plane-by-plane run may take together (they are numpy arrays).
MAX_OUTPUT_BYTES = 8 * 1024**3


#: ``start(plane, position, value_range)``: an engine run on one plane
Start = Callable[[np.ndarray, tuple[int, ...], "tuple[float, float] | None"], EngineRun]


def is_lazy(data: Any) -> bool:
    """True for array-likes that read on access (dask, zarr, …): anything not a numpy array."""
    return not isinstance(data, np.ndarray)


def lead_axes(shape: tuple[int, ...], channel_axis: int | None) -> list[int]:
    """The axes read one index at a time: all but Y, X (the last two non-channel axes) and the
    channel axis. :class:`InputError` if the channel axis comes after one of them."""
    nd = len(shape)
    ch = None if channel_axis is None else channel_axis % nd
    rest = [a for a in range(nd) if a != ch]
    lead = rest[:-2]
    if ch is not None and lead and ch < lead[-1]:
        raise InputError(
            "a layer read plane by plane needs its channel axis after its T/Z axes "
            f"(shape {tuple(shape)}, channel axis {ch}): reorder the axes, e.g. with numpy.moveaxis"
        )
    return lead


def plane_indices(shape: tuple[int, ...], lead: list[int]) -> list[tuple[Any, ...]]:
    """Index tuples selecting each plane (all lead axes fixed, the rest whole), in C order."""
    ranges = [range(shape[a]) for a in lead]
    out = []
    for combo in itertools.product(*ranges):
        idx: list[Any] = [slice(None)] * len(shape)
        for a, i in zip(lead, combo, strict=True):
            idx[a] = i
        out.append(tuple(idx))
    return out


def _read(data: Any, idx: tuple[Any, ...]) -> np.ndarray:
    plane = data[idx]
    # dask arrays compute on np.asarray; zarr arrays already return numpy
    return np.asarray(plane.compute() if hasattr(plane, "compute") else plane)


def _position(i: int, lead_shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(v) for v in np.unravel_index(i, lead_shape)) if lead_shape else ()


def _check_sizes(shape: tuple[int, ...], lead: list[int]) -> int:
    n = int(np.prod([shape[a] for a in lead], dtype=np.int64)) if lead else 1
    per_plane = int(np.prod(shape, dtype=np.int64)) // max(n, 1)
    if per_plane > MAX_PLANE_PIXELS:
        raise InputError(
            f"one plane of this layer has {per_plane / 1e6:.0f} Mpixel (more than "
            f"{MAX_PLANE_PIXELS / 1e6:.0f}): add a region as its own layer, e.g. "
            "viewer.add_image(layer.data[..., :8192, :8192])"
        )
    return n


def run_planewise(
    data: Any,
    channel_axis: int | None,
    start: Start,
    shared_range: bool = False,
) -> EngineRun:
    """Run ``start(plane, position, value_range)`` (an engine run on one numpy plane;
    ``position``: its index along the leading axes, for per-plane inputs such as a mask) over every
    plane of the lazy ``data`` and stack the results: each output gets ``data``'s leading axes in
    front.

    ``data``: ``(*lead, Y, X[, C])`` array-like with ``shape``/``dtype``/indexing. The first plane's
    run is created before this returns, so its input errors are raised here, before any work.
    ``shared_range``: read the whole array's value range first (plane by plane) and pass it to
    every plane's run, so that all planes share one intensity scale (IRN's record); otherwise
    ``value_range`` is None. Progress ``part`` says ``plane i/N``; metadata ``planewise`` records
    the reading.
    """
    shape = tuple(int(s) for s in data.shape)
    lead = lead_axes(shape, channel_axis)
    n = _check_sizes(shape, lead)
    indices = plane_indices(shape, lead)
    lead_shape = tuple(shape[a] for a in lead)
    plane0 = _read(data, indices[0])
    first = start(plane0, _position(0, lead_shape), _own_range(plane0) if shared_range else None)
    if shared_range and n > 1:
        # checked above on the first plane; the planes are run again with the shared range
        getattr(first, "close", lambda: None)()
        return _drive_shared(data, channel_axis, indices, lead_shape, start, n)
    return _drive(data, indices, lead_shape, first, start, n, None)


def _own_range(plane: np.ndarray) -> tuple[float, float]:
    """The range the engines would map to [0, 1] for this plane alone (:class:`Normalizer`)."""
    norm = Normalizer.fit(plane)
    return norm.lo, norm.hi


def _drive_shared(
    data: Any,
    channel_axis: int | None,
    indices: list[tuple[Any, ...]],
    lead_shape: tuple[int, ...],
    start: Start,
    n: int,
) -> EngineRun:
    lo, hi = np.inf, -np.inf
    for i, idx in enumerate(indices):
        p = _read(data, idx)
        lo, hi = min(lo, float(p.min())), max(hi, float(p.max()))
        yield Progress(
            step=0,
            total=0,
            loss=float("nan"),
            message="reading the value range",
            part=f"plane {i + 1}/{n}",
            loss_label="",
        )
    # the engines' own rule (Normalizer.fit) on the whole stack's extremes
    rng = _own_range(np.array([lo, hi], dtype=data.dtype))
    pos0 = _position(0, lead_shape)
    first = start(_read(data, indices[0]), pos0, rng)
    return (yield from _drive(data, indices, lead_shape, first, start, n, rng))


def _drive(
    data: Any,
    indices: list[tuple[Any, ...]],
    lead_shape: tuple[int, ...],
    first: EngineRun,
    start: Start,
    n: int,
    rng: tuple[float, float] | None,
) -> EngineRun:
    outs: list[np.ndarray] = []
    template: Result | None = None
    steps_per_plane = 0
    chosen: list[Any] = []
    for i, idx in enumerate(indices):
        pos = _position(i, lead_shape)
        gen = first if i == 0 else start(_read(data, idx), pos, rng)
        part = f"plane {i + 1}/{n}"
        result = None
        try:
            ev = next(gen)
            while True:
                steps_per_plane = max(steps_per_plane, ev.total)
                yield Progress(
                    step=i * steps_per_plane + ev.step,
                    total=n * steps_per_plane,
                    loss=ev.loss,
                    preview=ev.preview,
                    message=ev.message,
                    part=f"{part}, {ev.part}" if ev.part else part,
                    part_step=ev.step,
                    part_total=ev.total,
                    at_most=ev.at_most,
                    loss_label=ev.loss_label,
                )
                ev = next(gen)
        except StopIteration as stop:
            result = stop.value
        if result is None:  # cancelled inside the engine
            return None
        if template is None:
            template = result
            need = sum(n * lay.data.nbytes for lay in result.layers)
            if need > MAX_OUTPUT_BYTES:
                raise InputError(
                    f"the results of all {n} planes would take {need / 1e9:.1f} GB: run on fewer "
                    "planes (add a slice of the layer as its own layer)"
                )
            outs = [np.empty((*lead_shape, *lay.data.shape), lay.data.dtype) for lay in result.layers]
        for out, lay in zip(outs, result.layers, strict=True):
            out[pos] = lay.data
        chosen.extend(result.metadata.get("chosen_step", []))
    assert template is not None
    layers = [
        OutputLayer(out, lay.suffix, lay.layer_type, lay.zoom, dict(lay.kwargs))
        for out, lay in zip(outs, template.layers, strict=True)
    ]
    meta = dict(template.metadata)
    meta["planewise"] = {"planes": n, "note": "read and restored one plane at a time (a lazy layer)"}
    if rng is not None:
        meta["planewise"]["value_range"] = [float(rng[0]), float(rng[1])]
    if chosen:
        meta["chosen_step"] = chosen
    return Result(layers, meta)
