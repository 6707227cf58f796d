"""DIP's parameters: the presets, their per-task and per-scale settings, and the user's overrides.

What each tuned value rests on (the measurements) is in docs/dip.md, "Presets and time".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ... import runtime
from ..base import InputError, params_from
from .stopping import auto_stop_settings

TASKS = ("denoise", "inpaint", "sr")
SCALES = (2, 4, 8)
NOISE_MODELS = ("gaussian", "poisson-gaussian")
#: How a run restores: ``filter`` (denoising only): the collaborative block-matching filter
#: (:mod:`napari_genprior.engines.blockmatch`), seconds, no network; ``dip``: fit the network;
#: ``auto``: ``filter`` for denoising (on the tuning images the network's estimate added nothing
#: to the filter's, docs/dip.md), ``dip`` for inpainting and SR.
METHODS = ("auto", "filter", "dip")

#: Per-task settings of the paper's notebooks. ``reg_noise`` for denoising is 1/30 at σ=25 and
#: 1/20 at σ=50: the engine picks it from the estimated noise level (``denoise_reg``).
_PAPER_COMMON: dict[str, Any] = dict(
    channels=128,
    skip_channels=4,
    levels=5,
    input_depth=32,
    upsample="bilinear",
    lr=0.01,
    reg_noise=None,
    ema=None,
    backtrack=False,
    precision="float32",
    auto_patience=500,
    denoise_reg=(1 / 30, 1 / 20),
)
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "paper": {
        "denoise": {**_PAPER_COMMON, "iterations": 3000, "ema": 0.99, "backtrack": True},
        "inpaint": {**_PAPER_COMMON, "upsample": "nearest", "reg_noise": 0.03, "iterations": 5000},
        "sr": {**_PAPER_COMMON, "iterations": None},  # per scale: _SR_ITERATIONS
    },
}

#: ``fast``: a quarter of the channels with wider skips, bfloat16 where it pays, less input
#: perturbation, fewer steps, the output averaged over iterates for every task. What each choice
#: rests on (the measurements) is in docs/dip.md, "Presets and time".
_FAST: dict[str, dict[str, Any]] = {
    "denoise": {
        "auto_patience": 200,
        # Poisson–Gaussian NLL weights dark pixels heavily, so the fit reaches their noise sooner
        # and needs more input perturbation than Gaussian data: this much at the noise level
        # POISSON_REG_SIGMA, proportionally less on cleaner data (never below denoise_reg's low end)
        "poisson_reg": 0.05,
        "iterations": 1800,  # the cap that keeps fast at a tenth of the paper's time
    },
    "inpaint": {"auto_patience": 200, "iterations": 3000},
    # SR runs all its steps: a cheaper network per step (zero padding, fewer input channels), and
    # the paper's patience, since the average keeps improving after the variance levels out
    "sr": {"auto_patience": 500, "padding": "zeros", "input_depth": 8},
}
PRESETS["fast"] = {
    task: {
        **cfg,
        "channels": 32,
        "skip_channels": 16,
        "precision": "auto",
        "denoise_reg": (1 / 50, 1 / 33),
        "ema": 0.99,
        **_FAST[task],
    }
    for task, cfg in PRESETS["paper"].items()
}
_SR_ITERATIONS = {2: 2000, 4: 2000, 8: 4000}
#: ``fast`` SR stops 300 steps before the paper at ×2/×4 (docs/dip.md)
_FAST_SR_ITERATIONS = {2: 1700, 4: 1700, 8: 3000}
_SR_REG_NOISE = {2: 0.03, 4: 0.03, 8: 0.05}
OVERRIDABLE = (
    "iterations",
    "lr",
    "reg_noise",
    "channels",
    "skip_channels",
    "ema",
    "backtrack",
    "precision",
)
#: The noise level (std of the normalised image at its mean, estimated) at which ``fast``'s
#: Poisson–Gaussian input perturbation ``poisson_reg`` was chosen: the benchmark's fluorescence
#: image (docs/dip.md, "Presets and time"). Cleaner data get proportionally less (docs/notes/dip_16bit_probe.md).
POISSON_REG_SIGMA = 0.04
#: Default tile side (output pixels): bounds the peak memory of large planes (docs/dip.md,
#: "Large images")
DEFAULT_TILE = 512
#: Fewer steps than this return a fit that has not reached the data yet (the average is still
#: moving toward it, studies/dip_bias_probe.py): the result says so in ``metadata["warnings"]``.
CONVERGED_STEPS = 300


@dataclass
class DIPParams:
    """Parameters of one DIP run. ``None`` means "the preset's value".

    - ``task``: ``denoise`` | ``inpaint`` | ``sr``; ``scale``: 2, 4 or 8 (``sr`` only).
    - ``method``: ``auto``, ``filter`` or ``dip`` (:data:`METHODS`). The filter ignores the
      network's settings (preset, steps, seed, previews).
    - ``noise_model``: ``gaussian`` or ``poisson-gaussian`` (denoise; photon-count data).
      ``noise_a``/``noise_b``: variance ``a·x + b`` in units of the normalised ``[0, 1]`` image;
      estimated from the image when ``None``.
    - ``channel_axis``: ``"auto"`` (RGB/RGBA when the last axis has 3 or 4 entries), ``None``
      or an axis index. Other axes before Y, X are processed plane by plane.
    - ``iterations``: a number, ``"auto"`` (stop near the best iterate without a ground truth:
      denoising once the residual is white, :data:`.stopping.AUTO_WHITENESS`; SR and inpainting by the
      windowed moving variance of the iterates, ES-WMV; at most the preset's number), or
      ``None`` (the preset's number). A fixed number below :data:`CONVERGED_STEPS` adds a warning
      to ``metadata["warnings"]``.
    - ``uncertainty``: also return the per-pixel spread (std) of the last ``auto_window`` iterates.
    - ``tile_size``: planes whose output is larger than this (pixels per side) are fitted in
      overlapping tiles of this size, blended with linear ramps over ``tile_overlap`` pixels, so
      peak memory stays bounded. ``None``: :data:`DEFAULT_TILE` (512); ``0``: never tile.
    - ``precision``: ``float32``, ``bfloat16`` (autocast for the network; the loss stays float32)
      or ``auto``: bfloat16 where it is faster (:func:`~.base.bfloat16_pays`), else float32.
    - ``seed``: same seed, same device → same result.
    - ``preview_every``: steps between preview images in the progress events (0: none).
    """

    task: str = "denoise"
    scale: int = 4
    method: str = "auto"
    preset: str = "fast"
    iterations: int | str | None = None
    seed: int | None = 0
    noise_model: str = "gaussian"
    noise_a: float | None = None
    noise_b: float | None = None
    channel_axis: int | str | None = "auto"
    preview_every: int = 50
    lr: float | None = None
    reg_noise: float | None = None
    channels: int | None = None
    skip_channels: int | None = None
    ema: float | None = None
    backtrack: bool | None = None
    precision: str | None = None
    tile_size: int | None = None
    tile_overlap: int = 64
    uncertainty: bool = False
    auto_window: int = 100
    auto_patience: int | None = None

    @classmethod
    def from_any(cls, params: DIPParams | dict[str, Any] | None) -> DIPParams:
        return params_from(cls, params, "DIP")

    @property
    def resolved_method(self) -> str:
        """``filter`` or ``dip``: what ``auto`` stands for with this task."""
        if self.method != "auto":
            return self.method
        return "filter" if self.task == "denoise" else "dip"

    def validate(self) -> None:
        if self.task not in TASKS:
            raise InputError(f"unknown task {self.task!r}: choose one of {', '.join(TASKS)}")
        if self.preset not in PRESETS:
            raise InputError(f"unknown preset {self.preset!r}: choose one of {', '.join(PRESETS)}")
        if self.method not in METHODS:
            raise InputError(f"unknown method {self.method!r}: choose one of {', '.join(METHODS)}")
        if self.method == "filter" and self.task != "denoise":
            raise InputError(f"the filter only denoises: use method 'dip' (or 'auto') for {self.task}")
        if self.uncertainty and self.resolved_method == "filter":
            raise InputError(
                "the uncertainty layer is the spread of the network's last steps: choose method 'dip'"
            )
        if self.task == "sr" and self.scale not in SCALES:
            raise InputError(f"scale must be one of {SCALES} for super-resolution, not {self.scale}")
        if self.precision is not None and self.precision not in runtime.PRECISIONS:
            raise InputError(
                f"unknown precision {self.precision!r}: choose one of {', '.join(runtime.PRECISIONS)}"
            )
        if self.noise_model not in NOISE_MODELS:
            raise InputError(
                f"unknown noise model {self.noise_model!r}: choose one of {', '.join(NOISE_MODELS)}"
            )
        if self.iterations == "auto":
            pass
        elif self.iterations is not None and (
            not isinstance(self.iterations, int | np.integer) or int(self.iterations) < 1
        ):
            raise InputError(f"iterations must be 'auto' or a number of at least 1, not {self.iterations!r}")
        if self.auto_window < 2 or (self.auto_patience is not None and self.auto_patience < 1):
            raise InputError("auto_window must be >= 2 and auto_patience >= 1")
        if self.tile_size is not None and self.tile_size != 0 and self.tile_size < 128:
            raise InputError(f"tile_size must be 0 (never tile) or at least 128 pixels, not {self.tile_size}")
        if self.tile_overlap < 8:
            raise InputError(f"tile_overlap must be at least 8 pixels, not {self.tile_overlap}")
        if self.tile_overlap * 2 > (DEFAULT_TILE if self.tile_size is None else self.tile_size or 10**9):
            raise InputError("tile_overlap must be at most half the tile size")
        if self.preview_every < 0:
            raise InputError("preview_every must be >= 0")


def resolve_config(p: DIPParams) -> dict[str, Any]:
    """The full settings of a run: the preset's values for the task, then the user's overrides."""
    cfg = dict(PRESETS[p.preset][p.task])
    if p.task == "sr":
        its = _FAST_SR_ITERATIONS if p.preset == "fast" else _SR_ITERATIONS
        cfg["iterations"] = cfg["iterations"] or its[p.scale]
        cfg["reg_noise"] = cfg["reg_noise"] if cfg["reg_noise"] is not None else _SR_REG_NOISE[p.scale]
    if p.task != "denoise" or p.noise_model != "poisson-gaussian":
        cfg.pop("poisson_reg", None)
    for key in OVERRIDABLE:
        value = getattr(p, key)
        if value is not None and not (key == "iterations" and value == "auto"):
            cfg[key] = value
    cfg["iterations"] = int(cfg["iterations"])
    cfg["auto_stop"] = p.iterations == "auto"
    if p.task != "denoise" or cfg["reg_noise"] is not None:
        cfg.pop("denoise_reg")
    patience = cfg.pop("auto_patience")
    if cfg["auto_stop"] or p.uncertainty:
        cfg["auto_window"] = int(p.auto_window)
    if cfg["auto_stop"]:
        cfg["auto_patience"] = int(p.auto_patience if p.auto_patience is not None else patience)
        cfg.update(auto_stop_settings(p.task))
    return cfg


def preset_iterations(task: str, preset: str = "fast", scale: int = 4) -> int:
    """The preset's number of steps for ``task`` (the upper bound when stopping automatically)."""
    return int(resolve_config(DIPParams(task=task, preset=preset, scale=scale))["iterations"])


def guess_noise_model(image: np.ndarray, metadata: dict[str, Any] | None = None) -> tuple[str, str]:
    """``(noise model, why)`` for denoising ``image`` when the user has not chosen one.

    A ``noise_model`` entry in ``metadata`` wins. Otherwise integer data of more than 8 bits
    that is not RGB(A) — what cameras on microscopes write — is taken as photon counts
    (``poisson-gaussian``); 8-bit, RGB and float images get ``gaussian``.
    """
    meta = metadata or {}
    if meta.get("noise_model") in NOISE_MODELS:
        return str(meta["noise_model"]), "from the image's metadata"
    dt = np.dtype(image.dtype) if hasattr(image, "dtype") else np.asarray(image).dtype
    shape = np.shape(image)
    rgb = len(shape) >= 3 and shape[-1] in (3, 4)
    if np.issubdtype(dt, np.integer) and dt.itemsize >= 2 and not rgb:
        return "poisson-gaussian", f"{8 * dt.itemsize}-bit integer data: taken as photon counts"
    return "gaussian", "8-bit, colour or float data"


def resolve_precision(precision: str, device: torch.device) -> str:
    """DIP's precision on ``device``: :func:`napari_genprior.runtime.resolve_precision` with DIP's
    criterion ``needs="amx"`` — ``auto`` → ``bfloat16`` where it pays (GPUs with bfloat16, CPUs
    with AMX: :func:`~napari_genprior.runtime.bfloat16_pays`), else ``float32``."""
    return runtime.resolve_precision(precision, device, needs="amx")
