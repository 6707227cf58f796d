"""JoIN (Shah, Lazebnik, Philip 2023): split an image into components by jointly inverting one GAN
prior per component through a forward model (``physics.composition``).

- **Stage 1**, joint latent optimisation: one W+ latent per prior instance, initialised at w̄ (the
  mean of mapped samples) — restart 0 — or at truncated samples (ψ = 0.7) for the other restarts;
  loss = reconstruction distance + in-domain penalty ‖w − w̄‖² (+ the noise regulariser when a prior
  has noise inputs); Adam with the StyleGAN2 projector's learning-rate ramp. All restarts run as
  one batch for the first fifth of the steps; the best one continues alone.
- **Stage 2**, generator fine-tuning (PTI): the latents are frozen as pivots and the synthesis
  weights of every generator are fine-tuned jointly, kept near their priors by each prior's frozen
  discriminator (non-saturating term on the pivot and on support latents 0.9·pivot + 0.1·w(z)).
- **Scale**: the solve runs at the priors' scale. Intrinsic: each plane is resized to the albedo
  prior's size. Flat-field: tiles of the specimen prior's size, all sharing one illumination
  latent per group. A shared field is solved on at most ``max_tiles`` tiles at the prior's own
  scale (a downscaled specimen is out of its domain), spread over the tile positions and the
  planes; only planes with more than ``COVERAGE · max_tiles`` positions are downscaled. With
  ``per_plane`` every tile of every plane is solved, downscaled to fit ``max_tiles``. At full
  resolution, smooth fields are resized and the other component is recomputed from the input:
  A = I / S, X = (I − D) / F.
- **Stacks**: flat-field shares one field, gain and dark offset across the planes (``per_plane``
  turns that off); intrinsic decomposes plane by plane.

Pure torch + numpy.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..imaging import PlaneLayout, check_image, guess_channel_axis
from ..models.load import load_component_prior
from ..nets.stylegan2 import Discriminator, Generator, NoiseInjection
from ..physics.composition import FORWARD_MODELS, ForwardModel, forward_model
from .base import (
    PRECISIONS,
    EngineRun,
    InputError,
    OutputLayer,
    Progress,
    Result,
    autocast,
    check_cancel,
    params_from,
    resolve_device,
    resolve_precision,
)
from .tiling import Tile, TileBlender

__all__ = [
    "DISTANCES",
    "JoinParams",
    "laplacian_distance",
    "load_component_prior",
    "rough_seconds",
    "run",
    "tiles_for",
    "unexplained_mask",
]

DISTANCES = ("l1+lap", "mse+lap", "mse")
#: latent spaces: W+ (one latent per layer), W (one for all layers), or each component's own default
LATENTS = ("auto", "w+", "w")
#: truncation of the restarts' starting latents (the JoIN code's ψ for w̄)
RESTART_PSI = 0.7
#: restarts run side by side for this fraction of the stage-1 steps; the best continues
PROBE_FRACTION = 0.2
#: a shared flat-field is solved on tiles covering at least 1/COVERAGE of the plane at the prior's
#: scale (max_tiles of them); planes with more tile positions are downscaled first
COVERAGE = 2
#: what stage 2 does to a smooth component: fine-tune its weights, move its latent, or leave it
STAGE2_SMOOTH = ("auto", "weights", "latent", "frozen")
#: residuals beyond this many robust standard deviations are marked unexplained
UNEXPLAINED_K = 4.0
METRICS = ("auto", "euclidean", "mahalanobis")
#: JoIN's criterion for ``auto`` precision (``runtime.resolve_precision``'s ``needs``): bfloat16 on
#: any CPU with native bfloat16 (AVX-512 BF16 or AMX), where its generators ran 1.3–1.5× faster
#: (docs/join.md); float32 elsewhere
PRECISION_NEEDS = "bf16"


@dataclass
class JoinParams:
    """Parameters of one JoIN run. Shapes are ``(…, Y, X[, C])`` as for every engine.

    - ``forward``: ``intrinsic`` (I = A·S) or ``flatfield`` (I = F·X + D).
    - ``priors``: ``{component: bundled name or checkpoint path}``; missing ones use the model's
      defaults (albedo/shading; nuclei/illumination).
    - ``steps``: stage-1 steps; ``finetune_steps``: stage-2 steps (0: stage 2 off); ``restarts``.
    - ``lr`` (stage 1, Adam on the latents, with the projector's ramp), ``finetune_lr`` (stage 2).
    - ``distance``: ``mse+lap`` (pixel MSE + Laplacian-pyramid L1) or ``mse``.
    - ``in_domain``: weight of ‖w − w̄‖², one for all components or ``{component: weight}``
      (``None``, or a component left out: the forward model's measured default); ``adversarial``: weight of each discriminator term in
      stage 2 (0: plain fine-tuning); ``support``: support latents per prior in stage 2.
    - ``gamma``: intrinsic only, I_lin = I^gamma (2.2 for sRGB photographs, 1 for linear data).
    - ``darkfield``: flat-field only, ``scalar`` | ``field`` | ``none``.
    - ``per_plane``: flat-field stacks get one field per plane instead of one shared field.
    - ``max_tiles``: flat-field, the most specimen tiles solved at once. A shared field is solved
      on that many tiles spread over the planes and positions (the rest are "not fitted", label 3
      of ``unexplained``); ``per_plane`` downscales the planes until all their tiles fit. The
      field and the corrected specimen always come out at full resolution for every plane.
    - ``stack_weight``: flat-field with a shared field, weight of the stack term: the field must
      also explain the blurred mean of all the planes (of a single plane: the blurred plane). It
      applies only when the tiles leave part of the input unsolved (more tile positions than
      ``max_tiles``: a 512² plane, a stack of 8 × 256²) and the planes show different content
      (not a time-lapse of one field of view); 0 turns it off. ``per_plane`` has no such term.
    - ``stage2_smooth``: what stage 2 does to the smooth components (shading, field): ``weights``
      (fine-tune their generators too), ``latent`` (keep the prior's weights and go on moving the
      latent, with stage 1's learning rate and ramp and its in-domain penalty) or ``frozen``;
      ``auto``: the forward model's choice (intrinsic ``latent``, flat-field ``frozen``).
    - ``in_domain_metric``: how the in-domain penalty measures w − w̄: ``euclidean`` (‖w − w̄‖²),
      ``mahalanobis`` (under the covariance of the prior's mapped latents, rescaled so a typical
      sample scores the same: free along the directions the prior varies in, firm across them), or
      ``auto``: each component's choice (the flat-field's field mahalanobis, the rest euclidean).
    - ``precision``: of the generators in stages 1 and 2: ``auto`` (bfloat16 on a CPU that has
      it natively, else float32), ``float32`` or ``bfloat16``; losses and the final decode are
      float32.
    """

    forward: str = "intrinsic"
    priors: dict[str, str] = field(default_factory=dict)
    steps: int = 300
    finetune_steps: int = 50
    restarts: int = 3
    lr: float = 0.1
    finetune_lr: float = 3e-4
    distance: str = "l1+lap"
    latent: str = "auto"
    probe: float = PROBE_FRACTION
    in_domain: float | dict[str, float] | None = None
    adversarial: float = 1e-3
    support: int = 4
    gamma: float = 1.0
    darkfield: str = "scalar"
    per_plane: bool = False
    max_tiles: int = 8
    stack_weight: float = 0.3
    stage2_smooth: str = "auto"
    in_domain_metric: str = "auto"
    precision: str = "auto"
    seed: int = 0
    preview_every: int = 10
    channel_axis: int | str | None = "auto"

    @classmethod
    def from_any(cls, params: JoinParams | dict[str, Any] | None) -> JoinParams:
        return params_from(cls, params, "JoIN")

    def validate(self) -> None:
        if self.forward not in FORWARD_MODELS:
            raise InputError(
                f"unknown forward model {self.forward!r}: choose one of {', '.join(FORWARD_MODELS)}"
            )
        comps = {c.name for c in FORWARD_MODELS[self.forward].components}
        unknown = set(self.priors or {}) - comps
        if unknown:
            raise InputError(
                f"the {self.forward} model has no component(s) {', '.join(sorted(unknown))}: "
                f"its components are {', '.join(sorted(comps))}"
            )
        if int(self.steps) < 1 or int(self.finetune_steps) < 0:
            raise InputError("steps must be >= 1 and finetune_steps >= 0 (0 turns stage 2 off)")
        if not 1 <= int(self.restarts) <= 16:
            raise InputError(f"restarts must be 1–16, not {self.restarts}")
        if self.latent not in LATENTS:
            raise InputError(f"latent must be one of {', '.join(LATENTS)}, not {self.latent!r}")
        if not 0 < self.probe <= 1:
            raise InputError("probe must be in (0, 1]: the fraction of stage 1 that all restarts run")
        if self.distance not in DISTANCES:
            raise InputError(f"distance must be one of {', '.join(DISTANCES)}, not {self.distance!r}")
        for name in ("lr", "finetune_lr"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be > 0")
        if any(v < 0 for v in self._in_domain_values()) or self.adversarial < 0 or int(self.support) < 0:
            raise InputError("in_domain, adversarial and support must be >= 0")
        if not (self.gamma > 0 and math.isfinite(self.gamma)):
            raise InputError(
                f"gamma must be a positive number (2.2 for sRGB, 1 for linear data), not {self.gamma}"
            )
        if self.darkfield not in ("scalar", "field", "none"):
            raise InputError(f"darkfield must be scalar, field or none, not {self.darkfield!r}")
        if int(self.max_tiles) < 1:
            raise InputError("max_tiles must be >= 1")
        if not (self.stack_weight >= 0 and math.isfinite(self.stack_weight)):
            raise InputError(
                f"stack_weight must be a number >= 0 (0: no stack term), not {self.stack_weight}"
            )
        if int(self.preview_every) < 0:
            raise InputError("preview_every must be >= 0 (0: no preview)")
        if self.stage2_smooth not in STAGE2_SMOOTH:
            raise InputError(
                f"stage2_smooth must be one of {', '.join(STAGE2_SMOOTH)}, not {self.stage2_smooth!r}"
            )
        if self.in_domain_metric not in METRICS:
            raise InputError(
                f"in_domain_metric must be one of {', '.join(METRICS)}, not {self.in_domain_metric!r}"
            )
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")

    def _in_domain_values(self) -> list[float]:
        if self.in_domain is None:
            return []
        return list(self.in_domain.values()) if isinstance(self.in_domain, dict) else [self.in_domain]

    def in_domain_of(self, model: ForwardModel, stacked: bool = False) -> dict[str, float]:
        """The in-domain weight of each of ``model``'s components (``stacked``: the stack term of
        :meth:`ForwardModel.group_loss` is in use, which has its own defaults)."""
        if self.in_domain is not None and not isinstance(self.in_domain, dict):
            return {c.name: float(self.in_domain) for c in model.components}  # one weight for all
        defaults = {c.name: model.in_domain if c.in_domain is None else c.in_domain for c in model.components}
        if stacked:
            defaults.update(model.stack_in_domain)
        return {k: float((self.in_domain or {}).get(k, v)) for k, v in defaults.items()}

    def metric_of(self, model: ForwardModel) -> dict[str, str]:
        """The in-domain metric of each of ``model``'s components: euclidean or mahalanobis."""
        if self.in_domain_metric != "auto":
            return {c.name: self.in_domain_metric for c in model.components}
        return {c.name: c.metric for c in model.components}

    def stage2_smooth_of(self, model: ForwardModel) -> str:
        """What stage 2 does to ``model``'s smooth components: weights, latent or frozen."""
        return model.stage2_smooth if self.stage2_smooth == "auto" else self.stage2_smooth

    def model(self) -> ForwardModel:
        opts: dict[str, Any] = {}
        if self.forward == "intrinsic":
            opts["gamma"] = self.gamma
        elif self.forward == "flatfield":
            opts["darkfield"] = self.darkfield
        return forward_model(self.forward, **opts)


# --------------------------------------------------------------------------------------------
# priors


def _has_noise(gen: Generator) -> bool:
    return any(
        float(m.weight.detach().abs().max()) > 0 for m in gen.modules() if isinstance(m, NoiseInjection)
    )


@torch.no_grad()
def _mapped_w(gen: Generator, n: int = 4096, seed: int = 12345) -> torch.Tensor:
    """``(n, D)`` latents w of ``n`` fixed random z, the sample that w̄ and the whitener describe."""
    z = torch.from_numpy(np.random.default_rng(seed).standard_normal((n, gen.style_dim))).float()
    return gen.mapping(z.to(gen.input.input.device))


def _mean_w(gen: Generator) -> torch.Tensor:
    return _mapped_w(gen).mean(0)


def _w_whitener(gen: Generator, ridge: float = 1e-3) -> torch.Tensor:
    """``(D, D)`` matrix P with ‖P(w − w̄)‖² the Mahalanobis distance of mapped samples, scaled by
    tr(Σ)/D so that a typical sample scores what it scores under ‖w − w̄‖² (only the shape changes:
    weaker along the directions the prior varies in, firmer along those it does not)."""
    cov = torch.cov(_mapped_w(gen).double().T)
    scale = float(torch.diagonal(cov).mean())
    evals, evecs = torch.linalg.eigh(cov + ridge * scale * torch.eye(cov.shape[0], dtype=cov.dtype))
    return ((evecs * (scale / evals).sqrt()) @ evecs.T).float()


# --------------------------------------------------------------------------------------------
# distances and schedules


def _laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    out = []
    for _ in range(levels - 1):
        if min(x.shape[-2:]) < 4:
            break
        down = F.avg_pool2d(x, 2)
        out.append(x - F.interpolate(down, size=x.shape[-2:], mode="bilinear", align_corners=False))
        x = down
    out.append(x)
    return out


def laplacian_distance(a: torch.Tensor, b: torch.Tensor, levels: int = 4) -> torch.Tensor:
    """Per-sample Laplacian-pyramid L1 distance of ``(B, C, H, W)`` tensors → ``(B,)``; each level
    weighted by 2^level (coarse levels hold fewer pixels), so edges and structure count, not
    only the mean intensity."""
    total = torch.zeros(a.shape[0], device=a.device)
    for i, (pa, pb) in enumerate(zip(_laplacian_pyramid(a, levels), _laplacian_pyramid(b, levels))):
        total = total + (2.0**i) * (pa - pb).abs().mean((1, 2, 3))
    return total


def _distance(recon: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "l1+lap":
        return 0.1 * (recon - target).abs().mean((1, 2, 3)) + 0.1 * laplacian_distance(recon, target)
    mse = (recon - target).square().mean((1, 2, 3))
    return mse + 0.1 * laplacian_distance(recon, target) if kind == "mse+lap" else mse


def projector_lr(t: float, base: float) -> float:
    """The StyleGAN2 projector's schedule at progress ``t`` ∈ [0, 1]: cosine ramp-down over the
    last 25 %, linear ramp-up over the first 5 %."""
    ramp = min(1.0, (1.0 - t) / 0.25)
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    return base * ramp * min(1.0, t / 0.05)


def _noise_reg(noises: list[torch.Tensor]) -> torch.Tensor:
    """The StyleGAN2 projector's noise regulariser: squared autocorrelation at every octave."""
    reg = torch.zeros(())
    for n in noises:
        while True:
            reg = (
                reg
                + (n * torch.roll(n, 1, dims=3)).mean().square()
                + (n * torch.roll(n, 1, dims=2)).mean().square()
            )
            if n.shape[-1] <= 8:
                break
            n = F.avg_pool2d(n, 2)
    return reg


# --------------------------------------------------------------------------------------------
# the problem: planes → working tiles


@dataclass
class _Slot:
    """One prior's part of the problem: ``count`` instances (tiles or groups)."""

    comp: Any
    gen: Generator
    disc: Discriminator | None
    label: str
    w_mean: torch.Tensor
    noise: bool


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
    n: int, hy: int, hx: int, tile: int, forward: str, p: JoinParams
) -> tuple[list[int], tuple[int, int], list[Tile], list[tuple[int, Tile]]]:
    """What a run solves for ``n`` planes of ``hy × hx`` with local tiles of ``tile``: the group of
    each plane, the working (Y, X), the tile positions, and the ``(plane, tile)`` pairs solved."""
    shared_field = forward == "flatfield" and not p.per_plane
    if shared_field:
        # the specimen stays at the prior's own scale (a downscaled specimen is out of its domain);
        # a field shared by every plane and tile only needs tiles that cover the plane evenly
        groups = [0] * n
        wh, ww = _work_size(hy, hx, 1, tile, COVERAGE * int(p.max_tiles))
    elif forward == "flatfield":
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
    from ..models import card

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
    return len(_solve_plan(layout.n_planes, hy, hx, tile, model.name, p)[3]), tile


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
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.shape[-2] > size[0] and not smooth:  # shrinking: area averaging (anti-aliased)
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="bicubic" if smooth else "bilinear", align_corners=False)


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


# --------------------------------------------------------------------------------------------
# run


def run(
    image: np.ndarray,
    params: JoinParams | dict[str, Any] | None = None,
    *,
    device: str | torch.device = "auto",
    cancel: Callable[[], bool] | None = None,
) -> EngineRun:
    """Decompose ``image``; a generator of :class:`Progress` that returns a :class:`Result`.

    ``image``: ``(Y, X)``, RGB ``(Y, X, 3)`` (intrinsic) or a stack ``(Z|T, Y, X)``; uint8, uint16 or
    float, no NaN, values >= 0 (flat-field: any, the dark offset absorbs them). Each side must be
    at least the local prior's size (64 for albedo, 128 for nuclei).

    Output layers (float32): intrinsic ``albedo`` ((…, Y, X[, 3]), ≈ [0, 1]) and ``shading``
    ((…, Y, X), [0, 1]) whose product is the linearised image over its maximum; flat-field
    ``corrected`` (image units), ``flatfield`` (mean 1; one 2-D field when shared) and
    ``darkfield`` (image units); both ``reconstruction`` and ``residual`` (input units) and a
    Labels layer ``unexplained`` (1: residual beyond 4 robust σ, 2: saturated input, 3: a tile
    that was not solved — a shared field solved on other tiles; there the reconstruction is the
    input and the residual 0).
    """
    p = JoinParams.from_any(params)
    p.validate()
    model = p.model()
    arr = check_image(image)
    ch = guess_channel_axis(arr.shape) if p.channel_axis == "auto" else p.channel_axis
    layout = PlaneLayout(arr.shape, ch)
    c = layout.n_channels
    if c not in model.image_channels:
        if model.name == "flatfield":
            raise InputError(
                f"flat-field correction works on one channel; this image has {c}: split the channels "
                "(each channel has its own illumination) and correct them one by one"
            )
        raise InputError(
            f"the intrinsic model takes grey or RGB images, not {c} channels: drop the alpha channel"
        )
    if p.per_plane and layout.n_planes < 2:
        raise InputError(
            "per_plane asks for one field per plane, but this image has a single plane: turn per_plane off "
            "(a single image has one field anyway)"
        )
    slots = {}
    for comp in model.components:
        gen, disc, label = load_component_prior((p.priors or {}).get(comp.name, comp.prior), comp.name)
        if comp.smooth and gen.image_channels != 1:
            raise InputError(
                f"the {comp.name} prior {label!r} makes {gen.image_channels}-channel images; {comp.name} is a grey "
                "field: choose a grey prior (e.g. the bundled "
                f"{comp.prior!r})"
            )
        if model.name == "flatfield" and gen.image_channels != 1:
            raise InputError(
                f"the specimen prior {label!r} makes colour images; flat-field correction needs a grey prior "
                "(e.g. the bundled 'nuclei', or one trained with `train gan` on your images)"
            )
        slots[comp.name] = _Slot(comp, gen, disc, label, _mean_w(gen), _has_noise(gen))
    local = [s for s in slots.values() if not s.comp.smooth]
    tile = max(s.gen.size for s in local)
    hy, hx = layout.spatial_shape
    if hy < tile or hx < tile:
        raise InputError(
            f"the image is {hy}×{hx} pixels, smaller than the {local[0].label!r} prior ({tile}×{tile}) it is "
            f"explained with: give an image of at least {tile}×{tile}, or choose a prior trained at a smaller size"
        )
    if p.finetune_steps > 0 and p.adversarial > 0:
        missing = [s.label for s in slots.values() if s.disc is None]
        if missing:
            raise InputError(
                f"stage 2 keeps the generators near their priors with each prior's discriminator, but "
                f"{', '.join(missing)} carries none: add one with `napari-genprior train disc --prior ... "
                "--export`, or set adversarial 0 (plain fine-tuning), or finetune_steps 0"
            )
    dev = resolve_device(device)
    return _execute(arr, p, model, layout, slots, tile, dev, cancel)


def _execute(
    arr: np.ndarray,
    p: JoinParams,
    model: ForwardModel,
    layout: PlaneLayout,
    slots: dict[str, _Slot],
    tile: int,
    dev: torch.device,
    cancel: Callable[[], bool] | None,
) -> EngineRun:
    t0 = time.perf_counter()
    warnings: list[str] = []
    planes = layout.to_planes(arr).astype(np.float64)  # (N, C, H, W)
    n, c, hy, hx = planes.shape
    # multiplicative models: scale only, never shift (a shift would change the composition)
    top = 255.0 if arr.dtype == np.uint8 else float(np.max(np.abs(planes))) or 1.0
    x_full = torch.from_numpy((planes / top).astype(np.float32))
    if model.name == "intrinsic" and float(x_full.min()) < 0:
        warnings.append("negative values were set to 0: a product of albedo and shading cannot be negative")
        x_full = x_full.clamp_min(0)
    if model.name == "intrinsic" and c == 1 and slots["albedo"].gen.image_channels == 3:
        warnings.append("grey image: the colour albedo prior's grey (the mean of its channels) is used")
    lin_full = model.linearise(x_full)
    groups, (wh, ww), plan, tiles = _solve_plan(n, hy, hx, tile, model.name, p)
    n_groups = max(groups) + 1
    work = _resize(lin_full, (wh, ww))  # (N, C, wh, ww)
    target = torch.stack([work[i][:, t.ys, t.xs] for i, t in tiles]).to(dev)  # (T, C, P, P)
    tile_group = [groups[i] for i, _ in tiles]
    n_tiles = len(tiles)
    r_all = int(p.restarts)
    gen_rng = np.random.default_rng(p.seed)

    # latents: (R, count, n_latent, D) per slot; count = tiles (local) or groups (smooth)
    counts = {k: (n_groups if s.comp.smooth else n_tiles) for k, s in slots.items()}
    lat, w_means, whiten = {}, {}, {}
    metrics = p.metric_of(model)
    for k, s in slots.items():
        g = s.gen.to(dev)
        w0 = s.w_mean.to(dev)
        z = torch.from_numpy(gen_rng.standard_normal((r_all * counts[k], g.style_dim))).float().to(dev)
        with torch.no_grad():
            wz = w0 + RESTART_PSI * (g.mapping(z) - w0)
        space = p.latent if p.latent != "auto" else s.comp.latent
        wz = wz.view(r_all, counts[k], 1, -1).repeat(1, 1, g.n_latent if space == "w+" else 1, 1)
        wz[0] = w0  # restart 0: the mean latent, as in the JoIN code
        lat[k] = wz.clone().requires_grad_(True)
        w_means[k] = w0
        if metrics[k] == "mahalanobis":
            whiten[k] = _w_whitener(g).to(dev)
    extra0 = model.init_extra(n_groups, work)
    extra = {
        k: v[None].repeat(r_all, *([1] * v.ndim)).to(dev).requires_grad_(True) for k, v in extra0.items()
    }
    noises: dict[str, list[torch.Tensor]] = {}
    for k, s in slots.items():
        if s.noise:
            noises[k] = [
                torch.randn(r_all * counts[k], 1, *b.shape[-2:], device=dev).requires_grad_(True)
                for b in s.gen.noise_buffers()
            ]

    def decode(
        gens: dict[str, Generator], lat_: dict[str, torch.Tensor], ex: dict[str, torch.Tensor], r: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(reconstruction (r·T, C, P, P), working components, raw generator outputs)."""
        parts, raw = {}, {}
        for k, s in slots.items():
            w = lat_[k].reshape(-1, *lat_[k].shape[2:])
            w = w.expand(-1, s.gen.n_latent, -1) if w.shape[1] == 1 else w
            nz = [nn.reshape(-1, *nn.shape[1:]) for nn in noises[k]] if k in noises else "fixed"
            out = gens[k](w_plus=w, noise=nz)
            raw[k] = out
            comp = model.component(s.comp, out, c)
            if s.comp.smooth:  # a field per group over the working plane, cropped to each tile
                field_ = _resize(comp, (wh, ww), smooth=True).view(r, n_groups, comp.shape[1], wh, ww)
                crops = [field_[:, g_][:, :, t.ys, t.xs] for g_, (_, t) in zip(tile_group, tiles)]
                comp = torch.stack(crops, 1).reshape(r * n_tiles, comp.shape[1], tile, tile)
            elif comp.shape[-1] != tile:
                comp = _resize(comp, (tile, tile))
            parts[k] = comp
        flat_ex = {k: v.reshape(-1, *v.shape[2:]) for k, v in ex.items()}
        grp = torch.tensor([ri * n_groups + g_ for ri in range(r) for g_ in tile_group], device=dev)
        return model.compose(parts, flat_ex, grp), parts, raw

    def preview(recon: torch.Tensor) -> np.ndarray:
        blend = TileBlender((c, wh, ww))
        for j, (i, t) in enumerate(tiles):
            if i == 0:
                blend.add(t, recon[j].detach().float().cpu().numpy())
        est = np.where(blend.wacc > 0, blend.acc / np.maximum(blend.wacc, 1e-12), work[0].numpy())
        up = _resize(torch.from_numpy(est)[None], (hy, hx))[0].numpy()
        if model.name == "intrinsic" and p.gamma != 1:
            up = np.clip(up, 0, None) ** (1 / p.gamma)
        return layout.plane_view(up * top).astype(np.float32)

    gens = {k: s.gen for k, s in slots.items()}
    total = int(p.steps) + int(p.finetune_steps)
    params_ = [*lat.values(), *extra.values(), *(t for v in noises.values() for t in v)]
    opt = torch.optim.Adam(params_, lr=p.lr, betas=(0.9, 0.999))
    probe = max(1, int(round(p.probe * p.steps))) if r_all > 1 and p.probe < 1 else -1
    r = r_all
    restart_losses: list[float] = []
    target_r = target.repeat(r, 1, 1, 1)
    rec_loss = torch.zeros(r)
    # the stack term only where the tiles leave some of the stack unsolved: then the mean plane brings
    # the planes the tiles miss; with every tile solved it only repeats the data, blurred and biased
    # (no offset, specimen left in the mean), and measured worse than the tiles alone (docs/join.md)
    partial = n_tiles < n * len(plan)
    stats = model.group_stats(lin_full, groups) if p.stack_weight > 0 and partial else None
    if stats is not None and not bool(stats["valid"].any()):
        warnings.append(
            "the planes show the same content (a time-lapse or z-stack of one field of view?), so their "
            "mean is no estimate of the field: the stack term is off, the field comes from the tiles alone"
        )
        stats = None
    in_domain = p.in_domain_of(model, stacked=stats is not None)

    def in_domain_loss(lat_: dict[str, torch.Tensor], keys: Iterable[str]) -> torch.Tensor:
        """Σ over ``keys`` of weight · ‖w − w̄‖² (mean over a latent's entries; whitened for a
        mahalanobis component), summed over restarts."""
        terms = [
            in_domain[k]
            * ((lat_[k] - w_means[k]) @ whiten[k] if k in whiten else lat_[k] - w_means[k])
            .square()
            .mean((1, 2, 3))
            .sum()
            for k in keys
            if in_domain[k] > 0
        ]
        return sum(terms, torch.zeros((), device=dev))

    stack_mis = None
    smooth_keys = [k for k, s in slots.items() if s.comp.smooth]
    for step in range(1, int(p.steps) + 1):
        check_cancel(cancel)
        for group_ in opt.param_groups:
            group_["lr"] = projector_lr((step - 1) / p.steps, p.lr)
        with autocast(p.precision, dev, needs=PRECISION_NEEDS):
            recon, _, raw = decode(gens, lat, extra, r)
        recon = recon.float()
        # the mean over tiles: the in-domain penalty then weighs the same for 1 tile or 8 (with a sum,
        # more tiles meant a weaker prior and the shared field drifted off the prior's domain)
        rec_loss = _distance(recon, target_r, p.distance).view(r, n_tiles).mean(1)
        loss = rec_loss.sum()
        if stats is not None:
            sm = {
                k: model.component(slots[k].comp, raw[k].float(), c).view(r, n_groups, -1, *raw[k].shape[-2:])
                for k in smooth_keys
            }
            stack_mis = model.group_loss(sm, stats)
            loss = loss + p.stack_weight * stack_mis.sum()
        loss = loss + in_domain_loss(lat, slots)
        for v in noises.values():
            loss = loss + 1e5 * _noise_reg(v)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            for v in noises.values():  # keep the noise maps unit-variance, as the projector does
                for t_ in v:
                    t_.sub_(t_.mean((1, 2, 3), keepdim=True)).div_(t_.std((1, 2, 3), keepdim=True) + 1e-8)
        if step == probe:
            restart_losses = [round(float(v), 6) for v in rec_loss.detach()]
            best = int(torch.argmin(rec_loss.detach()))
            lat, extra, noises, opt = _keep_restart(opt, lat, extra, noises, best, r)
            r = 1
            target_r = target
        show = p.preview_every and (step % p.preview_every == 0 or step == p.steps)
        yield Progress(
            step,
            total,
            float(rec_loss.detach().min()),
            preview(recon[:n_tiles] if r == 1 else recon.view(-1, n_tiles, *recon.shape[1:])[0])
            if show
            else None,
            "stage 1: latents" + (f" · {r} restarts" if r > 1 else ""),
            loss_label="distance",
        )
    if r > 1:  # fewer steps than the probe: keep the best now
        restart_losses = [round(float(v), 6) for v in rec_loss.detach()]
        best = int(torch.argmin(rec_loss.detach()))
        lat, extra, noises, opt = _keep_restart(opt, lat, extra, noises, best, r)
    stage1 = float(rec_loss.detach().min())
    lat = {k: v.detach() for k, v in lat.items()}
    extra = {k: v.detach() for k, v in extra.items()}
    noises = {k: [t_.detach() for t_ in v] for k, v in noises.items()}
    stage2 = None
    if p.finetune_steps > 0:
        gens, lat = yield from _finetune(
            p,
            model,
            slots,
            gens,
            lat,
            in_domain_loss,
            decode,
            extra,
            target,
            n_tiles,
            total,
            dev,
            cancel,
            preview,
        )
    with torch.no_grad():
        recon, _, raw = decode(gens, lat, extra, 1)
        if p.finetune_steps > 0:
            stage2 = float(_distance(recon, target, p.distance).sum()) / n_tiles
    return _assemble(
        arr,
        p,
        model,
        layout,
        slots,
        gens,
        lat,
        extra,
        recon,
        raw,
        tiles,
        plan,
        groups,
        (wh, ww),
        top,
        lin_full,
        {
            "stage1": stage1,
            "stage2": stage2,
            "restarts": restart_losses,
            # the stack term's misfit (0: the field explains the blurred mean plane; ~1: flat)
            "stack": None if stack_mis is None else round(float(stack_mis.detach().min()), 6),
        },
        warnings,
        dev,
        t0,
    )


def _keep_restart(opt, lat, extra, noises, best, r):
    """Keep restart ``best`` of ``r``: new leaf tensors and the Adam state sliced to it."""
    old = [*lat.values(), *extra.values(), *(t for v in noises.values() for t in v)]
    state = [opt.state.get(t, {}) for t in old]

    def pick(t: torch.Tensor, per_r: bool) -> torch.Tensor:
        return (t.detach()[best : best + 1] if per_r else t.detach().view(r, -1, *t.shape[1:])[best]).clone()

    lat2 = {k: pick(v, True).requires_grad_(True) for k, v in lat.items()}
    ex2 = {k: pick(v, True).requires_grad_(True) for k, v in extra.items()}
    nz2 = {k: [pick(t, False).requires_grad_(True) for t in v] for k, v in noises.items()}
    new = [*lat2.values(), *ex2.values(), *(t for v in nz2.values() for t in v)]
    opt2 = torch.optim.Adam(new, lr=opt.param_groups[0]["lr"], betas=(0.9, 0.999))
    for t_old, t_new, st in zip(old, new, state):
        if st:
            per_r = t_old.shape[0] == r and t_new.shape[0] == 1
            opt2.state[t_new] = {
                "step": st["step"].clone() if torch.is_tensor(st["step"]) else st["step"],
                "exp_avg": pick(st["exp_avg"], per_r),
                "exp_avg_sq": pick(st["exp_avg_sq"], per_r),
            }
    return lat2, ex2, nz2, opt2


def _finetune(
    p,
    model,
    slots,
    gens,
    lat,
    in_domain_loss,
    decode,
    extra,
    target,
    n_tiles,
    total,
    dev,
    cancel,
    preview,
):
    """Stage 2: fine-tune copies of the generators' synthesis weights around the frozen pivots.
    A smooth component in ``latent`` mode keeps its prior's weights and goes on moving its latent
    (with its in-domain penalty) instead. Returns (generators, latents)."""
    mode = p.stage2_smooth_of(model)
    tuned_keys = [k for k in gens if mode == "weights" or not slots[k].comp.smooth]
    moved = [k for k in gens if mode == "latent" and slots[k].comp.smooth]
    tuned = {k: copy.deepcopy(g) if k in tuned_keys else g for k, g in gens.items()}
    lat = {k: v.clone().requires_grad_(True) if k in moved else v for k, v in lat.items()}
    params_ = []
    for k in tuned_keys:
        for name, t in tuned[k].named_parameters():
            t.requires_grad_(not name.startswith("style."))  # the mapping network stays the prior's
            if t.requires_grad:
                params_.append(t)
    groups = [{"params": params_}]
    if moved:
        groups.append({"params": [lat[k] for k in moved], "lr": p.lr})
    opt = torch.optim.Adam(groups, lr=p.finetune_lr, betas=(0.9, 0.999))
    rng = np.random.default_rng(p.seed + 1)
    for step in range(1, int(p.finetune_steps) + 1):
        check_cancel(cancel)
        if moved:  # the moving latent gets stage 1's ramp, so it settles by the end
            opt.param_groups[1]["lr"] = projector_lr((step - 1) / p.finetune_steps, p.lr)
        with autocast(p.precision, dev, needs=PRECISION_NEEDS):
            recon, _, raw = decode(tuned, lat, extra, 1)
        recon = recon.float()
        rec = _distance(recon, target, p.distance).sum()
        loss = rec
        # stage 2's data term sums over tiles (stage 1's is the mean): the same balance needs × n_tiles
        loss = loss + n_tiles * in_domain_loss(lat, moved)
        if p.adversarial > 0:
            for k in tuned_keys:
                s, g = slots[k], tuned[k]
                piv = lat[k].reshape(-1, *lat[k].shape[2:])
                piv = piv.expand(-1, g.n_latent, -1) if piv.shape[1] == 1 else piv
                with autocast(p.precision, dev, needs=PRECISION_NEEDS):
                    d_piv = s.disc(raw[k])
                adv = F.softplus(-d_piv.float()).mean()
                if p.support > 0:
                    idx = torch.from_numpy(rng.integers(0, piv.shape[0], int(p.support)))
                    z = torch.from_numpy(rng.standard_normal((int(p.support), g.style_dim))).float().to(dev)
                    with torch.no_grad():
                        wz = g.mapping(z)[:, None]
                    sup = 0.9 * piv[idx] + 0.1 * wz
                    with autocast(p.precision, dev, needs=PRECISION_NEEDS):
                        d_sup = s.disc(g(w_plus=sup))
                    adv = adv + F.softplus(-d_sup.float()).mean()
                loss = loss + p.adversarial * adv
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        show = p.preview_every and (step % p.preview_every == 0 or step == p.finetune_steps)
        yield Progress(
            int(p.steps) + step,
            total,
            float(rec.detach()) / n_tiles,
            preview(recon) if show else None,
            "stage 2: fine-tuning",
            loss_label="distance",
        )
    for k in tuned_keys:
        tuned[k].requires_grad_(False).eval()
    return tuned, {k: v.detach() for k, v in lat.items()}


def _assemble(
    arr,
    p,
    model,
    layout,
    slots,
    gens,
    lat,
    extra,
    recon,
    raw,
    tiles,
    plan,
    groups,
    work_hw,
    top,
    lin_full,
    losses,
    warnings,
    dev,
    t0,
) -> Result:
    """Bring the solution to full resolution and build the output layers."""
    n, c, hy, hx = lin_full.shape
    wh, ww = work_hw
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
    for i in range(n):
        g_ = groups[i]
        sm = {k: v[g_] for k, v in smooth_full.items()}
        ex: dict[str, Any] = {}
        if model.name == "flatfield":
            ex["dark"] = model.dark_map({k: v[0] for k, v in extra.items()}, g_, (hy, hx))
        res = model.full_resolution(lin[i], sm, ex)
        for name, v in res.items():
            outs[name].append(v)
    shared = model.name == "flatfield" and n_groups == 1 and n > 1
    layers: list[OutputLayer] = []

    def put(
        name: str, planes_: list[np.ndarray], scale_units: bool, grey: bool, kwargs: dict[str, Any]
    ) -> None:
        a = np.stack(planes_).astype(np.float32)  # (N, C', H, W)
        if scale_units:
            a = a * np.float32(top)
        if grey or a.shape[1] == 1:
            a = a[:, :1]
            out = a.reshape(*layout.lead_shape, hy, hx) if a.shape[0] == n else a.reshape(hy, hx)
        else:
            out = layout.from_planes(a)
        layers.append(OutputLayer(np.ascontiguousarray(out, np.float32), name, "image", 1.0, kwargs))

    if model.name == "intrinsic":
        put("albedo", outs["albedo"], False, False, {"contrast_limits": [0.0, 1.0]})
        put(
            "shading",
            outs["shading"],
            False,
            True,
            {"colormap": "gray", "contrast_limits": [0.0, 1.0], "rgb": False},
        )
    else:
        put("corrected", outs["corrected"], True, True, {})
        ff = outs["flatfield"][:1] if shared else outs["flatfield"]
        df = outs["darkfield"][:1] if shared else outs["darkfield"]
        lo_, hi_ = float(np.min(ff)), float(np.max(ff))
        put(
            "flatfield",
            ff,
            False,
            True,
            {"colormap": "inferno", "contrast_limits": [lo_, max(hi_, lo_ + 1e-3)], "rgb": False},
        )
        if shared:
            layers[-1].data = layers[-1].data.reshape(hy, hx)
        put("darkfield", df, True, True, {"colormap": "gray", "rgb": False})
        if shared:
            layers[-1].data = layers[-1].data.reshape(hy, hx)
    rec = (
        np.clip(rec_full, 0, None) ** (1 / p.gamma)
        if model.name == "intrinsic" and p.gamma != 1
        else rec_full
    )
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
        "device": str(dev),
        "precision_used": resolve_precision(p.precision, dev, needs=PRECISION_NEEDS),
        "stage2_smooth_used": p.stage2_smooth_of(model) if p.finetune_steps > 0 else None,
        "in_domain_metric_used": p.metric_of(model),
        "channel_axis": layout.channel_axis,
        "work_size": [wh, ww],
        "tiles": len(tiles),
        "fitted_fraction": round(float(fitted.mean()), 4),
        "tile_size": plan[0].ys.stop - plan[0].ys.start,
        "shared_field": bool(shared or (model.name == "flatfield" and n == 1)),
        "losses": losses,
        "intensity_scale": top,
        "wall_time_s": round(time.perf_counter() - t0, 3),
    }
    if model.name == "flatfield":
        meta["gain"] = [round(float(v), 5) for v in extra["log_gain"][0].exp()]
    if warnings:
        meta["warnings"] = warnings
    return Result(layers, meta)
