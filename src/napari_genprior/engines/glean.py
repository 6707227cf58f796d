"""GLEAN super-resolution (Chan et al., CVPR 2021): one forward pass of an encoder + frozen
StyleGAN2 latent bank + decoder, ×8 or ×16.

The network takes LR tiles of a fixed size (``in_size``: the bank's size / scale, 16 for ×8 and 8
for ×16 with the 128² ``nuclei`` bank). Larger planes are cut into overlapping tiles blended with
linear ramps in the output grid (no seams); smaller ones are mirror-padded up to ``in_size`` and
the result cropped. Tiles go through the net in small batches and are blended into one float32
output plane at a time, so memory stays bounded (a 4096² output plane: ~0.2 GB of buffers).
Stacks ``(Z|T, Y, X)`` are processed plane by plane; the output keeps the input's dtype and range.

The result invents detail the prior finds plausible: it is a picture, not a measurement.
Pure torch + numpy.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..imaging import Normalizer, PlaneLayout, check_image, guess_channel_axis
from ..nets.glean import GLEAN
from .base import (
    EngineRun,
    InputError,
    OutputLayer,
    Progress,
    Result,
    check_cancel,
    params_from,
    resolve_device,
)
from .tiling import TileBlender, tile_plan

__all__ = ["MIN_SIDE", "SCALES", "GleanParams", "default_model", "prepare", "run"]

#: Scales of the bundled models (a model file may have any power-of-two scale it was trained for).
SCALES = (8, 16)
#: The smallest input side: smaller planes are padded up to the network's input size.
MIN_SIDE = 2


def default_model(scale: int) -> str:
    """The bundled model used when none is named: ``glean-nuclei-x{scale}``."""
    return f"glean-nuclei-x{scale}"


@dataclass
class GleanParams:
    """Parameters of one GLEAN run. Shapes are ``(…, Y, X[, C])`` as for every engine.

    - ``model``: a bundled model name (default ``glean-nuclei-x{scale}``) or the path of a model
      made by ``napari-genprior train glean`` (a checkpoint or its export).
    - ``scale``: the magnification; must be the one the model was trained for.
    - ``tile_overlap``: the fraction of a tile's side (``in_size`` LR pixels) that neighbouring tiles
      share, in ``[0, 0.5]``; rounded to whole LR pixels, at least 2 (blending needs a ramp).
    - ``batch_tiles``: tiles per forward pass (memory vs speed).
    - ``previews``: preview images per plane in the progress events (0: none).
    - ``pad_mode``: how inputs smaller than a tile are padded (``reflect`` or ``edge``).

    GLEAN is deterministic (the bank's noise inputs are fixed), so there is no seed.
    """

    model: str | None = None
    scale: int = 8
    tile_overlap: float = 0.25
    batch_tiles: int = 8
    channel_axis: int | str | None = "auto"
    previews: int = 4
    pad_mode: str = "reflect"

    @classmethod
    def from_any(cls, params: GleanParams | dict[str, Any] | None) -> GleanParams:
        return params_from(cls, params, "GLEAN")

    def validate(self) -> None:
        if not (isinstance(self.scale, int) and self.scale >= 2 and self.scale & (self.scale - 1) == 0):
            raise InputError(
                f"scale must be a power of two such as {' or '.join(map(str, SCALES))}, not {self.scale}"
            )
        if not (0 <= float(self.tile_overlap) <= 0.5):
            raise InputError(
                f"tile_overlap must be a fraction of the tile in [0, 0.5], not {self.tile_overlap}"
            )
        if int(self.batch_tiles) < 1:
            raise InputError(f"batch_tiles must be at least 1, not {self.batch_tiles}")
        if int(self.previews) < 0:
            raise InputError("previews must be >= 0")
        if self.pad_mode not in ("reflect", "edge"):
            raise InputError(f"pad_mode must be 'reflect' or 'edge', not {self.pad_mode!r}")


def prepare(params: GleanParams | dict[str, Any] | None) -> tuple[GleanParams, GLEAN, dict[str, Any]]:
    """Validate ``params`` without an image and load the model: ``(params with the model name
    resolved, network, info)``. Raises :class:`InputError` for an unknown model, a file that is
    not a GLEAN model, or a scale the model was not trained for."""
    from ..models.load import load_glean

    p = GleanParams.from_any(params)
    p.validate()
    p = dataclasses.replace(p, model=p.model or default_model(p.scale))
    net, info = load_glean(p.model)
    if info["scale"] != p.scale:
        raise InputError(
            f"the model {p.model!r} was trained for ×{info['scale']}, not ×{p.scale}: choose scale "
            f"{info['scale']} or a ×{p.scale} model"
        )
    return p, net, info


def run(
    image: np.ndarray,
    params: GleanParams | dict[str, Any] | None = None,
    *,
    device: str | torch.device = "auto",
    cancel: Callable[[], bool] | None = None,
) -> EngineRun:
    """Super-resolve ``image``; a generator of :class:`Progress` that returns a :class:`Result`.

    ``image``: 2-D ``(Y, X)``, with channels (``channel_axis``; the model's channel count: 1 for
    the nuclei models) and up to two leading axes (``Z|T``), uint8, uint16 or float, at least 2×2.
    The result ``glean_x{scale}`` has Y and X multiplied by the scale, the input's dtype and range,
    and ``zoom`` = scale. Bad input raises :class:`InputError`.
    """
    p = GleanParams.from_any(params)
    p.validate()
    arr = check_image(image)
    ch = guess_channel_axis(arr.shape) if p.channel_axis == "auto" else p.channel_axis
    layout = PlaneLayout(arr.shape, ch, min_side=MIN_SIDE)
    p, net, info = prepare(p)
    if layout.n_channels != net.image_channels:
        kind = "RGB" if layout.n_channels in (3, 4) else f"{layout.n_channels}-channel"
        raise InputError(
            f"the model {p.model!r} takes {net.image_channels}-channel images but the image is {kind}: "
            + (
                "convert it to grey first, or run one channel at a time"
                if net.image_channels == 1
                else f"give a {net.image_channels}-channel image"
            )
        )
    dev = resolve_device(device)
    return _execute(arr, p, layout, net.to(dev), info, dev, cancel)


def _execute(
    arr: np.ndarray,
    p: GleanParams,
    layout: PlaneLayout,
    net: GLEAN,
    info: dict[str, Any],
    dev: torch.device,
    cancel: Callable[[], bool] | None,
) -> EngineRun:
    t0 = time.perf_counter()
    s, t = net.scale, net.in_size
    norm = Normalizer.fit(arr)
    planes = layout.to_planes(norm.forward(arr))
    n, c, h, w = planes.shape
    ph, pw = max(h, t), max(w, t)  # smaller planes are padded up to one tile
    overlap = max(2, round(float(p.tile_overlap) * t))
    plan = tile_plan(ph, pw, s, t * s, overlap * s)
    m = len(plan)
    total = n * m
    every = max(1, math.ceil(m / p.previews)) if p.previews else 0
    out = np.empty((n, c, h * s, w * s), np.float32)
    k = 0
    for i in range(n):
        plane = planes[i]
        if (ph, pw) != (h, w):
            plane = np.pad(plane, ((0, 0), (0, ph - h), (0, pw - w)), mode=p.pad_mode)
        blend = TileBlender((c, ph * s, pw * s), s)
        for b0 in range(0, m, int(p.batch_tiles)):
            check_cancel(cancel)
            batch = plan[b0 : b0 + int(p.batch_tiles)]
            x = torch.from_numpy(np.stack([plane[:, tl.ys, tl.xs] for tl in batch])).to(dev)
            with torch.inference_mode():
                y = net(x * 2 - 1).add_(1).div_(2).clamp_(0, 1).float().cpu().numpy()
            for j, (tl, est) in enumerate(zip(batch, y)):
                blend.add(tl, est)
                k += 1
                done = b0 + j + 1
                preview = None
                if every and (done % every == 0 or done == m):
                    cur = blend.preview(tl, est, np.float32(0))[:, : h * s, : w * s]
                    preview = layout.plane_view(norm.inverse(cur, cast=False))
                yield Progress(
                    k,
                    total,
                    math.nan,
                    preview,
                    f"tile {done}/{m}",
                    part=f"plane {i + 1}/{n}" if n > 1 else "",
                    part_step=done if n > 1 else 0,
                    part_total=m if n > 1 else 0,
                )
        out[i] = blend.result()[:, : h * s, : w * s]
        del blend
    result = norm.inverse(layout.from_planes(np.clip(out, 0.0, 1.0)))
    meta = {
        "engine": "glean",
        "napari_genprior_version": __version__,
        **dataclasses.asdict(p),
        "device": str(dev),
        "network": info,
        "in_size": t,
        "channel_axis": layout.channel_axis,
        "tiles_per_plane": m,
        "tile_overlap_px": overlap,
        "padded": (ph, pw) != (h, w),
        "value_range": [norm.lo, norm.hi],
        "wall_time_s": round(time.perf_counter() - t0, 3),
    }
    return Result([OutputLayer(result, f"glean_x{s}", "image", float(s))], meta)
