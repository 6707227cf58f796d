"""Deep Image Prior (Ulyanov, Vedaldi, Lempitsky, CVPR 2018): restore one image by fitting an
untrained hourglass network to it. Tasks: ``denoise``, ``inpaint`` and ``sr`` (×2/×4/×8).

Pure torch + numpy. Usage (``dip`` and ``drive`` come from ``napari_genprior.engines``)::

    result = drive(dip.run(noisy, {"task": "denoise", "iterations": 300}))
    restored = result.layers[0].data          # same shape, dtype and range as ``noisy``
"""

from __future__ import annotations

import collections
import dataclasses
import math
import random
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .. import __version__, runtime
from ..imaging import Normalizer, PlaneLayout, check_image, guess_channel_axis
from ..metrics import psnr_from_mse
from ..nets.skip import SkipNet
from ..physics.downsample import LanczosDownsampler
from ..physics.noise import estimate_poisson_gaussian, estimate_sigma_pca, gaussian_loss, poisson_gaussian_nll
from .base import (
    Cancelled,
    EngineRun,
    InputError,
    OutputLayer,
    Progress,
    Result,
    params_from,
    resolve_device,
    seeded,
)
from .tiling import Tile, TileBlender, tile_plan

__all__ = [
    "guess_noise_model",
    "preset_iterations",
    "DIPParams",
    "build_net",
    "DEFAULT_TILE",
    "PRESETS",
    "Tile",
    "TileBlender",
    "tile_plan",
    "tiles_for",
    "SCALES",
    "TASKS",
    "NOISE_MODELS",
    "resolve_config",
    "run",
]

TASKS = ("denoise", "inpaint", "sr")
SCALES = (2, 4, 8)
NOISE_MODELS = ("gaussian", "poisson-gaussian")

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
        # and needs more input perturbation than Gaussian data
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
_OVERRIDABLE = (
    "iterations",
    "lr",
    "reg_noise",
    "channels",
    "skip_channels",
    "ema",
    "backtrack",
    "precision",
)
#: Default tile side (output pixels): bounds the peak memory of large planes (docs/dip.md,
#: "Large images")
DEFAULT_TILE = 512
#: Automatic stopping counts a fall of the windowed iterate variance only when it is at least
#: this fraction below the previous reference, so a long plateau stops the fit too (see
#: ``_fit_plane``; chosen with studies/dip_stop_study.py).
AUTO_TOLERANCE = 0.01
#: Denoising with automatic stopping watches the residual ``x - y`` instead of the iterates'
#: variance: its lag-1 autocorrelation (mean of the x and y neighbours, moving mean of the last
#: 50 steps) is positive while the image's content is still in it and turns negative once the
#: network follows the noise, which is white. The fit stops when it falls below this level, from
#: step 100 on. No noise estimate is needed, so fine texture that inflates one cannot stop the
#: fit early, and the rule holds for Poisson–Gaussian noise too (independent from pixel to pixel).
#: Chosen with studies/dip_stop_study.py on its tuning images, reported on the others.
AUTO_WHITENESS = 0.0
_WHITENESS_SMOOTH = 50
_WHITENESS_START = 100
#: A guard for small images, where the network follows the noise within a few dozen steps and
#: the residual's correlation never turns negative: denoising also stops once the residual
#: (whitened by the estimated noise variance, same moving mean) is below this fraction of the
#: noise. Low enough that a noise estimate inflated by texture does not reach it before the fit
#: reaches the image (chosen with studies/dip_stop_study.py).
AUTO_OVERFIT = 0.7
#: The output average (EMA) spans at most this fraction's inverse of the steps so far: after t
#: steps its decay is min(ema, 1 - AVG_RAMP / t). A plain EMA still carried the first, mid-grey
#: iterates after hundreds of steps, so short runs came back brighter than the data and below
#: the noisy input (studies/dip_bias_probe.py); from t = AVG_RAMP / (1 - ema) on it is the EMA.
AVG_RAMP = 5.0
#: Fewer steps than this return a fit that has not reached the data yet (the average is still
#: moving toward it, studies/dip_bias_probe.py): the result says so in ``metadata["warnings"]``.
CONVERGED_STEPS = 300


@dataclass
class DIPParams:
    """Parameters of one DIP run. ``None`` means "the preset's value".

    - ``task``: ``denoise`` | ``inpaint`` | ``sr``; ``scale``: 2, 4 or 8 (``sr`` only).
    - ``noise_model``: ``gaussian`` or ``poisson-gaussian`` (denoise; photon-count data).
      ``noise_a``/``noise_b``: variance ``a·x + b`` in units of the normalised ``[0, 1]`` image;
      estimated from the image when ``None``.
    - ``channel_axis``: ``"auto"`` (RGB/RGBA when the last axis has 3 or 4 entries), ``None``
      or an axis index. Other axes before Y, X are processed plane by plane.
    - ``iterations``: a number, ``"auto"`` (stop near the best iterate without a ground truth:
      denoising once the residual is white, :data:`AUTO_WHITENESS`; SR and inpainting by the
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

    def validate(self) -> None:
        if self.task not in TASKS:
            raise InputError(f"unknown task {self.task!r}: choose one of {', '.join(TASKS)}")
        if self.preset not in PRESETS:
            raise InputError(f"unknown preset {self.preset!r}: choose one of {', '.join(PRESETS)}")
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
    poisson_reg = cfg.pop("poisson_reg", None)
    if p.task == "denoise" and p.noise_model == "poisson-gaussian" and poisson_reg is not None:
        cfg["reg_noise"] = poisson_reg
    for key in _OVERRIDABLE:
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
        if p.task == "denoise" and AUTO_WHITENESS is not None:
            cfg["auto_whiteness"] = AUTO_WHITENESS
            cfg["auto_overfit"] = AUTO_OVERFIT
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


def build_net(cfg: dict[str, Any], out_channels: int) -> SkipNet:
    """The network a resolved config (:func:`resolve_config`) fits: ``(1, input_depth, H, W) →
    (1, out_channels, H, W)`` in ``[0, 1]``; parameters from torch's current random state."""
    return SkipNet(
        cfg["input_depth"],
        out_channels,
        cfg["channels"],
        cfg["channels"],
        cfg["skip_channels"],
        cfg["levels"],
        cfg["upsample"],
        cfg.get("padding", "reflect"),
    )


def _padded_size(n: int, multiple: int) -> int:
    return max(2 * multiple, -(-n // multiple) * multiple)


def _pad(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """``(C, H0, W0)`` → ``(C, h, w)`` by mirror padding at the bottom/right."""
    return np.pad(a, ((0, 0), (0, h - a.shape[1]), (0, w - a.shape[2])), mode="symmetric")


@dataclass
class _PlaneFit:
    out: np.ndarray  # (C, H·f, W·f) in [0, 1]
    backtracks: int
    steps: int  # steps run
    chosen_step: int  # the step whose estimate is returned
    spread: np.ndarray | None  # (H·f, W·f) std of the last iterates (normalised units)


class _MovingWindow:
    """The last ``size`` iterates on the device and their per-pixel variance (ES-WMV, uncertainty).

    Running sums (float64) make each step O(pixels) rather than O(size × pixels).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.buf: torch.Tensor | None = None
        self.s1: torch.Tensor | None = None
        self.s2: torch.Tensor | None = None
        self.count = 0

    def push(self, x: torch.Tensor) -> None:
        x64 = x.to(torch.float32 if x.device.type == "mps" else torch.float64)  # MPS has no float64
        if self.buf is None:
            self.buf = torch.empty((self.size, *x.shape), dtype=x.dtype, device=x.device)
            self.s1 = torch.zeros_like(x64)
            self.s2 = torch.zeros_like(x64)
        k = self.count % self.size
        if self.count >= self.size:
            old = self.buf[k].to(x64.dtype)
            self.s1 -= old
            self.s2 -= old * old
        self.buf[k] = x
        self.s1 += x64
        self.s2 += x64 * x64
        self.count += 1

    @property
    def full(self) -> bool:
        return self.count >= self.size

    def variance_map(self) -> torch.Tensor:
        """Per-pixel variance over the window, ``(C, H, W)``, float32."""
        n = min(self.count, self.size)
        mean = self.s1 / n
        return (self.s2 / n - mean * mean).clamp_min(0.0).to(torch.float32)


def _sigma2_pca(plane: np.ndarray, fallback: tuple[float, float]) -> float:
    """Noise variance of a ``(C, H, W)`` plane by patch PCA, the mean over channels; for planes
    too small for patches, the Haar-detail estimate ``fallback`` (``(a, b)``) at the plane's mean."""
    try:
        return float(np.mean([estimate_sigma_pca(ch) ** 2 for ch in plane]))
    except ValueError:
        return fallback[0] * float(plane.mean()) + fallback[1]


def residual_correlation(r: torch.Tensor) -> torch.Tensor:
    """Lag-1 autocorrelation of a residual ``(C, H, W)`` (each channel centred), the mean of its x
    and y neighbours: about 0 for white noise, > 0 while image structure is left in it, < 0 once
    a fit follows the noise (the residual turns high-pass). A 0-d tensor."""
    r = r - r.mean(dim=(-2, -1), keepdim=True)
    num = (r[..., 1:, :] * r[..., :-1, :]).mean() + (r[..., :, 1:] * r[..., :, :-1]).mean()
    return num / (2.0 * (r * r).mean()).clamp_min(1e-30)


def _fit_plane(
    y: np.ndarray,
    missing: np.ndarray | None,
    p: DIPParams,
    cfg: dict[str, Any],
    noise: tuple[float, float] | None,
    device: torch.device,
    seed: int,
    step0: int,
    total: int,
    view: Callable[[np.ndarray], np.ndarray],
    cancel: Callable[[], bool] | None,
    part: str = "",
    noise_var: tuple[float, float] | None = None,
) -> Generator[Progress, None, _PlaneFit]:
    """Fit one ``(C, H, W)`` plane in ``[0, 1]``; returns the estimate ``(C, H·f, W·f)`` in ``[0, 1]``.

    With ``cfg["auto_stop"]``, ES-WMV with a tolerance: ``t*`` is the last step where the mean
    variance of the last ``auto_window`` iterates fell at least :data:`AUTO_TOLERANCE` below its
    value at the previous such step (a minimum, or the start of a plateau). The fit stops
    ``auto_patience`` steps after ``t*`` and returns the estimate of step ``t*`` — or, with output
    averaging (EMA), whose estimate peaks later than the raw iterates, the average at the stop.
    With ``cfg["auto_whiteness"]`` (denoising) the fit stops instead at the first step from
    :data:`_WHITENESS_START` on where the residual's lag-1 autocorrelation
    (:func:`residual_correlation`, moving mean over :data:`_WHITENESS_SMOOTH` steps) is below that
    level (:data:`AUTO_WHITENESS`), or the residual whitened by ``noise_var`` is below
    ``cfg["auto_overfit"]`` of the noise (:data:`AUTO_OVERFIT`), and returns the average there.
    ``part`` (``"plane 2/5"``, ``"tile 1/4"``) names this fit in the progress events. With
    ``noise_var``, progress reports the residual in units of the noise (1 = at the noise level)
    instead of the loss, whose value (a log-likelihood for Poisson–Gaussian) means little to a user.
    """
    c, h, w = y.shape
    f = p.scale if p.task == "sr" else 1
    m = 2 ** cfg["levels"]
    hp, wp = _padded_size(h * f, m), _padded_size(w * f, m)  # network (output) size
    lh, lw = hp // f, wp // f  # observation size
    y_t = torch.from_numpy(_pad(y, lh, lw))[None].to(device)
    weight = np.zeros((1, lh, lw), np.float32)
    weight[:, :h, :w] = 1.0
    if missing is not None:
        weight[:, :h, :w] *= ~missing
    w_t = torch.from_numpy(weight)[None].to(device)

    with seeded(seed):
        net = build_net(cfg, c).to(device)
        z0 = (torch.rand(1, cfg["input_depth"], hp, wp) * 0.1).to(device)
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    down = LanczosDownsampler(f).to(device) if f > 1 else None
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    ema, backtrack, reg = cfg["ema"], cfg["backtrack"], float(cfg["reg_noise"])
    avg: torch.Tensor | None = None
    n_avg = 0  # iterates averaged so far
    last_params = [q.detach().clone() for q in net.parameters()] if backtrack else None
    last_psnr = None
    n_back = 0
    iters = cfg["iterations"]
    auto = cfg["auto_stop"]
    white_level = cfg.get("auto_whiteness") if auto else None
    # the iterates' window serves ES-WMV and the uncertainty layer; the whiteness stop needs neither
    needs_window = "auto_window" in cfg and (p.uncertainty or (auto and white_level is None))
    window = _MovingWindow(cfg["auto_window"]) if needs_window else None
    best_var, best_step, best_x, best_spread = math.inf, 0, None, None
    crop = (0, slice(None), slice(0, h * f), slice(0, w * f))
    y_obs = y_t[crop]
    if noise_var is not None:  # whitened residual: (x - y)² / (a·y + b), over the plane
        inv_var = 1.0 / (noise_var[0] * y_obs + noise_var[1]).clamp_min(1e-6)
    overfit = cfg.get("auto_overfit") if white_level is not None and noise_var is not None else None
    rhos: collections.deque[float] = collections.deque(maxlen=_WHITENESS_SMOOTH)
    chi2s: collections.deque[float] = collections.deque(maxlen=_WHITENESS_SMOOTH)
    parts = {"part": part, "part_total": iters if part else 0, "at_most": bool(auto)}

    amp = cfg.get("precision") == "bfloat16"

    def forward(z: torch.Tensor) -> torch.Tensor:
        if not amp:
            return net(z)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return net(z).float()

    def data_loss(x: torch.Tensor) -> torch.Tensor:
        obs = down(x) if down is not None else x
        if noise is not None:
            return poisson_gaussian_nll(obs, y_t, w_t, *noise)
        return gaussian_loss(obs, y_t, w_t)

    for i in range(iters):
        if cancel is not None and cancel():
            raise Cancelled("cancelled")
        z = z0 + reg * torch.randn(z0.shape, generator=gen, device=device) if reg > 0 else z0
        out = forward(z)
        loss = data_loss(out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        restored = False
        if backtrack:
            with torch.no_grad():
                ps = psnr_from_mse(float(gaussian_loss(out.detach(), y_t, w_t)))
            if last_psnr is not None and ps - last_psnr < -5.0:
                with torch.no_grad():
                    for q, saved in zip(net.parameters(), last_params):
                        q.copy_(saved)
                restored = True
                n_back += 1
            else:
                for q, saved in zip(net.parameters(), last_params):
                    saved.copy_(q.detach())
                last_psnr = ps
        if not restored:
            opt.step()
            if ema is not None:
                o = out.detach()
                n_avg += 1
                decay = min(ema, max(0.0, 1.0 - AVG_RAMP / n_avg))
                avg = o if avg is None else avg.mul_(decay).add_(o, alpha=1.0 - decay)
        resid = out.detach()[crop] - y_obs if noise_var is not None or white_level is not None else None
        if noise_var is None:
            shown, shown_label = float(loss.detach()), "loss"
        else:
            chi2 = float((resid.square() * inv_var).mean())
            shown, shown_label = math.sqrt(chi2), "residual/noise"
            chi2s.append(chi2)
        if white_level is not None:
            rhos.append(float(residual_correlation(resid)))
        if window is not None:
            with torch.no_grad():
                window.push(out.detach()[crop])
                if auto and white_level is None and window.full:
                    vmap = window.variance_map()
                    v = float(vmap.mean())
                    if v < (1.0 - AUTO_TOLERANCE) * best_var:  # a significant fall
                        best_var, best_step = v, i + 1
                        best_x = (avg if avg is not None else out.detach())[crop].clone()
                        best_spread = vmap.mean(dim=0).sqrt()
        preview = None
        if p.preview_every and ((i + 1) % p.preview_every == 0 or i + 1 == iters):
            cur = avg if avg is not None else out.detach()
            preview = view(cur[crop].float().cpu().numpy())
        note = "backtracked" if restored else ""
        yield Progress(
            step0 + i + 1, total, shown, preview, note, part_step=i + 1, loss_label=shown_label, **parts
        )
        if white_level is not None:
            if i + 1 >= _WHITENESS_START and len(rhos) == rhos.maxlen:
                if sum(rhos) / len(rhos) < white_level:
                    break
                if overfit is not None and sum(chi2s) / len(chi2s) < overfit:
                    break
        elif auto and best_x is not None and i + 1 - best_step >= cfg["auto_patience"]:
            break
    steps = i + 1

    with torch.no_grad():
        if auto and white_level is None and best_x is not None and avg is None:
            final, chosen, spread = best_x, best_step, best_spread
        else:
            final = (avg if avg is not None else forward(z0))[crop]
            chosen = steps
            spread = window.variance_map().mean(dim=0).sqrt() if window is not None else None
    if steps < iters:  # stopped early: complete this plane's share of the progress bar
        yield Progress(
            step0 + iters,
            total,
            shown,
            None,
            f"stopped at step {steps}",
            part_step=steps,
            loss_label=shown_label,
            **parts,
        )
    return _PlaneFit(
        final.float().cpu().numpy().clip(0.0, 1.0),
        n_back,
        steps,
        chosen,
        None if spread is None else spread.float().cpu().numpy(),
    )


def tiles_for(image: np.ndarray, params: DIPParams | dict[str, Any] | None = None) -> int:
    """How many tiles each plane of ``image`` will be fitted in with ``params`` (1: no tiling)."""
    p = DIPParams.from_any(params)
    shape = np.shape(image)
    ch = guess_channel_axis(shape) if p.channel_axis == "auto" else p.channel_axis
    h, w = PlaneLayout(shape, ch).spatial_shape
    f = p.scale if p.task == "sr" else 1
    tile = DEFAULT_TILE if p.tile_size is None else int(p.tile_size)
    return len(tile_plan(h, w, f, tile, p.tile_overlap))


def _check_mask(mask: np.ndarray | None, layout: PlaneLayout, image_shape: tuple[int, ...]) -> np.ndarray:
    """Missing-pixel mask → ``(N, Y, X)`` bool (non-zero = missing)."""
    if mask is None:
        raise InputError("the inpaint task needs a mask: non-zero pixels mark what is missing")
    mk = np.asarray(mask)
    spatial = layout.spatial_shape
    full = (*layout.lead_shape, *spatial)
    if mk.shape == spatial:
        mk = np.broadcast_to(mk, full)
    elif mk.shape != full:
        want = f"{spatial} (Y, X)" + (f", or {full} (one mask per plane)" if full != spatial else "")
        raise InputError(
            f"mask shape {mk.shape} does not match the image {image_shape}: give a mask of shape {want}"
        )
    if mk.dtype.kind == "f" and not np.all(np.isfinite(mk)):
        raise InputError("mask contains NaN or infinite values")
    missing = (mk != 0).reshape(-1, *spatial)
    if not missing.any():
        raise InputError("the mask marks no pixel as missing: paint the pixels to fill in (non-zero)")
    if missing.all(axis=(1, 2)).any():
        raise InputError("the mask marks every pixel of a plane as missing: nothing is left to fit")
    return missing


def run(
    image: np.ndarray,
    params: DIPParams | dict[str, Any] | None = None,
    *,
    mask: np.ndarray | None = None,
    device: str | torch.device = "auto",
    cancel: Callable[[], bool] | None = None,
) -> EngineRun:
    """Run DIP on ``image``; a generator of :class:`Progress` that returns a :class:`Result`.

    ``image``: 2-D ``(Y, X)``, RGB/RGBA ``(Y, X, 3|4)``, multichannel (``channel_axis`` set) and
    up to two leading axes (T, Z) processed plane by plane; uint8, uint16 or float, any range.
    ``mask`` (inpaint): ``(Y, X)`` or matching the image without its channel axis; non-zero =
    missing. Output layers have the input's dtype and range; for ``sr`` Y and X grow by the scale.
    Bad input raises :class:`InputError` at once, before any work starts.
    """
    p = DIPParams.from_any(params)
    p.validate()
    arr = check_image(image)
    ch = guess_channel_axis(arr.shape) if p.channel_axis == "auto" else p.channel_axis
    layout = PlaneLayout(arr.shape, ch)
    missing = _check_mask(mask, layout, arr.shape) if p.task == "inpaint" else None
    dev = resolve_device(device)
    cfg = resolve_config(p)
    cfg["precision"] = resolve_precision(cfg["precision"], dev)
    seed = p.seed if p.seed is not None else random.SystemRandom().randrange(2**31)
    return _execute(arr, p, layout, missing, dev, cfg, seed, cancel)


def _execute(
    arr: np.ndarray,
    p: DIPParams,
    layout: PlaneLayout,
    missing: np.ndarray | None,
    dev: torch.device,
    cfg: dict[str, Any],
    seed: int,
    cancel: Callable[[], bool] | None,
) -> EngineRun:
    norm = Normalizer.fit(arr)
    planes = layout.to_planes(norm.forward(arr))
    n, c = planes.shape[:2]
    f = p.scale if p.task == "sr" else 1
    iters = cfg["iterations"]

    noise_est: list[tuple[float, float]] = []
    if p.task == "denoise" and (
        cfg["reg_noise"] is None or p.noise_model == "poisson-gaussian" or "auto_whiteness" in cfg
    ):
        for plane in planes:
            ab = [estimate_poisson_gaussian(ch_) for ch_ in plane]
            noise_est.append((float(np.mean([a for a, _ in ab])), float(np.mean([b for _, b in ab]))))
    if cfg["reg_noise"] is None:  # paper: 1/30 at σ = 25/255, 1/20 at σ = 50/255
        sigma = math.sqrt(np.median([a * float(planes.mean()) + b for a, b in noise_est]))
        low, high = cfg["denoise_reg"]
        cfg["reg_noise"] = high if sigma > 37.5 / 255 else low
        cfg["noise_sigma_estimate"] = round(sigma, 5)
    pg = p.task == "denoise" and p.noise_model == "poisson-gaussian"
    # Gaussian noise: the variance the residual is whitened with (progress, automatic stop) by
    # patch PCA, which fine texture inflates less than the Haar detail behind ``noise_est``.
    noise_white = [(0.0, _sigma2_pca(plane, ab)) for plane, ab in zip(planes, noise_est)] if not pg else []
    # Poisson–Gaussian (a, b) per plane: the user's values where given, else the estimates.
    noise_ab = (
        [
            (p.noise_a if p.noise_a is not None else a, p.noise_b if p.noise_b is not None else b)
            for a, b in noise_est
        ]
        if pg
        else []
    )

    def view(plane: np.ndarray) -> np.ndarray:
        return layout.plane_view(norm.inverse(plane, cast=False))

    h, w = planes.shape[2:]
    tile = DEFAULT_TILE if p.tile_size is None else int(p.tile_size)
    plan = tile_plan(h, w, f, tile, p.tile_overlap)
    n_tiles = len(plan)
    total = iters * n * n_tiles

    t0 = time.perf_counter()
    fits: list[_PlaneFit] = []
    outs: list[np.ndarray] = []
    spreads: list[np.ndarray] = []
    for k in range(n):
        noise = (noise_ab[k][0], max(noise_ab[k][1], 1e-6)) if pg else None
        # the noise variance the automatic stop whitens the residual with (denoising)
        noise_var = noise if pg else (noise_white[k] if noise_white else None)
        plane, miss = planes[k], None if missing is None else missing[k]
        plane_part = f"plane {k + 1}/{n}" if n > 1 else ""
        if n_tiles == 1:
            fit = yield from _fit_plane(
                plane,
                miss,
                p,
                cfg,
                noise,
                dev,
                seed,
                k * iters,
                total,
                view,
                cancel,
                part=plane_part,
                noise_var=noise_var,
            )
            fits.append(fit)
            outs.append(fit.out)
            spreads.append(fit.spread)
            continue
        # Overlapping tiles, blended by their ramps; previews show the blend so far.
        blend = TileBlender((c, h * f, w * f), f)
        spread_blend = TileBlender((1, h * f, w * f), f) if p.uncertainty else None
        base = np.repeat(np.repeat(plane, f, axis=1), f, axis=2) if f > 1 else plane
        for j, tl in enumerate(plan):

            def tile_view(est: np.ndarray, tl: Tile = tl, base: np.ndarray = base, blend=blend) -> np.ndarray:
                return view(blend.preview(tl, est, base))

            fit = yield from _fit_plane(
                plane[:, tl.ys, tl.xs],
                None if miss is None else miss[tl.ys, tl.xs],
                p,
                cfg,
                noise,
                dev,
                seed,
                (k * n_tiles + j) * iters,
                total,
                tile_view,
                cancel,
                part=" · ".join(t for t in (plane_part, f"tile {j + 1}/{n_tiles}") if t),
                noise_var=noise_var,
            )
            fits.append(fit)
            blend.add(tl, fit.out)
            if spread_blend is not None:
                spread_blend.add(tl, fit.spread[None])
        outs.append(blend.result())
        spreads.append(None if spread_blend is None else spread_blend.result()[0])
    wall = time.perf_counter() - t0

    data = norm.inverse(layout.from_planes(np.stack(outs)))
    if missing is not None:  # known pixels are kept exactly as they were
        data = np.where(layout.from_planes(np.repeat(missing[:, None], c, axis=1)), data, arr)
    suffix = f"dip_sr{p.scale}" if p.task == "sr" else f"dip_{p.task}"
    meta = {
        "engine": "dip",
        "napari_genprior_version": __version__,
        **{k: v for k, v in dataclasses.asdict(p).items() if k not in _OVERRIDABLE},
        "seed": seed,
        "device": str(dev),
        "config": cfg,
        "scale": f,
        "channel_axis": layout.channel_axis,
        "planes": n,
        "tiles": n_tiles,
        "tile_size": tile if n_tiles > 1 else None,
        "wall_time_s": round(wall, 3),
        "input_range": [norm.lo, norm.hi],
    }
    if p.task != "sr":
        meta.pop("scale")
    if cfg["auto_stop"]:
        meta["stopped_at"] = [fit.steps for fit in fits]
        meta["chosen_step"] = [fit.chosen_step for fit in fits]
    fewest = min(fit.steps for fit in fits)
    # an automatic stop before CONVERGED_STEPS is the rule's finding (the residual is white), not a
    # run cut short
    if fewest < CONVERGED_STEPS and not cfg["auto_stop"]:
        full = preset_iterations(p.task, p.preset, p.scale)
        meta["warnings"] = [
            f"not converged: {fewest} steps are too few for the fit to reach the data; run at "
            f"least {CONVERGED_STEPS} (the {p.preset} preset runs {full}, or stops itself with 'auto')"
        ]
    if p.task == "denoise":
        meta["backtracks"] = sum(fit.backtracks for fit in fits)
        if pg:
            meta["noise_ab"] = noise_ab
    layers = [OutputLayer(data, suffix, "image", float(f))]
    if missing is not None:
        mk = missing.reshape(*layout.lead_shape, *layout.spatial_shape).astype(np.uint8)
        layers.append(OutputLayer(mk, "dip_mask", "labels", 1.0))
    if p.uncertainty:
        spread = np.stack(spreads).reshape(*layout.lead_shape, *spreads[0].shape)
        spread = (spread * (norm.hi - norm.lo)).astype(np.float32)  # in the input's units
        layers.append(
            OutputLayer(spread, "dip_uncertainty", "image", float(f), {"colormap": "magma", "rgb": False})
        )
    return Result(layers, meta)
