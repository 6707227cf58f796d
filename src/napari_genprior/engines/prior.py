"""Generative priors: load a StyleGAN2 generator (bundled, trained here, or rosinality-format) and
draw samples from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..nets.stylegan2 import Generator

__all__ = ["bundled_priors", "latents", "load_prior", "sample_grid", "sample_prior"]


def bundled_priors() -> list[str]:
    """Names of the bundled GAN priors (cards with ``"task": "gan-prior"`` and weights present)."""
    from ..models import list_models

    return [m["name"] for m in list_models() if m.get("task") == "gan-prior"]


def load_prior(name_or_path: str | Path, device: str | torch.device = "cpu") -> Generator:
    """A generator in eval mode, float32, from a bundled prior's name or a checkpoint path.

    Accepted files: a bundle (``{"model": state, "config": …}``), a training checkpoint of
    ``napari-genprior train gan`` or a ``stylegan2-pytorch`` (rosinality) checkpoint — both hold
    ``g_ema`` — or a bare generator state dict. Loaded with ``torch.load(weights_only=True)``.
    """
    from ..models import weights_path

    path = weights_path(str(name_or_path)) if "/" not in str(name_or_path) else None
    if path is None:
        path = Path(name_or_path)
        if not path.is_file():
            names = ", ".join(bundled_priors()) or "none bundled"
            raise FileNotFoundError(
                f"{name_or_path!r} is neither a bundled prior ({names}) nor a checkpoint file"
            )
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - say which file and what to do
        hint = (
            " It holds Python objects (stylegan2-pytorch training checkpoints store 'args'); if you trust "
            "the file, keep only the generator: torch.save({'g_ema': torch.load(p, weights_only=False)"
            "['g_ema']}, 'generator.pt')"
            if "weights_only" in str(err) or "Unsupported global" in str(err)
            else ""
        )
        raise ValueError(f"{path} is not a loadable checkpoint ({str(err).splitlines()[0]}).{hint}") from None
    state = ck.get("model", ck) if isinstance(ck, dict) else None
    if not isinstance(state, dict) or not ("g_ema" in state or "style.1.weight" in state):
        raise ValueError(f"{path} holds no StyleGAN2 generator (expected 'g_ema' or a generator state dict)")
    if "g_ema" in state:
        state = state["g_ema"]
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    return Generator.from_state_dict(state).to(device).eval()


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
