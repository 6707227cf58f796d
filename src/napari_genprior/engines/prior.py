"""Generative priors: load a StyleGAN2 generator (bundled, trained here, or rosinality-format) and
draw samples from it."""

from __future__ import annotations

import numpy as np
import torch

from ..models.load import bundled_priors, load_prior
from ..nets.stylegan2 import Generator

__all__ = ["bundled_priors", "latents", "load_prior", "priors_for", "sample_grid", "sample_prior"]


def _domain(card: dict) -> str:
    """The domain a prior was trained on (its training config's ``data``), else its name."""
    training = card.get("training")
    data = training.get("data") if isinstance(training, dict) else None
    return str(data or card.get("name", ""))


def priors_for(forward: str, component: str) -> list[str]:
    """The bundled priors that can stand for ``component`` of the forward model ``forward``: its
    default prior, those trained on the same domain, and those whose card says they are for "the
    ``component`` component"; a grey component (a smooth field, or any flat-field part) only takes
    one-channel priors. Other priors (``albedo`` for the specimen) are left out."""
    from ..models import list_models
    from ..physics.composition import FORWARD_MODELS

    model = FORWARD_MODELS[forward]
    comp = next((c for c in model.components if c.name == component), None)
    if comp is None:
        names = ", ".join(c.name for c in model.components)
        raise ValueError(f"{forward} has no component {component!r}: its components are {names}")
    cards = {m["name"]: m for m in list_models() if m.get("task") == "gan-prior"}
    default_domain = _domain(cards[comp.prior]) if comp.prior in cards else comp.prior
    grey = comp.smooth or model.image_channels == (1,)
    out = []
    for name, c in cards.items():
        said = f"the {component} component" in str(c.get("use", ""))
        if not (name == comp.prior or _domain(c) == default_domain or said):
            continue
        if grey and int(c.get("channels", 1)) != 1:
            continue
        out.append(name)
    return out


def latents(n: int, dim: int, seed: int) -> torch.Tensor:
    """``n`` standard-normal latents ``(n, dim)`` float32; row ``i`` depends only on ``seed`` and ``i``.

    Drawn with NumPy's generator, not torch's: a torch generator seeded like the training run's
    initialisation (``torch.manual_seed(0)``) replays the numbers of the mapping network's first
    weight matrix, whose rows such latents would then match — and those samples are far off the
    prior's distribution (seen: oversaturated, blurred albedo samples for seed 0 only).
    """
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((n, dim))).float()


@torch.no_grad()
def sample_prior(
    generator: Generator,
    n: int = 16,
    seed: int = 0,
    truncation: float = 1.0,
    batch: int = 16,
) -> np.ndarray:
    """``n`` samples ``(n, S, S)`` (one channel) or ``(n, S, S, C)`` float32 in ``[0, 1]``.

    Sample ``i`` depends only on ``seed`` and ``i``. ``truncation`` < 1 pulls the latents towards
    the mean latent (less variety, more typical samples); 1 is off.
    """
    if n < 1:
        raise ValueError("n must be >= 1")
    if not 0 <= truncation <= 1:
        raise ValueError("truncation must be in [0, 1]")
    dev = generator.input.input.device
    z_all = latents(n, generator.style_dim, seed)
    mean = None
    if truncation < 1:
        # a stream of its own, independent of n, so sample i stays fixed
        z_mean = latents(4096, generator.style_dim, seed + 1).to(dev)
        mean = generator.mapping(z_mean).mean(0, keepdim=True)
    out = []
    for i in range(0, n, batch):
        z = z_all[i : i + batch].to(dev)
        x = generator(z, truncation=truncation, truncation_latent=mean, noise="fixed")
        out.append(((x.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy())
    x = np.concatenate(out).astype(np.float32)
    return x[..., 0] if x.shape[-1] == 1 else x


def sample_grid(samples: np.ndarray, nrow: int) -> np.ndarray:
    """Tile ``(n, S, S)`` or ``(n, S, S, C)`` images in ``[0, 1]`` into one ``(rows·S, nrow·S, 3)``
    uint8 picture (grey shown as grey; empty cells black)."""
    x = np.clip(np.rint(np.asarray(samples, np.float32) * 255), 0, 255).astype(np.uint8)
    if x.ndim == 3:
        x = x[..., None]
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    n, s = x.shape[0], x.shape[1]
    rows = -(-n // nrow)
    canvas = np.zeros((rows * s, nrow * s, 3), np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        canvas[r * s : (r + 1) * s, q * s : (q + 1) * s] = x[i, ..., :3]
    return canvas
