"""Overlapping tiles with ramped blending weights, for engines that process large planes piecewise."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["Tile", "TileBlender", "tile_plan"]


@dataclass(frozen=True)
class Tile:
    """One tile of a plane: input slices and its blending weight ``(h·f, w·f)`` in ``(0, 1]``."""

    ys: slice
    xs: slice
    weight: np.ndarray

    def out_slices(self, f: int) -> tuple[slice, slice]:
        """The tile's slices in the output (×``f``) grid."""
        return slice(self.ys.start * f, self.ys.stop * f), slice(self.xs.start * f, self.xs.stop * f)


def _starts(n: int, t: int, o: int) -> list[int]:
    if n <= t:
        return [0]
    k = math.ceil((n - o) / (t - o))
    return sorted({int(round(v)) for v in np.linspace(0, n - t, k)})


def _ramp(n: int, ramp: int, lo: bool, hi: bool) -> np.ndarray:
    w = np.ones(n, np.float32)
    r = (np.arange(ramp, dtype=np.float32) + 0.5) / ramp
    if lo:
        w[:ramp] = np.minimum(w[:ramp], r)
    if hi:
        w[n - ramp :] = np.minimum(w[n - ramp :], r[::-1])
    return w


def tile_plan(h: int, w: int, f: int, tile: int, overlap: int) -> list[Tile]:
    """Tiles covering an ``h × w`` input plane whose output is ``(h·f) × (w·f)``.

    ``tile`` and ``overlap`` are in output pixels; ``tile == 0`` or an output no larger than
    ``tile`` gives one tile. Neighbouring tiles overlap by at least ``overlap`` and their
    weights ramp linearly from ~0 to 1 across it, so blended results have no seams.
    """
    if not tile or (h * f <= tile and w * f <= tile):
        return [Tile(slice(0, h), slice(0, w), np.ones((h * f, w * f), np.float32))]
    t, o = max(tile // f, 2), max(overlap // f, 2)
    th, tw = min(t, h), min(t, w)
    tiles = []
    for y0 in _starts(h, t, o):
        for x0 in _starts(w, t, o):
            wy = _ramp(th * f, o * f, y0 > 0, y0 + th < h)
            wx = _ramp(tw * f, o * f, x0 > 0, x0 + tw < w)
            tiles.append(Tile(slice(y0, y0 + th), slice(x0, x0 + tw), np.outer(wy, wx)))
    return tiles


class TileBlender:
    """Weighted sum of tile outputs ``(C, h·f, w·f)`` over a plane of shape ``(C, H, W)`` (output grid)."""

    def __init__(self, shape: tuple[int, int, int], f: int = 1) -> None:
        self.f = f
        self.acc = np.zeros(shape, np.float32)
        self.wacc = np.zeros(shape[1:], np.float32)

    def add(self, tile: Tile, out: np.ndarray) -> None:
        oy, ox = tile.out_slices(self.f)
        self.acc[:, oy, ox] += out * tile.weight
        self.wacc[oy, ox] += tile.weight

    def result(self) -> np.ndarray:
        """The blend; every pixel must have been covered by a tile."""
        return self.acc / self.wacc

    def preview(self, tile: Tile, est: np.ndarray, base: np.ndarray) -> np.ndarray:
        """The blend so far, ``base`` where no tile has been fitted yet, ``est`` on ``tile``."""
        cur = np.where(self.wacc > 0, self.acc / np.maximum(self.wacc, 1e-12), base)
        oy, ox = tile.out_slices(self.f)
        cur[:, oy, ox] = est
        return cur
