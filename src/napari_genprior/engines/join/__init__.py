"""JoIN (Shah, Lazebnik, Philip 2023): split an image into components by jointly inverting one GAN
prior per component through a forward model (``physics.composition``).

- **Stage 1**, joint latent optimisation (:mod:`.stage1`): one W+ latent per prior instance,
  initialised at w̄ (the mean of mapped samples) — restart 0 — or at truncated samples (ψ = 0.7)
  for the other restarts; loss = reconstruction distance + in-domain penalty ‖w − w̄‖² (+ the noise
  regulariser when a prior has noise inputs); Adam with the StyleGAN2 projector's learning-rate
  ramp. All restarts run as one batch for the first fifth of the steps; the best one continues
  alone.
- **Stage 2**, generator fine-tuning (PTI, :mod:`.stage2`): the latents are frozen as pivots and
  the synthesis weights of every generator are fine-tuned jointly, kept near their priors by each
  prior's frozen discriminator (non-saturating term on the pivot and on support latents
  0.9·pivot + 0.1·w(z)).
- **Scale** (:mod:`.plan`): the solve runs at the priors' scale. Intrinsic: each plane is resized
  to the albedo prior's size. Flat-field: tiles of the specimen prior's size, all sharing one
  illumination latent per group. A shared field is solved on at most ``max_tiles`` tiles at the
  prior's own scale (a downscaled specimen is out of its domain), spread over the tile positions
  and the planes; only planes with more than ``COVERAGE · max_tiles`` positions are downscaled.
  With ``per_plane`` every tile of every plane is solved, downscaled to fit ``max_tiles``. At full
  resolution (:mod:`.assemble`), smooth fields are resized and the other component is recomputed
  from the input: A = I / S, X = (I − D) / F.
- **Stacks**: flat-field shares one field, gain and dark offset across the planes (``per_plane``
  turns that off); intrinsic decomposes plane by plane.

Parameters and constants live in :mod:`.params`, distances in :mod:`.losses`, the latents and the
in-domain penalty in :mod:`.latents`. Pure torch + numpy.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

# ``X as X``: a name the one-module join.py had, re-exported for code and tests that reach it as
# ``join.X``
from ...imaging import PlaneLayout, check_image, guess_channel_axis
from ...models.load import load_component_prior
from ..base import EngineRun, InputError, OutputLayer, Progress, check_cancel, resolve_device
from ..base import Result as Result
from .assemble import DISPLAY as DISPLAY
from .assemble import _assemble, unexplained_mask
from .latents import InDomainLoss as InDomainLoss
from .latents import _has_noise, _mean_w, _Slot
from .latents import _mapped_w as _mapped_w
from .latents import _w_whitener as _w_whitener
from .losses import _distance, laplacian_distance
from .losses import _laplacian_pyramid as _laplacian_pyramid
from .losses import _noise_reg as _noise_reg
from .losses import projector_lr as projector_lr
from .params import COVERAGE as COVERAGE
from .params import DISTANCES, JoinParams
from .params import LATENTS as LATENTS
from .params import METRICS as METRICS
from .params import PRECISION_NEEDS as PRECISION_NEEDS
from .params import PROBE_FRACTION as PROBE_FRACTION
from .params import RESTART_PSI as RESTART_PSI
from .params import STACK_METHODS as STACK_METHODS
from .params import STAGE2_SMOOTH as STAGE2_SMOOTH
from .params import UNEXPLAINED_K as UNEXPLAINED_K
from .plan import STEP_SECONDS as STEP_SECONDS
from .plan import TILE_STEP_SECONDS as TILE_STEP_SECONDS
from .plan import Problem, Setup, rough_seconds, tiles_for
from .plan import _file_prior_size as _file_prior_size
from .plan import _pick_tiles as _pick_tiles
from .plan import _prior_size as _prior_size
from .plan import _resize as _resize
from .plan import _solve_plan as _solve_plan
from .plan import _tiles as _tiles
from .plan import _work_size as _work_size
from .stack import execute_statistics, uses_statistics
from .stage1 import JointSolver
from .stage2 import _finetune

__all__ = [
    "DISTANCES",
    "JoinParams",
    "laplacian_distance",
    "load_component_prior",
    "prepare",
    "rough_seconds",
    "run",
    "tiles_for",
    "unexplained_mask",
]


def prepare(
    image: np.ndarray,
    params: JoinParams | dict[str, Any] | None = None,
    *,
    device: str | torch.device = "auto",
) -> Setup:
    """Check ``image`` (as :func:`run` takes it) and ``params``, load the priors and resolve the
    device: everything that can fail on bad input, before any work. Raises :class:`InputError`."""
    p = JoinParams.from_any(params)
    p.validate()
    model = p.model()
    arr = check_image(image)
    ch = guess_channel_axis(arr.shape) if p.channel_axis == "auto" else p.channel_axis
    layout = PlaneLayout(arr.shape, ch)
    c = layout.n_channels
    if c not in model.image_channels:
        raise InputError(model.channels_problem(c))
    if p.per_plane and layout.n_planes < 2:
        raise InputError(
            "per_plane asks for one field per plane, but this image has a single plane: turn per_plane off "
            "(a single image has one field anyway)"
        )
    slots = {}
    for comp in model.components:
        gen, disc, label = load_component_prior((p.priors or {}).get(comp.name, comp.prior), comp.name)
        problem = model.prior_problem(comp, gen.image_channels, label)
        if problem is not None:
            raise InputError(problem)
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
    return Setup(arr, p, model, layout, slots, tile, resolve_device(device))


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
    # checked now, so bad input fails at the call; the work starts at the first step
    return _solve(prepare(image, params, device=device), cancel)


def _solve(setup: Setup, cancel: Callable[[], bool] | None) -> EngineRun:
    """The run ``setup`` asks for: a flat-field stack by its statistics, anything else by the priors."""
    statistics, note = uses_statistics(setup)
    notes = [note] if note else []
    return execute_statistics(setup, cancel, notes) if statistics else _execute(setup, cancel, notes)


def _execute(setup: Setup, cancel: Callable[[], bool] | None, notes: list[str] | None = None) -> EngineRun:
    """The run itself: stage 1, stage 2 (when ``finetune_steps`` > 0), the final decode at float32
    and the full-resolution result. ``notes`` join the run's warnings."""
    p = setup.p
    prob = Problem.build(setup)
    prob.warnings.extend(notes or [])
    solver = JointSolver(prob)
    yield from solver.solve(cancel)
    if p.finetune_steps > 0:
        solver.gens, solver.lat = yield from _finetune(solver, cancel)
    with torch.no_grad():
        recon, _, raw = solver.decode(solver.gens, solver.lat, solver.extra, 1)
        if p.finetune_steps > 0:
            stage2 = float(_distance(recon, solver.prob.target, p.distance).sum()) / solver.n_tiles
            solver.losses["stage2"] = stage2
    return _assemble(solver, recon, raw)


#: The most planes of a lazy stack (read plane by plane) that a shared field is solved on.
LAZY_SOLVE_PLANES = 16


def run_lazy_stack(
    data: Any,
    params: JoinParams | dict[str, Any] | None = None,
    *,
    device: str | torch.device = "auto",
    cancel: Callable[[], bool] | None = None,
    max_planes: int = LAZY_SOLVE_PLANES,
) -> EngineRun:
    """Flat-field correction of a lazy stack ``(N, Y, X)`` (dask, zarr) sharing one field, never
    loaded whole: the field and dark-field are solved on at most ``max_planes`` evenly spaced planes
    (as BaSiC samples large stacks), then every plane is read and corrected, ``(I − D) / F``, one at
    a time. Outputs: ``corrected`` (N, Y, X), ``flatfield`` and ``darkfield`` (Y, X); the
    reconstruction, residual and unexplained layers describe the solved planes only, so they are
    left out. Input errors are raised here, before any work.
    """
    p = JoinParams.from_any(params)
    if p.forward != "flatfield" or p.per_plane or len(data.shape) != 3:
        raise InputError(
            "a stack read plane by plane shares one field only in flat-field mode on an (N, Y, X) "
            "stack; for per-plane fields or intrinsic runs, each plane is run on its own"
        )
    n = int(data.shape[0])
    picks = sorted({int(round(v)) for v in np.linspace(0, n - 1, min(n, max_planes))})
    sample = np.stack([np.asarray(data[i]) for i in picks])
    setup = prepare(sample, dataclasses.replace(p, channel_axis=None), device=device)
    return _lazy_stack(setup, data, picks, cancel)


def _lazy_stack(setup: Setup, data: Any, picks: list[int], cancel: Callable[[], bool] | None) -> EngineRun:
    solved = yield from _solve(setup, cancel)
    field = solved.layer("flatfield").data
    dark = solved.layer("darkfield").data
    field, dark = field.reshape(field.shape[-2:]), np.broadcast_to(dark, field.shape[-2:])
    n = int(data.shape[0])
    corrected = np.empty((n, *field.shape), np.float32)
    for i in range(n):
        check_cancel(cancel)
        corrected[i] = (np.asarray(data[i], np.float32) - dark) / field
        yield Progress(step=i + 1, total=n, loss=float("nan"), part="correcting", loss_label="")
    meta = dict(solved.metadata)
    meta["planewise"] = {
        "planes": n,
        "solved_on_planes": picks,
        "note": "field solved on the listed planes; every plane read and corrected one at a time",
    }
    kw = solved.layer("corrected").kwargs
    layers = [
        OutputLayer(corrected, "corrected", "image", 1.0, dict(kw)),
        solved.layer("flatfield"),
        solved.layer("darkfield"),
    ]
    return Result(layers, meta)
