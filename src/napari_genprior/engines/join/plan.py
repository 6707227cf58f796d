"""JoIN's problem: the checked input (:class:`Setup`), and the planes brought to the working scale
and cut into prior-sized tiles (:class:`Problem`); how many tiles a run solves and roughly how
long it takes."""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ...imaging import PlaneLayout, guess_channel_axis
from ...models.load import load_component_prior
from ...physics.composition import FORWARD_MODELS, ForwardModel
from ..tiling import Tile
from .latents import _Slot
from .params import COVERAGE, JoinParams


def _tiles(h: int, w: int, t: int) -> list[Tile]:
    """The fewest ``t × t`` tiles that cover an ``h × w`` plane, spread evenly (they overlap where
    the sides are not multiples of ``t``). Each tile has its own specimen latent; the field is
    global, so no overlap is needed for the solve."""

    def starts(n: int) -> list[int]:
        k = -(-n // t)
        return sorted({int(round(v)) for v in np.linspace(0, n - t, k)}) if k > 1 else [0]

    return [
        Tile(slice(y, y + t), slice(x, x + t), np.ones((t, t), np.float32))
        for y in starts(h)
        for x in starts(w)
    ]


def _work_size(h: int, w: int, n_planes: int, tile: int, max_tiles: int) -> tuple[int, int]:
    """The working (Y, X) of flat-field planes: full size, or downscaled until at most ``max_tiles``
    tiles of ``tile`` cover the stack (never below one tile per side)."""
    for f in (1, 1.25, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 64):
        wh, ww = max(tile, round(h / f)), max(tile, round(w / f))
        if n_planes * len(_tiles(wh, ww, tile)) <= max_tiles or (wh == tile and ww == tile):
            return wh, ww
    return tile, tile


def _pick_tiles(n_planes: int, n_pos: int, budget: int) -> list[tuple[int, int]]:
    """``(plane, position)`` pairs to solve when one field is shared: all of them if they fit the
    ``budget``, else ``budget`` pairs that cover the positions evenly (spread positions first) and
    cycle through the planes, so the shared field is constrained over the whole plane by
    specimens at the prior's own scale."""
    if n_planes * n_pos <= budget:
        return [(i, q) for i in range(n_planes) for q in range(n_pos)]
    spread = np.linspace(0, n_pos - 1, min(n_pos, budget)).round().astype(int).tolist()
    order = list(dict.fromkeys([*spread, *range(n_pos)]))
    picked: list[tuple[int, int]] = []
    seen: set[tuple[int, int]] = set()
    for k in range(4 * n_planes * n_pos):
        pair = ((k + k // n_pos) % n_planes, order[k % n_pos])
        if pair not in seen:
            seen.add(pair)
            picked.append(pair)
            if len(picked) == budget:
                return sorted(picked)
    rest = [(i, q) for i in range(n_planes) for q in order if (i, q) not in seen]
    return sorted(picked + rest[: budget - len(picked)])


def _solve_plan(
    n: int, hy: int, hx: int, tile: int, model: ForwardModel | type[ForwardModel], p: JoinParams
) -> tuple[list[int], tuple[int, int], list[Tile], list[tuple[int, Tile]]]:
    """What a run solves for ``n`` planes of ``hy × hx`` with local tiles of ``tile``: the group of
    each plane, the working (Y, X), the tile positions, and the ``(plane, tile)`` pairs solved."""
    shared_field = model.shared_across_planes and not p.per_plane
    if shared_field:
        # the specimen stays at the prior's own scale (a downscaled specimen is out of its domain);
        # a field shared by every plane and tile only needs tiles that cover the plane evenly
        groups = [0] * n
        wh, ww = _work_size(hy, hx, 1, tile, COVERAGE * int(p.max_tiles))
    elif model.tiled:
        groups = list(range(n))
        wh, ww = _work_size(hy, hx, n, tile, int(p.max_tiles))
    else:
        groups = list(range(n))
        wh, ww = tile, tile
    plan = _tiles(wh, ww, tile)
    if shared_field:
        tiles = [(i, plan[q]) for i, q in _pick_tiles(n, len(plan), int(p.max_tiles))]
    else:
        tiles = [(i, t) for i in range(n) for t in plan]
    return groups, (wh, ww), plan, tiles


def _prior_size(name_or_path: str) -> int:
    """The image side of a prior: from a bundled prior's card, else from the checkpoint's generator."""
    from ...models import card

    label = str(name_or_path)
    if "/" not in label and not label.endswith((".pt", ".pth")):
        try:
            return int(card(label)["size"])
        except (KeyError, ValueError, TypeError):
            pass
    path = Path(label)
    mtime = path.stat().st_mtime if path.is_file() else 0.0
    return _file_prior_size(label, mtime)


@functools.lru_cache(maxsize=16)
def _file_prior_size(label: str, mtime: float) -> int:
    """A checkpoint's generator size, loaded once per file version (the widget asks at every change)."""
    gen, _, _ = load_component_prior(label, "the estimate")
    return int(gen.size)


def tiles_for(image: np.ndarray, params: JoinParams | dict[str, Any] | None = None) -> tuple[int, int]:
    """``(tiles, tile side)``: how many prior-sized tiles a run of ``params`` on ``image`` solves
    together (every step works on all of them). Raises :class:`InputError` for a bad prior."""
    p = JoinParams.from_any(params)
    model = FORWARD_MODELS[p.forward]
    shape = np.shape(image)
    ch = guess_channel_axis(shape) if p.channel_axis == "auto" else p.channel_axis
    layout = PlaneLayout(shape, ch)
    tile = max(_prior_size((p.priors or {}).get(c.name) or c.prior) for c in model.components if not c.smooth)
    hy, hx = layout.spatial_shape
    if hy < tile or hx < tile:
        return 0, tile
    return len(_solve_plan(layout.n_planes, hy, hx, tile, model, p)[3]), tile


#: A rough model of a run's time: ``STEP_SECONDS`` per step plus ``TILE_STEP_SECONDS`` per step for
#: each 64² of tile solved (all restarts counted while they run side by side). Fitted to the two
#: default-settings runs of docs/join.md ("Measured": 64² intrinsic 34.7 s; 512² flat-field, 8 tiles
#: of 128², 144 s), on 2 CPU threads with bfloat16: an estimate, not a promise.
STEP_SECONDS = 0.089
TILE_STEP_SECONDS = 0.0075


def rough_seconds(n_tiles: int, tile: int, params: JoinParams | dict[str, Any] | None = None) -> float:
    """A rough estimate of a run's wall time on a CPU (see :data:`STEP_SECONDS`) for ``n_tiles``
    tiles of ``tile`` pixels: the time left is better measured once the run has started."""
    p = JoinParams.from_any(params)
    steps, r = int(p.steps), int(p.restarts)
    probe = max(1, int(round(p.probe * steps))) if r > 1 and p.probe < 1 else 0
    tile_steps = probe * r + (steps - probe) + int(p.finetune_steps)
    area = n_tiles * (tile / 64) ** 2
    return (steps + int(p.finetune_steps)) * STEP_SECONDS + tile_steps * area * TILE_STEP_SECONDS


def _resize(x: torch.Tensor, size: tuple[int, int], smooth: bool = False) -> torch.Tensor:
    """``(…, C, h, w)`` → ``(…, C, *size)``: area averaging to shrink, bilinear to enlarge, bicubic
    for a ``smooth`` field either way."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.shape[-2] > size[0] and not smooth:  # shrinking: area averaging (anti-aliased)
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bicubic" if smooth else "bilinear", align_corners=False)


@dataclass
class Setup:
    """A checked run: the input as given, its parameters and forward model, its plane layout, the
    loaded priors (``slots``), the side of the local tiles and the device."""

    arr: np.ndarray
    p: JoinParams
    model: ForwardModel
    layout: PlaneLayout
    slots: dict[str, _Slot]
    tile: int
    dev: torch.device


@dataclass
class Problem(Setup):
    """What a run solves. ``top``: the intensity scale (input / top is in [0, 1] units);
    ``lin_full``: the linear planes ``(N, C, H, W)`` at full size; ``groups``: the group of each
    plane (planes of a group share the smooth components); ``work``: the planes at the working
    size ``work_hw``, ``(N, C, wh, ww)``; ``plan``: the tile positions; ``tiles``: the
    ``(plane, tile)`` pairs solved; ``target``: their crops ``(T, C, P, P)`` on the device;
    ``warnings`` collects what the run reports; ``t0`` is when it started."""

    top: float
    lin_full: torch.Tensor
    groups: list[int]
    work_hw: tuple[int, int]
    plan: list[Tile]
    tiles: list[tuple[int, Tile]]
    work: torch.Tensor
    target: torch.Tensor
    warnings: list[str]
    t0: float

    @classmethod
    def build(cls, s: Setup) -> Problem:
        """Normalise and linearise the input, plan the tiles and cut the targets."""
        t0 = time.perf_counter()
        planes = s.layout.to_planes(s.arr).astype(np.float64)  # (N, C, H, W)
        n, c, hy, hx = planes.shape
        # multiplicative models: scale only, never shift (a shift would change the composition)
        top = 255.0 if s.arr.dtype == np.uint8 else float(np.max(np.abs(planes))) or 1.0
        x_full = torch.from_numpy((planes / top).astype(np.float32))
        x_full, warnings = s.model.adapt_input(
            x_full, {k: sl.gen.image_channels for k, sl in s.slots.items()}
        )
        lin_full = s.model.linearise(x_full)
        groups, (wh, ww), plan, tiles = _solve_plan(n, hy, hx, s.tile, s.model, s.p)
        work = _resize(lin_full, (wh, ww))  # (N, C, wh, ww)
        target = torch.stack([work[i][:, t.ys, t.xs] for i, t in tiles]).to(s.dev)  # (T, C, P, P)
        return cls(
            **{f.name: getattr(s, f.name) for f in fields(Setup)},
            top=top,
            lin_full=lin_full,
            groups=groups,
            work_hw=(wh, ww),
            plan=plan,
            tiles=tiles,
            work=work,
            target=target,
            warnings=warnings,
            t0=t0,
        )

    @property
    def n_tiles(self) -> int:
        return len(self.tiles)

    @property
    def n_groups(self) -> int:
        return max(self.groups) + 1

    @property
    def tile_group(self) -> list[int]:
        """The group of each solved tile."""
        return [self.groups[i] for i, _ in self.tiles]
