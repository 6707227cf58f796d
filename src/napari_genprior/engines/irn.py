"""Invertible Image Rescaling (Xiao et al., ECCV 2020): a learned downscaling that can be inverted.

- ``down``: HR → LR, stored in the image's own dtype (8/16-bit LR are rounded as they would be
  saved). The LR looks like an ordinary downscaled image; its metadata (``irn``) records the
  value range and the original shape, which ``up`` needs.
- ``up``: LR → HR with the latent ``z ~ N(0, τ²)`` (τ = 1 as in the paper; 0 allowed). It restores
  images that ``down`` produced; it is **not** a general super-resolver for other small images.
- ``roundtrip``: both, to check the quality on an image you have at full resolution.

Bundled models (``irn-x2``, ``irn-x4`` when present: ``napari-genprior models``) are
single-channel: multichannel and RGB data are rescaled channel by channel. ``weights`` may point to a checkpoint of ``napari-genprior train irn`` or to a
state dict in the official ``InvRescaleNet`` key layout (a 3-channel model is applied to RGB
images jointly). Pure torch + numpy.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import __version__
from ..imaging import Normalizer, PlaneLayout, check_image, guess_channel_axis
from ..models import weights_path
from ..models.load import load_irn as load_weights
from ..models.load import recommended_tau
from ..nets.irn import InvRescaleNet
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

__all__ = [
    "DEFAULT_TILE",
    "MODES",
    "NO_RECORD",
    "SCALES",
    "IRNParams",
    "load_weights",
    "prepare",
    "recommended_tau",
    "run",
    "up_record",
]

MODES = ("down", "up", "roundtrip")
SCALES = (2, 4)
#: Tile side in LR pixels. Larger images are processed in overlapping tiles (memory bound).
DEFAULT_TILE = 256


@dataclass
class IRNParams:
    """Parameters of one IRN run. Shapes are ``(…, Y, X[, C])`` as for every engine.

    - ``mode``: ``down`` | ``up`` | ``roundtrip``; ``scale``: 2 or 4.
    - ``model``: a bundled model name (default ``irn-x{scale}``); ``weights``: a checkpoint path
      instead (ours, or the official key layout).
    - ``tau``: std of the sampled latent (1 as in the paper; 0 = the mean latent); ``None``: the
      model card's ``recommended_tau`` (the bundled models: 0, see their cards), else 1.
    - ``samples``: draws of z; with 2 or more, an ``irn_uncertainty`` layer (per-pixel std).
    - ``value_range``/``hr_shape`` (``up``): the HR value range and ``(Y, X)`` recorded by
      ``down`` in the LR's metadata; without them 8-bit LR use 0–255 and others their own range.
      ``value_range`` for ``down``/``roundtrip``: the range mapped to [0, 1] instead of the
      image's own (planes of one stack read one at a time share it); values outside it clip.
    - ``tile_size``/``tile_overlap``: in LR pixels; ``tile_size=0`` never tiles.
    """

    mode: str = "roundtrip"
    scale: int = 2
    model: str | None = None
    weights: str | None = None
    tau: float | None = None
    samples: int = 1
    seed: int | None = 0
    channel_axis: int | str | None = "auto"
    value_range: tuple[float, float] | None = None
    hr_shape: tuple[int, int] | None = None
    tile_size: int | None = None
    tile_overlap: int = 16

    @classmethod
    def from_any(cls, params: IRNParams | dict[str, Any] | None) -> IRNParams:
        return params_from(cls, params, "IRN")

    def validate(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"unknown mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if self.scale not in SCALES:
            raise InputError(f"scale must be one of {SCALES}, not {self.scale}")
        if self.tau is not None and not (self.tau >= 0 and math.isfinite(self.tau)):
            raise InputError(f"tau must be a number >= 0, not {self.tau}")
        if int(self.samples) < 1:
            raise InputError(f"samples must be at least 1, not {self.samples}")
        if self.mode == "down" and int(self.samples) != 1:
            raise InputError(
                "samples applies to up and roundtrip (draws of z when restoring); down has nothing to "
                "sample: leave samples at 1"
            )
        if self.tile_size is not None and self.tile_size != 0 and self.tile_size < 32:
            raise InputError(
                f"tile_size must be 0 (never tile) or at least 32 LR pixels, not {self.tile_size}"
            )
        tile = DEFAULT_TILE if self.tile_size is None else self.tile_size or 10**9
        if self.tile_overlap < 4 or 2 * self.tile_overlap > tile:
            raise InputError("tile_overlap must be at least 4 and at most half the tile size")
        if self.value_range is not None and not float(self.value_range[1]) > float(self.value_range[0]):
            raise InputError(f"value_range must be (low, high) with high > low, not {self.value_range}")


def up_record(stored: dict[str, Any] | None, lr_spatial: tuple[int, int]) -> dict[str, Any] | None:
    """The record ``down`` stored with an LR image (``{"scale", "value_range", "hr_shape"}``) if it
    describes an LR of ``lr_spatial`` ``(Y, X)``, else ``None`` (no record, or one copied onto an
    image that ``down`` did not make, such as an HR result)."""
    if not stored or "hr_shape" not in stored or "scale" not in stored:
        return None
    s = int(stored["scale"])
    if tuple(-(-int(n) // s) for n in stored["hr_shape"]) != tuple(int(n) for n in lr_spatial):
        return None
    return stored


#: Said when ``up`` runs on an image that carries no record from ``down``.
NO_RECORD = (
    "{name} carries no record from IRN down: its own value range is used and the result is LR size × "
    "scale. IRN up restores the LR images that down made; {hint}"
)


def _load(p: IRNParams) -> tuple[InvRescaleNet, dict[str, Any]]:
    if p.weights:
        net, info = load_weights(p.weights)
    else:
        name = p.model or f"irn-x{p.scale}"
        path = weights_path(name)
        if path is None:
            raise InputError(
                f"no bundled model {name!r}: see `napari-genprior models`, or give --weights PATH "
                "(train one with `napari-genprior train irn`)"
            )
        net, info = load_weights(path)
        info["model"] = name
    if info["scale"] != p.scale:
        raise InputError(
            f"the model rescales by ×{info['scale']}, not ×{p.scale}: choose scale {info['scale']}"
        )
    return net, info


def _pad_to(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """``(C, H0, W0)`` → ``(C, h, w)`` by mirror padding at the bottom/right."""
    return np.pad(a, ((0, 0), (0, h - a.shape[1]), (0, w - a.shape[2])), mode="symmetric")


class _Model:
    """The network applied to ``(C, H, W)`` arrays in ``[0, 1]`` of any channel count."""

    def __init__(self, net: InvRescaleNet, device: torch.device) -> None:
        self.net = net.to(device)
        self.dev = device
        self.c = net.channels
        self.s = net.scale

    def _units(self, x: np.ndarray) -> list[np.ndarray]:
        """Split ``(C, …)`` into the inputs the network takes: per channel, or RGB jointly."""
        if self.c == x.shape[0]:
            return [x]
        if self.c == 1:
            return [x[i : i + 1] for i in range(x.shape[0])]
        return [np.repeat(x[i : i + 1], self.c, axis=0) for i in range(x.shape[0])]  # grey into RGB

    def _merge(self, parts: list[np.ndarray], n: int) -> np.ndarray:
        if len(parts) == 1 and parts[0].shape[0] == n:
            return parts[0]
        return np.concatenate([p.mean(axis=0, keepdims=True) if p.shape[0] != 1 else p for p in parts])

    @torch.no_grad()
    def down(self, x: np.ndarray) -> np.ndarray:
        """``(C, H, W)`` with H, W multiples of the scale → LR ``(C, H/s, W/s)`` (not quantised)."""
        outs = []
        for u in self._units(x):
            y = self.net(torch.from_numpy(np.ascontiguousarray(u))[None].to(self.dev))
            outs.append(y[0, : self.c].float().cpu().numpy())
        return self._merge(outs, x.shape[0])

    @torch.no_grad()
    def up(self, lr: np.ndarray, z: list[np.ndarray]) -> np.ndarray:
        """LR ``(C, h, w)`` and one latent per network input → HR ``(C, h·s, w·s)``."""
        outs = []
        for u, zu in zip(self._units(lr), z):
            y = torch.cat([torch.from_numpy(np.ascontiguousarray(u)), torch.from_numpy(zu)], 0)[None]
            outs.append(self.net.inverse(y.to(self.dev))[0].float().cpu().numpy())
        return self._merge(outs, lr.shape[0])

    def z_channels(self) -> int:
        return self.c * (self.s**2 - 1)

    def n_units(self, c: int) -> int:
        return 1 if self.c == c else c


def run(
    image: np.ndarray,
    params: IRNParams | dict[str, Any] | None = None,
    *,
    device: str | torch.device = "auto",
    cancel: Callable[[], bool] | None = None,
) -> EngineRun:
    """Run IRN on ``image``; a generator of :class:`Progress` that returns a :class:`Result`.

    ``image``: 2-D ``(Y, X)``, RGB ``(Y, X, 3)``, multichannel (``channel_axis``) and up to two
    leading axes; uint8, uint16 or float. ``down`` returns ``irn_lr`` with Y, X divided by the
    scale (rounded up: sizes that are not multiples are mirror-padded); ``up`` returns ``irn_hr``
    with Y, X multiplied (cropped to ``hr_shape`` when given); ``roundtrip`` returns both, the HR
    at the input's shape. Outputs keep the input's dtype; bad input raises :class:`InputError`.
    """
    p = IRNParams.from_any(params)
    p.validate()
    arr = check_image(image)
    ch = guess_channel_axis(arr.shape) if p.channel_axis == "auto" else p.channel_axis
    layout = PlaneLayout(arr.shape, ch)
    if p.mode == "up" and p.hr_shape is not None:
        hy, hx = (int(v) for v in p.hr_shape)
        ly, lx = layout.spatial_shape
        if not (
            hy <= ly * p.scale and hx <= lx * p.scale and hy > (ly - 1) * p.scale and hx > (lx - 1) * p.scale
        ):
            raise InputError(
                f"hr_shape {p.hr_shape} does not fit an LR of {layout.spatial_shape} at ×{p.scale}"
            )
    p, net, info = prepare(p)
    dev = resolve_device(device)
    return _execute(arr, p, layout, net, info, dev, cancel)


def prepare(params: IRNParams | dict[str, Any] | None) -> tuple[IRNParams, InvRescaleNet, dict[str, Any]]:
    """Validate ``params`` without an image and load the model: ``(params with τ resolved, network,
    info)``. Raises :class:`InputError` for anything that is wrong whatever the image (a batch
    checks this once, before it starts)."""
    p = IRNParams.from_any(params)
    p.validate()
    net, info = _load(p)
    if p.tau is None:
        p = dataclasses.replace(p, tau=info["recommended_tau"])
    if int(p.samples) > 1 and p.tau == 0:
        # Every draw would be the mean latent: the spread would be an all-zero map that looks
        # like certainty. Refuse rather than return it.
        advice = (
            "this model is trained for tau 0 only and its round trip breaks down already at small tau "
            "(docs/irn.md), so sampling z cannot give it a meaningful uncertainty: use samples 1"
            if info["recommended_tau"] == 0
            else f"set tau > 0 (this model's recommended tau is {info['recommended_tau']:g}) or use samples 1"
        )
        raise InputError(
            f"samples {p.samples} at tau 0 would draw the same z (the mean latent) every time, so the "
            f"uncertainty map would be all zeros; {advice}"
        )
    return p, net, info


def _execute(
    arr: np.ndarray,
    p: IRNParams,
    layout: PlaneLayout,
    net: InvRescaleNet,
    info: dict[str, Any],
    dev: torch.device,
    cancel: Callable[[], bool] | None,
) -> EngineRun:
    s = p.scale
    model = _Model(net, dev)
    t0 = time.perf_counter()
    if p.mode == "up":
        if p.value_range is not None:
            norm = Normalizer(float(p.value_range[0]), float(p.value_range[1]), arr.dtype)
        else:
            norm = Normalizer.fit(arr)
        lr_planes = layout.to_planes(norm.forward(arr))
        hr_shape = tuple(p.hr_shape) if p.hr_shape else (lr_planes.shape[2] * s, lr_planes.shape[3] * s)
        hr, spread = yield from _up(model, lr_planes, p, hr_shape, cancel, 0, 1)
        layers = [OutputLayer(norm.inverse(layout.from_planes(hr)), "irn_hr", "image", float(s))]
        lr_out = None
    else:
        if p.value_range is not None:  # a stack read plane by plane shares one range
            norm = Normalizer(float(p.value_range[0]), float(p.value_range[1]), arr.dtype)
        else:
            norm = Normalizer.fit(arr)
        planes = layout.to_planes(norm.forward(arr))
        hr_shape = planes.shape[2:]
        lr = yield from _down(model, planes, p, cancel, 2 if p.mode == "roundtrip" else 1)
        lr_out = norm.inverse(layout.from_planes(lr))  # as stored: the input's dtype
        layers = [OutputLayer(lr_out, "irn_lr", "image", 1.0 / s)]
        spread = None
        if p.mode == "roundtrip":
            stored = layout.to_planes(norm.forward(lr_out))
            hr, spread = yield from _up(model, stored, p, hr_shape, cancel, 1, 2)
            # the HR first: it is the result the round trip is for (the widget puts it on top)
            layers.insert(0, OutputLayer(norm.inverse(layout.from_planes(hr)), "irn_hr", "image", 1.0))
    if spread is not None:
        zoom = float(s) if p.mode == "up" else 1.0
        unc = spread.reshape(*layout.lead_shape, *hr_shape) * (norm.hi - norm.lo)
        layers.append(
            OutputLayer(
                unc.astype(np.float32), "irn_uncertainty", "image", zoom, {"colormap": "magma", "rgb": False}
            )
        )
    meta = {
        "engine": "irn",
        "napari_genprior_version": __version__,
        **{k: v for k, v in dataclasses.asdict(p).items() if k not in ("value_range", "hr_shape")},
        "device": str(dev),
        "network": {k: v for k, v in info.items() if k != "config"},
        "channel_axis": layout.channel_axis,
        "wall_time_s": round(time.perf_counter() - t0, 3),
        # What `up` needs to invert this LR exactly: the HR value range and shape.
        "irn": {"scale": s, "value_range": [norm.lo, norm.hi], "hr_shape": list(hr_shape)},
    }
    return Result(layers, meta)


def _down(
    model: _Model, planes: np.ndarray, p: IRNParams, cancel: Callable[[], bool] | None, stages: int
) -> Generator[Progress, None, np.ndarray]:
    """``(N, C, H, W)`` in ``[0, 1]`` → LR ``(N, C, ⌈H/s⌉, ⌈W/s⌉)`` in ``[0, 1]`` (not yet quantised)."""
    s = p.scale
    n, c, h, w = planes.shape
    lh, lw = -(-h // s), -(-w // s)
    tile = DEFAULT_TILE if p.tile_size is None else int(p.tile_size)
    plan = tile_plan(lh, lw, 1, tile, p.tile_overlap)
    total = n * len(plan) * stages
    out = np.empty((n, c, lh, lw), np.float32)
    k = 0
    for i in range(n):
        x = _pad_to(planes[i], lh * s, lw * s)
        blend = TileBlender((c, lh, lw))
        for t in plan:
            check_cancel(cancel)
            blend.add(t, model.down(x[:, t.ys.start * s : t.ys.stop * s, t.xs.start * s : t.xs.stop * s]))
            k += 1
            yield Progress(
                k, total, math.nan, None, f"down: tile {k}/{n * len(plan)}" if len(plan) > 1 else "down"
            )
        out[i] = blend.result()
    return out.clip(0.0, 1.0)


def _up(
    model: _Model,
    lr: np.ndarray,
    p: IRNParams,
    hr_shape: tuple[int, int],
    cancel: Callable[[], bool] | None,
    stage: int,
    stages: int,
) -> Generator[Progress, None, tuple[np.ndarray, np.ndarray | None]]:
    """LR ``(N, C, h, w)`` in ``[0, 1]`` → (HR ``(N, C, *hr_shape)`` from the first draw of z,
    per-pixel std over ``samples`` draws ``(N, *hr_shape)`` or ``None``)."""
    s = p.scale
    n, c, lh, lw = lr.shape
    tile = DEFAULT_TILE if p.tile_size is None else int(p.tile_size)
    plan = tile_plan(lh, lw, s, tile * s, p.tile_overlap * s)
    k_draws = int(p.samples)
    per_stage = n * len(plan) * k_draws
    total = per_stage * stages
    gen = np.random.default_rng(p.seed)
    hy, hx = hr_shape
    first = np.empty((n, c, hy, hx), np.float32)
    spread = np.empty((n, hy, hx), np.float32) if k_draws > 1 else None
    k = 0
    for i in range(n):
        mean = np.zeros((c, lh * s, lw * s), np.float64)
        sq = np.zeros_like(mean)
        for d in range(k_draws):
            z = [
                (p.tau * gen.standard_normal((model.z_channels(), lh, lw))).astype(np.float32)
                for _ in range(model.n_units(c))
            ]
            blend = TileBlender((c, lh * s, lw * s), s)
            for t in plan:
                check_cancel(cancel)
                blend.add(t, model.up(lr[i][:, t.ys, t.xs], [zu[:, t.ys, t.xs] for zu in z]))
                k += 1
                yield Progress(stage * per_stage + k, total, math.nan, None, f"up: {k}/{per_stage}")
            hr = blend.result().clip(0.0, 1.0)
            if d == 0:
                first[i] = hr[:, :hy, :hx]
            mean += hr
            sq += hr.astype(np.float64) ** 2
        if spread is not None:
            var = np.maximum(sq / k_draws - (mean / k_draws) ** 2, 0.0)
            spread[i] = np.sqrt(var.mean(axis=0))[:hy, :hx]
    return first, spread
