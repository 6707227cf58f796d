"""JoIN's latents: the priors' mean latent w̄ and the whitener of their mapped latents, the starting
latents and noise maps of every restart, and the in-domain penalty that keeps latents near w̄."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...nets.stylegan2 import Discriminator, Generator, NoiseInjection
from .params import RESTART_PSI, JoinParams


@dataclass
class _Slot:
    """One prior's part of the problem: ``count`` instances (tiles or groups)."""

    comp: Any
    gen: Generator
    disc: Discriminator | None
    label: str
    w_mean: torch.Tensor
    noise: bool


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


def init_latents(
    slots: dict[str, _Slot],
    counts: dict[str, int],
    restarts: int,
    p: JoinParams,
    metrics: dict[str, str],
    rng: np.random.Generator,
    dev: torch.device,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Stage 1's starting latents, ``{slot: (restarts, count, n_latent or 1, D)}`` leaf tensors
    (restart 0 at w̄, the others truncated samples of ``rng``), each slot's w̄ ``(D,)``, and the
    ``(D, D)`` whitener of each mahalanobis slot. Moves the generators to ``dev``."""
    lat, w_means, whiten = {}, {}, {}
    for k, s in slots.items():
        g = s.gen.to(dev)
        w0 = s.w_mean.to(dev)
        z = torch.from_numpy(rng.standard_normal((restarts * counts[k], g.style_dim))).float().to(dev)
        with torch.no_grad():
            wz = w0 + RESTART_PSI * (g.mapping(z) - w0)
        space = p.latent if p.latent != "auto" else s.comp.latent
        wz = wz.view(restarts, counts[k], 1, -1).repeat(1, 1, g.n_latent if space == "w+" else 1, 1)
        wz[0] = w0  # restart 0: the mean latent, as in the JoIN code
        lat[k] = wz.clone().requires_grad_(True)
        w_means[k] = w0
        if metrics[k] == "mahalanobis":
            whiten[k] = _w_whitener(g).to(dev)
    return lat, w_means, whiten


def init_noises(
    slots: dict[str, _Slot], counts: dict[str, int], restarts: int, dev: torch.device
) -> dict[str, list[torch.Tensor]]:
    """Per-layer noise maps ``(restarts · count, 1, h, w)`` (leaf tensors) of each prior that uses
    noise inputs; the others decode with their fixed noise buffers."""
    noises: dict[str, list[torch.Tensor]] = {}
    for k, s in slots.items():
        if s.noise:
            noises[k] = [
                torch.randn(restarts * counts[k], 1, *b.shape[-2:], device=dev).requires_grad_(True)
                for b in s.gen.noise_buffers()
            ]
    return noises


class InDomainLoss:
    """The in-domain penalty: Σ over components of weight · ‖w − w̄‖² (the mean over a latent's
    entries; whitened for a mahalanobis component), summed over restarts."""

    def __init__(
        self,
        weights: dict[str, float],
        w_means: dict[str, torch.Tensor],
        whiten: dict[str, torch.Tensor],
        dev: torch.device,
    ) -> None:
        self.weights, self.w_means, self.whiten, self.dev = weights, w_means, whiten, dev

    def __call__(self, lat: dict[str, torch.Tensor], keys: Iterable[str]) -> torch.Tensor:
        """A scalar for the latents ``{slot: (R, count, L, D)}`` of the slots ``keys``."""
        terms = [
            self.weights[k]
            * ((lat[k] - self.w_means[k]) @ self.whiten[k] if k in self.whiten else lat[k] - self.w_means[k])
            .square()
            .mean((1, 2, 3))
            .sum()
            for k in keys
            if self.weights[k] > 0
        ]
        return sum(terms, torch.zeros((), device=self.dev))
