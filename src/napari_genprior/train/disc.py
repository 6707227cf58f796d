"""Train a discriminator for a frozen, already trained generator prior and bundle it with it.

The bundled priors shipped their EMA generators only; JoIN's fine-tuning stage (and GLEAN's
adversarial term) need each prior's discriminator. The training checkpoints are gone, so a fresh
StyleGAN2 discriminator of the prior's own architecture is trained against the frozen generator:
real images of the prior's domain (training seeds, fresh every step) against its samples, with the
non-saturating logistic loss and a lazy R1 penalty, as in ``train gan``. The result is what a
discriminator of the prior is for: its score says how far an image is from the domain, as seen
from this generator's samples.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.generators import DOMAINS, EVAL_SEED_START
from ..models import portable_command, weights_path
from ..models.load import load_prior
from ..nets.stylegan2 import Discriminator, build_discriminator, discriminator_config
from .gan import _domain_batch, _load_folder, r1_gamma_heuristic

__all__ = ["discriminator_config", "export_discriminator", "train_discriminator"]


def _reals(data: str, size: int, step: int, batch: int, folder: np.ndarray | None) -> torch.Tensor:
    """A batch ``(B, C, S, S)`` in ``[-1, 1]``: fresh synthetic images with training seeds, or
    random images of a folder."""
    if folder is not None:
        idx = np.random.default_rng(step).integers(0, len(folder), batch)
        x = folder[idx]
    else:
        span = EVAL_SEED_START - EVAL_SEED_START % batch
        x = _domain_batch(data, size, (step * batch) % span, batch)
    return torch.from_numpy(x) * 2 - 1


def train_discriminator(
    prior: str | Path,
    out: str | Path,
    steps: int = 600,
    batch: int = 16,
    data: str | None = None,
    lr: float = 0.002,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> tuple[Discriminator, dict[str, Any]]:
    """Train a discriminator against the frozen generator ``prior`` (a bundled name or a bundle
    path) on ``data`` (the prior's domain by default, or a folder) and write a checkpoint ``out``
    (``{"d", "config", "step", "wall_s"}``, resumed when it exists). Returns ``(D, info)``."""
    path = weights_path(str(prior)) or Path(prior)
    bundle = torch.load(path, map_location="cpu", weights_only=True)
    bcfg = bundle.get("config") or {}
    gen = load_prior(path)
    gen.requires_grad_(False)
    data = data or str(bcfg.get("data", ""))
    if data not in DOMAINS and not Path(data).is_dir():
        raise ValueError(
            f"say which images the prior was trained on: --data DOMAIN or a folder (not {data!r})"
        )
    size = gen.size
    folder = None if data in DOMAINS else _load_folder(Path(data), size)
    dcfg = discriminator_config({**bcfg, "size": size}, gen.image_channels)
    torch.manual_seed(seed)
    d = build_discriminator(dcfg)
    c = 16 / 17  # lazy R1 every 16 steps, as in train gan
    opt = torch.optim.Adam(d.parameters(), lr=lr * c, betas=(0.0, 0.99**c))
    out = Path(out)
    step, wall = 0, 0.0
    if out.exists():
        ck = torch.load(out, map_location="cpu", weights_only=True)
        d.load_state_dict(ck["d"]), opt.load_state_dict(ck["opt"])
        step, wall = int(ck["step"]), float(ck["wall_s"])
        log(f"resumed from {out} at step {step}")
    gamma = r1_gamma_heuristic(size, batch)
    rng = torch.Generator().manual_seed(seed + step)
    t_step = time.perf_counter()
    hist: list[dict[str, float]] = []

    def save() -> None:
        tmp = out.with_suffix(".tmp")
        torch.save(
            {"d": d.state_dict(), "opt": opt.state_dict(), "config": dcfg, "step": step, "wall_s": wall}, tmp
        )
        tmp.replace(out)

    while step < steps:
        real = _reals(data, size, step, batch, folder)
        if torch.rand(1, generator=rng).item() < 0.5:
            real = real.flip(3)
        with torch.no_grad():
            fake = gen(torch.randn(batch, gen.style_dim, generator=rng), noise="random")
        lf, lr_ = d(fake), d(real)
        loss = F.softplus(lf).mean() + F.softplus(-lr_).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 16 == 0:
            real.requires_grad_(True)
            (grad,) = torch.autograd.grad(d(real).sum(), real, create_graph=True)
            opt.zero_grad(set_to_none=True)
            (gamma / 2 * grad.pow(2).flatten(1).sum(1).mean() * 16).backward()
            opt.step()
        step += 1
        now = time.perf_counter()
        wall += now - t_step
        t_step = now
        if step % 50 == 0 or step == steps:
            rec = {"step": step, "loss_d": round(float(loss.detach()), 4), "wall_s": round(wall, 1)}
            hist.append(rec)
            log(json.dumps(rec))
            save()
    save()
    return d.eval(), {"config": dcfg, "steps": step, "wall_s": wall, "batch": batch, "data": data}


@torch.no_grad()
def _held_out_scores(gen: Any, d: Discriminator, data: str, n: int = 128) -> dict[str, float]:
    """Mean logits and accuracy of ``d`` on held-out reals (evaluation seeds) and prior samples."""
    if data not in DOMAINS:
        return {}
    real = torch.from_numpy(_domain_batch(data, gen.size, EVAL_SEED_START, n)) * 2 - 1
    fake = gen(torch.from_numpy(np.random.default_rng(7).standard_normal((n, gen.style_dim))).float())
    lr_, lf = d(real).flatten(), d(fake).flatten()
    return {
        "logit_real": round(float(lr_.mean()), 3),
        "logit_fake": round(float(lf.mean()), 3),
        "accuracy": round(float(((lr_ > 0).float().mean() + (lf < 0).float().mean()) / 2), 3),
    }


def export_discriminator(
    prior: str | Path, d: Discriminator, info: dict[str, Any], command: str = ""
) -> Path:
    """Add ``d`` (float16) to the prior's bundle (``discriminator``, ``discriminator_config``) and a
    ``discriminator`` section to its card. The generator's tensors are left as they are."""
    path = weights_path(str(prior)) or Path(prior)
    bundle = torch.load(path, map_location="cpu", weights_only=True)
    bundle["discriminator"] = {k: v.half() if v.is_floating_point() else v for k, v in d.state_dict().items()}
    bundle["discriminator_config"] = info["config"]
    tmp = path.with_suffix(".tmp")
    torch.save(bundle, tmp)
    tmp.replace(path)
    scores = _held_out_scores(load_prior(path), d.float().eval(), info["data"])
    card_path = path.with_suffix(".json")
    if card_path.exists():
        cardd = json.loads(card_path.read_text())
        cardd["discriminator"] = {
            "what": "StyleGAN2 discriminator of the prior's architecture, trained afterwards against the frozen "
            "generator (the training checkpoint was not kept): real images of the domain vs the prior's samples",
            "command": portable_command(command) or f"napari-genprior train disc --prior {Path(path).stem}",
            "steps": info["steps"],
            "batch": info["batch"],
            "wall_time": f"{info['wall_s'] / 60:.1f} min",
            "parameters": sum(v.numel() for v in d.state_dict().values() if v.is_floating_point()),
            "weights": "float16, key 'discriminator' of the bundle",
            "held_out": scores,
            "held_out_note": "mean logits on 128 held-out real images (evaluation seeds) and 128 prior samples; "
            "accuracy of the sign",
        }
        card_path.write_text(json.dumps(cardd, indent=2, ensure_ascii=False) + "\n")
    return path
