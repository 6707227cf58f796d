"""Fitting one plane (or tile): the network, the data term, the step loop with its output average,
backtracking and stopping rule."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...metrics import psnr_from_mse
from ...nets.skip import SkipNet
from ...physics.downsample import LanczosDownsampler
from ...physics.noise import gaussian_loss, poisson_gaussian_nll
from ..base import Cancelled, Progress, seeded
from .params import DIPParams
from .stopping import MovingWindow, VarianceStop, WhitenessStop

#: The output average (EMA) spans at most this fraction's inverse of the steps so far: after t
#: steps its decay is min(ema, 1 - AVG_RAMP / t). A plain EMA still carried the first, mid-grey
#: iterates after hundreds of steps, so short runs came back brighter than the data and below
#: the noisy input (studies/dip_bias_probe.py); from t = AVG_RAMP / (1 - ema) on it is the EMA.
AVG_RAMP = 5.0


def build_net(cfg: dict[str, Any], out_channels: int) -> SkipNet:
    """The network a resolved config (:func:`~.params.resolve_config`) fits: ``(1, input_depth, H, W)
    → (1, out_channels, H, W)`` in ``[0, 1]``; parameters from torch's current random state."""
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


@dataclass
class FitContext:
    """What every plane of one run shares: parameters, resolved config, device, seed, the
    progress total (steps over all planes and tiles) and the cancel callback."""

    p: DIPParams
    cfg: dict[str, Any]
    device: torch.device
    seed: int
    total: int
    cancel: Callable[[], bool] | None = None


@dataclass
class PlaneJob:
    """One ``(C, H, W)`` plane or tile in ``[0, 1]`` to fit.

    - ``missing``: ``(H, W)`` bool, inpainting's missing pixels, else ``None``;
    - ``noise``: Poisson–Gaussian ``(a, b)`` of the data term, ``None`` for the Gaussian loss;
    - ``noise_var``: ``(a, b)`` of the variance the residual is whitened with (progress, the stop's
      overfitting guard), or ``None``;
    - ``step0``: steps of earlier planes/tiles (progress); ``view``: normalised estimate → preview;
    - ``part``: ``"plane 2/5"``, ``"tile 1/4"``: names this fit in the progress events.
    """

    y: np.ndarray
    missing: np.ndarray | None
    noise: tuple[float, float] | None
    noise_var: tuple[float, float] | None
    step0: int
    view: Callable[[np.ndarray], np.ndarray]
    part: str = ""


@dataclass
class PlaneFit:
    out: np.ndarray  # (C, H·f, W·f) in [0, 1]
    backtracks: int
    steps: int  # steps run
    chosen_step: int  # the step whose estimate is returned
    spread: np.ndarray | None  # (H·f, W·f) std of the last iterates (normalised units)


def _padded_size(n: int, multiple: int) -> int:
    return max(2 * multiple, -(-n // multiple) * multiple)


def _pad(a: np.ndarray, h: int, w: int) -> np.ndarray:
    """``(C, H0, W0)`` → ``(C, h, w)`` by mirror padding at the bottom/right."""
    return np.pad(a, ((0, 0), (0, h - a.shape[1]), (0, w - a.shape[2])), mode="symmetric")


class OutputAverage:
    """The exponential moving average of the iterates, ramped in (:data:`AVG_RAMP`)."""

    def __init__(self, ema: float) -> None:
        self.ema = ema
        self.avg: torch.Tensor | None = None
        self.n = 0  # iterates averaged so far

    def add(self, x: torch.Tensor) -> None:
        self.n += 1
        decay = min(self.ema, max(0.0, 1.0 - AVG_RAMP / self.n))
        self.avg = x if self.avg is None else self.avg.mul_(decay).add_(x, alpha=1.0 - decay)


class Backtracker:
    """The paper's backtracking: when the PSNR against the noisy data drops by more than 5 dB
    from one step to the next, the parameters of the last good step are restored."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.net = net
        self.saved = [q.detach().clone() for q in net.parameters()]
        self.last_psnr: float | None = None
        self.count = 0

    def check(self, out: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> bool:
        """After the backward pass of ``out``: restore and return ``True`` on a drop, else save."""
        with torch.no_grad():
            ps = psnr_from_mse(float(gaussian_loss(out.detach(), y, weight)))
        if self.last_psnr is not None and ps - self.last_psnr < -5.0:
            with torch.no_grad():
                for q, saved in zip(self.net.parameters(), self.saved):
                    q.copy_(saved)
            self.count += 1
            return True
        for q, saved in zip(self.net.parameters(), self.saved):
            saved.copy_(q.detach())
        self.last_psnr = ps
        return False


class _Problem:
    """The tensors of one fit: the observation padded to the network's size, its weights (0 at
    the padding and at missing pixels), the crop back to the plane, the degradation, the data term."""

    def __init__(self, job: PlaneJob, ctx: FitContext) -> None:
        c, h, w = job.y.shape
        cfg, device = ctx.cfg, ctx.device
        f = ctx.p.scale if ctx.p.task == "sr" else 1
        m = 2 ** cfg["levels"]
        self.hp, self.wp = _padded_size(h * f, m), _padded_size(w * f, m)  # network (output) size
        lh, lw = self.hp // f, self.wp // f  # observation size
        self.y = torch.from_numpy(_pad(job.y, lh, lw))[None].to(device)
        weight = np.zeros((1, lh, lw), np.float32)
        weight[:, :h, :w] = 1.0
        if job.missing is not None:
            weight[:, :h, :w] *= ~job.missing
        self.weight = torch.from_numpy(weight)[None].to(device)
        self.crop = (0, slice(None), slice(0, h * f), slice(0, w * f))
        self.y_obs = self.y[self.crop]
        self.down = LanczosDownsampler(f).to(device) if f > 1 else None
        self.noise = job.noise
        self.inv_var = None
        if job.noise_var is not None:  # whitened residual: (x - y)² / (a·y + b), over the plane
            a, b = job.noise_var
            self.inv_var = 1.0 / (a * self.y_obs + b).clamp_min(1e-6)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        obs = self.down(x) if self.down is not None else x
        if self.noise is not None:
            return poisson_gaussian_nll(obs, self.y, self.weight, *self.noise)
        return gaussian_loss(obs, self.y, self.weight)


def fit_plane(job: PlaneJob, ctx: FitContext) -> Generator[Progress, None, PlaneFit]:
    """Fit one plane; yields progress, returns the estimate ``(C, H·f, W·f)`` in ``[0, 1]``.

    With ``cfg["auto_stop"]`` the fit stops by :class:`~.stopping.WhitenessStop` (denoising,
    ``cfg["auto_whiteness"]``; the average at the stop is returned) or by
    :class:`~.stopping.VarianceStop` (ES-WMV; the estimate of its step ``t*``, or with output
    averaging, whose estimate peaks later than the raw iterates, the average at the stop).
    With a noise variance, progress reports the residual in units of the noise (1 = at the noise
    level) instead of the loss, whose value (a log-likelihood for Poisson–Gaussian) means little
    to a user.
    """
    p, cfg, device, seed = ctx.p, ctx.cfg, ctx.device, ctx.seed
    prob = _Problem(job, ctx)
    with seeded(seed):
        net = build_net(cfg, job.y.shape[0]).to(device)
        z0 = (torch.rand(1, cfg["input_depth"], prob.hp, prob.wp) * 0.1).to(device)
    gen = torch.Generator(device=device).manual_seed(seed + 1)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    reg = float(cfg["reg_noise"])
    average = OutputAverage(cfg["ema"]) if cfg["ema"] is not None else None
    backtrack = Backtracker(net) if cfg["backtrack"] else None
    iters, auto = cfg["iterations"], cfg["auto_stop"]
    white = None
    if auto and cfg.get("auto_whiteness") is not None:
        overfit = cfg.get("auto_overfit") if job.noise_var is not None else None
        white = WhitenessStop(cfg["auto_whiteness"], overfit)
    variance = VarianceStop(cfg["auto_patience"]) if auto and white is None else None
    # the iterates' window serves ES-WMV and the uncertainty layer; the whiteness stop needs neither
    needs_window = "auto_window" in cfg and (p.uncertainty or variance is not None)
    window = MovingWindow(cfg["auto_window"]) if needs_window else None
    parts = {"part": job.part, "part_total": iters if job.part else 0, "at_most": bool(auto)}
    amp = cfg.get("precision") == "bfloat16"

    def forward(z: torch.Tensor) -> torch.Tensor:
        if not amp:
            return net(z)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            return net(z).float()

    def averaged() -> torch.Tensor | None:
        return average.avg if average is not None else None

    def estimate(out: torch.Tensor) -> torch.Tensor:
        avg = averaged()
        return avg if avg is not None else out.detach()

    for i in range(iters):
        if ctx.cancel is not None and ctx.cancel():
            raise Cancelled("cancelled")
        z = z0 + reg * torch.randn(z0.shape, generator=gen, device=device) if reg > 0 else z0
        out = forward(z)
        loss = prob.loss(out)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        restored = backtrack is not None and backtrack.check(out, prob.y, prob.weight)
        if not restored:
            opt.step()
            if average is not None:
                average.add(out.detach())
        resid = (
            out.detach()[prob.crop] - prob.y_obs if prob.inv_var is not None or white is not None else None
        )
        shown, shown_label = float(loss.detach()), "loss"
        chi2 = None
        if prob.inv_var is not None:
            chi2 = float((resid.square() * prob.inv_var).mean())
            shown, shown_label = math.sqrt(chi2), "residual/noise"
        if white is not None:
            white.push(resid, chi2)
        if window is not None:
            with torch.no_grad():
                window.push(out.detach()[prob.crop])
                if variance is not None:
                    variance.update(i + 1, window, estimate(out)[prob.crop])
        preview = None
        if p.preview_every and ((i + 1) % p.preview_every == 0 or i + 1 == iters):
            preview = job.view(estimate(out)[prob.crop].float().cpu().numpy())
        yield Progress(
            job.step0 + i + 1,
            ctx.total,
            shown,
            preview,
            "backtracked" if restored else "",
            part_step=i + 1,
            loss_label=shown_label,
            **parts,
        )
        stop = white if white is not None else variance
        if stop is not None and stop.should_stop(i + 1):
            break
    steps = i + 1

    with torch.no_grad():
        avg = averaged()
        if variance is not None and variance.best is not None and avg is None:
            final, chosen, spread = variance.best, variance.best_step, variance.spread
        else:
            final = (avg if avg is not None else forward(z0))[prob.crop]
            chosen = steps
            spread = window.variance_map().mean(dim=0).sqrt() if window is not None else None
    if steps < iters:  # stopped early: complete this plane's share of the progress bar
        yield Progress(
            job.step0 + iters,
            ctx.total,
            shown,
            None,
            f"stopped at step {steps}",
            part_step=steps,
            loss_label=shown_label,
            **parts,
        )
    return PlaneFit(
        final.float().cpu().numpy().clip(0.0, 1.0),
        0 if backtrack is None else backtrack.count,
        steps,
        chosen,
        None if spread is None else spread.float().cpu().numpy(),
    )
