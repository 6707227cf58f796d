"""Deep Image Prior (Ulyanov, Vedaldi, Lempitsky, CVPR 2018): restore one image by fitting an
untrained hourglass network to it. Tasks: ``denoise``, ``inpaint`` and ``sr`` (×2/×4/×8).
Denoising runs the collaborative block-matching filter by default (``method="auto"``), the network
with ``method="dip"``.

Pure torch + numpy. Usage (``dip`` and ``drive`` come from ``napari_genprior.engines``)::

    result = drive(dip.run(noisy, {"task": "denoise", "method": "dip", "iterations": 300}))
    restored = result.layers[0].data          # same shape, dtype and range as ``noisy``

The package: :mod:`.params` (presets, parameters), :mod:`.stopping` (automatic stopping rules),
:mod:`.fit` (fitting one plane), :mod:`.execute` (a whole run: planes, tiles, the result).
"""

from __future__ import annotations

from ..tiling import Tile, TileBlender, tile_plan
from .execute import run, tiles_for
from .fit import AVG_RAMP, build_net
from .params import (
    CONVERGED_STEPS,
    DEFAULT_TILE,
    METHODS,
    NOISE_MODELS,
    PRESETS,
    SCALES,
    TASKS,
    DIPParams,
    guess_noise_model,
    preset_iterations,
    resolve_config,
    resolve_precision,
)
from .stopping import AUTO_OVERFIT, AUTO_TOLERANCE, AUTO_WHITENESS, MovingWindow, residual_correlation

__all__ = [
    "AUTO_OVERFIT",
    "AUTO_TOLERANCE",
    "AUTO_WHITENESS",
    "AVG_RAMP",
    "CONVERGED_STEPS",
    "DEFAULT_TILE",
    "DIPParams",
    "METHODS",
    "MovingWindow",
    "NOISE_MODELS",
    "PRESETS",
    "SCALES",
    "TASKS",
    "Tile",
    "TileBlender",
    "build_net",
    "guess_noise_model",
    "preset_iterations",
    "residual_correlation",
    "resolve_config",
    "resolve_precision",
    "run",
    "tile_plan",
    "tiles_for",
]
