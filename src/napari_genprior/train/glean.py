"""Train GLEAN (Chan et al., CVPR 2021) on a bundled StyleGAN2 prior as latent bank, export and load it.

Losses as in the paper, with the VGG perceptual loss replaced by a feature loss on the bank's own
discriminator (no VGG weights are available offline, and the discriminator knows the domain):
``w_mse·MSE(out, HR) + w_feat·Σ_l L1(D_l(out), D_l(HR)) + w_adv·softplus(−D(out))``. The
discriminator starts from the one bundled with the prior and is trained alongside (non-saturating
logistic loss, lazy R1). Adam with betas (0.9, 0.99) as in mmagic.

Data: a synthetic domain (``nuclei``: fresh images every step with training seeds, never
≥ :data:`EVAL_SEED_START`) or a folder of images (random crops of the bank's size). LR images:
``skimage.transform.resize(hr, (h/s, w/s), order=3, anti_aliasing=True)``; ``degrade="realistic"``
adds a mild Gaussian blur and Poisson–Gaussian noise to the LR.

Files: a checkpoint (the trainable weights only: the frozen bank is named, not copied), its log
``<out>.log.jsonl``, sample grids ``<out>_samples_<step>.png`` (LR | GLEAN | HR). A bundle from
:func:`export_glean` holds float16 weights, the config and the bank's name (or, for a bank that is
not bundled, its float16 weights), with a model card beside it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data.generators import DOMAINS, EVAL_SEED_START
from ..data.real import held_out_crops, is_real_data, real_sampler
from ..metrics import psnr, psnr_from_mse, ssim
from ..models import portable_command, weights_path
from ..models.load import (
    BUNDLE_FORMAT,
    CKPT_FORMAT,
    bank_fingerprint,
    bundled_glean,
    load_component_prior,
    load_glean,
)
from ..nets.glean import GLEAN
from ..nets.stylegan2 import Discriminator, Generator, build_discriminator, discriminator_config
from ..physics.degrade import DEGRADES, TORCH_DEGRADES, degrade, degrade_batch

__all__ = [
    "DEGRADES",
    "GleanConfig",
    "bundled_glean",
    "degrade",
    "evaluate",
    "evaluate_real",
    "export_glean",
    "load_glean",
    "train_glean",
]


@dataclass
class GleanConfig:
    """Settings of one training run (stored in every checkpoint)."""

    bank: str = "nuclei"  # a bundled prior's name or a generator file
    scale: int = 8  # in_size = bank size / scale
    out: str = "glean.pt"
    data: str = "nuclei"  # a synthetic domain (fresh every step), a real set (data.real) or a folder
    # "bicubic"; "realistic": + mild blur and Poisson–Gaussian noise on the LR; "acquisition" and
    # "mixed": physics.degrade (PSF blur + pixel integration + noise; mixed with clean bicubic)
    degrade: str = "bicubic"
    steps: int = 2000
    batch: int = 4
    lr: float = 2e-4
    lr_d: float = 1e-4
    cosine: bool = True  # decay both learning rates to 0 along a cosine (short CPU budgets)
    rrdb_blocks: int = 3
    width: int = 32
    w_mse: float = 1.0
    w_feat: float = 1e-2  # discriminator feature loss (in place of VGG perceptual)
    w_adv: float = 1e-3
    r1_every: int = 16
    no_bank: bool = False  # the ablation: trainable convs instead of the frozen generator
    bank_frozen: bool = True
    # variants measured by studies/glean_bank_study.py; off by default (no gain found there)
    centred_latents: bool = False  # latents as offsets from the bank's w̄ (see nets.glean.GLEAN)
    residual_fusion: bool = False  # fusion adds a zero-initialised conv to the bank's feature
    latent_lr_mult: float = 1.0  # learning-rate multiplier of the W+ head
    bank_lr_mult: float = 0.1  # learning-rate multiplier of an unfrozen bank (bank_frozen=False)
    # bank samples: each step also trains on this many images drawn from the bank (z → w → image,
    # degraded like the data), with a loss pulling the encoder's W+ towards their true w (in units
    # of the bank's per-dimension spread of w): the encoder learns to invert the bank, so its
    # latents carry each image's content instead of collapsing to one latent for every image
    bank_samples: int = 0
    w_latent: float = 0.0
    real_scale: tuple[float, float] = (0.5, 1.5)  # real data: crop scale range (see data.real)
    max_minutes: float = 0.0  # > 0: after 30 steps, fit ``steps`` (and the cosine) to this budget
    seed: int = 0
    log_every: int = 25
    sample_every: int = 250
    ckpt_every: int = 100


_ARCH_KEYS = (
    "bank",
    "scale",
    "rrdb_blocks",
    "width",
    "no_bank",
    "bank_frozen",
    "centred_latents",
    "residual_fusion",
)

# --------------------------------------------------------------------------------------------
# data


def _domain_hr(domain: str, size: int, first_seed: int, n: int) -> np.ndarray:
    """``(n, C, S, S)`` float32 in ``[0, 1]``: synthetic images with seeds ``first_seed…``."""
    xs = [DOMAINS[domain](size, first_seed + i) for i in range(n)]
    x = np.stack([a["image"] if isinstance(a, dict) else a for a in xs]).astype(np.float32)
    return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x[:, None]


def _folder_images(path: Path, size: int, channels: int) -> list[np.ndarray]:
    """The images of a folder at least ``size`` on each side, ``(C, H, W)`` float32 in ``[0, 1]``."""
    from ..io import list_images, read_image

    out = []
    for f in list_images(path):
        a = read_image(f)
        a = a.astype(np.float32)
        a = (a - a.min()) / max(float(a.max() - a.min()), 1e-12)  # each image by its own range
        if a.ndim == 2:
            a = a[None]
        elif a.ndim == 3 and a.shape[-1] in (3, 4):
            a = a[..., :3].transpose(2, 0, 1)
        else:
            raise ValueError(f"{f.name} has shape {a.shape}: give 2-D grey or RGB images")
        if a.shape[0] != channels:
            a = a.mean(0, keepdims=True) if channels == 1 else np.repeat(a, channels, 0)
        if min(a.shape[1:]) >= size:
            out.append(a)
    if not out:
        raise ValueError(f"no image in {path} is at least {size}×{size} pixels (the bank's size)")
    return out


def _hr_batch(
    cfg: GleanConfig, size: int, step: int, folder: list[np.ndarray] | None, rng: np.random.Generator
) -> np.ndarray:
    """``(B, C, S, S)`` HR images in ``[0, 1]`` for ``step``: fresh synthetic ones (training seeds,
    wrapping below the evaluation seeds) or random crops with flips of the folder's images."""
    if folder is None:
        span = EVAL_SEED_START - EVAL_SEED_START % cfg.batch
        return _domain_hr(cfg.data, size, (step * cfg.batch) % span, cfg.batch)
    out = []
    for _ in range(cfg.batch):
        a = folder[rng.integers(len(folder))]
        y, x = rng.integers(0, a.shape[1] - size + 1), rng.integers(0, a.shape[2] - size + 1)
        p = a[:, y : y + size, x : x + size]
        p = np.rot90(p, rng.integers(4), axes=(1, 2))
        out.append(p[:, :, ::-1] if rng.random() < 0.5 else p)
    return np.ascontiguousarray(np.stack(out), dtype=np.float32)


def _pairs(
    cfg: GleanConfig,
    size: int,
    step: int,
    folder: list[np.ndarray] | None,
    rng: np.random.Generator,
    sampler: Any = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) batches in ``[-1, 1]`` (on the sampler's device for real data)."""
    if sampler is not None or cfg.degrade in TORCH_DEGRADES[1:]:
        hr_t = sampler.sample(cfg.batch, rng) if sampler is not None else None
        if hr_t is None:
            dev = generator.device if generator is not None else "cpu"
            hr_t = torch.from_numpy(_hr_batch(cfg, size, step, folder, rng)).to(dev)
        lr_t = degrade_batch(hr_t, cfg.scale, cfg.degrade, generator)
        return lr_t * 2 - 1, hr_t * 2 - 1
    hr = _hr_batch(cfg, size, step, folder, rng)
    lr = np.stack([degrade(h, cfg.scale, cfg.degrade, rng) for h in hr])
    return torch.from_numpy(lr) * 2 - 1, torch.from_numpy(hr) * 2 - 1


# --------------------------------------------------------------------------------------------
# bank, discriminator, checkpoints


def _bank_and_disc(bank: str) -> tuple[Generator, Discriminator | None]:
    gen, disc, _ = load_component_prior(bank, "the GLEAN latent bank")
    return gen, disc


def _build(cfg: GleanConfig, bank: Generator) -> GLEAN:
    if bank.size % cfg.scale:
        raise ValueError(f"the bank's size {bank.size} is not a multiple of the scale {cfg.scale}")
    return GLEAN(
        bank,
        bank.size // cfg.scale,
        cfg.scale,
        cfg.rrdb_blocks,
        cfg.width,
        bank_frozen=cfg.bank_frozen,
        no_bank=cfg.no_bank,
        centred_latents=cfg.centred_latents,
        residual_fusion=cfg.residual_fusion,
    )


def _param_groups(net: GLEAN, cfg: GleanConfig) -> list[dict[str, Any]]:
    """Adam groups: the W+ head and an unfrozen bank get their own learning-rate multipliers."""
    head = list(net.to_latent.parameters())
    bank = [p for n, p in net.named_parameters() if n.startswith("bank.") and p.requires_grad]
    special = {id(p) for p in head + bank}
    rest = [p for p in net.parameters() if p.requires_grad and id(p) not in special]
    groups = [
        {"params": rest, "lr_mult": 1.0},
        {"params": head, "lr_mult": cfg.latent_lr_mult},
        {"params": bank, "lr_mult": cfg.bank_lr_mult},
    ]
    return [{**g, "lr": cfg.lr * g["lr_mult"]} for g in groups if g["params"]]


def _grid(lr: torch.Tensor, out: torch.Tensor, hr: torch.Tensor) -> np.ndarray:
    """Rows of LR (nearest-upsampled) | GLEAN | HR, all ``(B, C, S, S)`` in ``[-1, 1]`` → uint8 RGB."""
    from ..engines.prior import sample_grid

    up = F.interpolate(lr, size=hr.shape[-2:], mode="nearest")
    rows = torch.stack([up, out, hr], 1).flatten(0, 1)
    return sample_grid(((rows.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy(), 3)


def _feature_loss(d: Discriminator, out: torch.Tensor, hr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean L1 between D's features of ``out`` and ``hr`` over the layers, D's logits of ``out``)."""
    f_out = d.features(out)
    with torch.no_grad():
        f_hr = d.features(hr)
    feat = sum(F.l1_loss(a, b) for a, b in zip(f_out, f_hr)) / len(f_out)
    return feat, d.head(f_out[-1])


def train_glean(cfg: GleanConfig, device: str = "cpu", log: Callable[[str], None] = print) -> Path:
    """Train (or resume, when ``cfg.out`` exists) until ``cfg.steps``; returns the checkpoint path.

    The checkpoint (``torch.load(weights_only=True)``) holds the trainable GLEAN weights (``model``),
    the discriminator ``d``, both optimisers, ``step``, ``wall_s``, ``config`` and the net's
    ``glean`` settings; the bank is referred to by ``config["bank"]`` with a ``bank_fingerprint``.
    """
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if cfg.degrade not in DEGRADES:
        raise ValueError(f"unknown degrade {cfg.degrade!r}: choose one of {', '.join(DEGRADES)}")
    if is_real_data(cfg.data) and cfg.degrade not in TORCH_DEGRADES:
        raise ValueError(f"real data takes --degrade {', '.join(TORCH_DEGRADES)}, not {cfg.degrade!r}")
    dev = torch.device(device)
    torch.manual_seed(cfg.seed)
    bank, d = _bank_and_disc(cfg.bank)
    fingerprint = bank_fingerprint(bank)
    if d is None:
        log(f"the bank {cfg.bank!r} carries no discriminator: starting one from scratch")
        d = build_discriminator(discriminator_config({"size": bank.size}, bank.image_channels))
    folder, sampler = None, None
    if is_real_data(cfg.data):
        try:
            sampler = real_sampler(cfg.data, bank.size, device=dev, scale=tuple(cfg.real_scale))
        except FileNotFoundError as err:  # the CLI turns ValueError into its one-line error
            raise ValueError(str(err)) from None
    elif cfg.data in DOMAINS:
        if _domain_hr(cfg.data, 8, 0, 1).shape[1] != bank.image_channels:
            raise ValueError(f"the domain {cfg.data!r} and the bank {cfg.bank!r} differ in channels")
    elif Path(cfg.data).is_dir():
        folder = _folder_images(Path(cfg.data), bank.size, bank.image_channels)
    else:
        raise ValueError(
            f"data must be a synthetic domain ({', '.join(DOMAINS)}) or a folder, not {cfg.data!r}"
        )
    # the bank as a source of training images (kept apart: the ablation drops it from the net)
    source = bank.to(dev).eval() if cfg.bank_samples > 0 else None
    net = _build(cfg, bank).to(dev)
    d = d.to(dev).train().requires_grad_(True)
    w_std = None
    if source is not None:
        with torch.no_grad():
            zs = torch.randn(4096, bank.style_dim, generator=torch.Generator().manual_seed(0)).to(dev)
            w_std = source.mapping(zs).std(0).clamp_min(1e-3)
    opt_g = torch.optim.Adam(_param_groups(net, cfg), lr=cfg.lr, betas=(0.9, 0.99))
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr_d, betas=(0.9, 0.99))
    step, wall = 0, 0.0
    if out.exists():
        try:
            ck = torch.load(out, map_location=dev, weights_only=True)
            saved = ck["config"]
            assert ck.get("format") == CKPT_FORMAT
        except Exception:  # noqa: BLE001 - any unreadable file: say so, do not overwrite it
            raise ValueError(
                f"{out} exists but is not a GLEAN training checkpoint; choose another --out"
            ) from None
        for key in _ARCH_KEYS:
            # checkpoints from before a setting existed were made without it
            if saved.get(key, False) != getattr(cfg, key):
                raise ValueError(
                    f"{out} was trained with {key}={saved.get(key, False)!r}; use another --out to start afresh"
                )
        net.load_trainable_state_dict(ck["model"])
        d.load_state_dict(ck["d"])
        opt_g.load_state_dict(ck["opt_g"]), opt_d.load_state_dict(ck["opt_d"])
        step, wall = int(ck["step"]), float(ck["wall_s"])
        log(f"resumed {out} at step {step}")
    rng = np.random.default_rng(cfg.seed + step)
    gamma = 0.0002 * bank.size**2 / cfg.batch  # StyleGAN2-ADA's R1 rule of thumb
    logf = out.with_suffix(".log.jsonl")
    # the grid shows held-out images (evaluation seeds are only looked at, never trained on)
    tgen = torch.Generator(device=dev).manual_seed(cfg.seed + step)
    if sampler is not None:
        hr_t = torch.from_numpy(held_out_crops("nuclei", bank.size, 4, seed=1))[:, None]
        grid_lr = degrade_batch(hr_t, cfg.scale, cfg.degrade, torch.Generator().manual_seed(1)) * 2 - 1
        grid_hr = hr_t * 2 - 1
    elif folder is None:
        hr_np = _domain_hr(cfg.data, bank.size, EVAL_SEED_START, 4)
        grng = np.random.default_rng(1)
        grid_lr = (
            torch.from_numpy(np.stack([degrade(h, cfg.scale, cfg.degrade, grng) for h in hr_np])) * 2 - 1
        )
        grid_hr = torch.from_numpy(hr_np) * 2 - 1
    else:
        grid_lr, grid_hr = _pairs(replace(cfg, batch=4), bank.size, 0, folder, np.random.default_rng(1))

    def save() -> None:
        tmp = out.with_suffix(".tmp")
        torch.save(
            {
                "format": CKPT_FORMAT,
                "model": net.trainable_state_dict(),
                "d": d.state_dict(),
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(),
                "step": step,
                "wall_s": wall,
                "config": asdict(cfg),
                "glean": net.config(),
                "bank_fingerprint": fingerprint,
            },
            tmp,
        )
        tmp.replace(out)  # atomic: a stop mid-save never corrupts the checkpoint

    acc: dict[str, float] = {}
    n_acc, t_step, t_log = 0, time.perf_counter(), time.perf_counter()
    start, wall_start = step, wall
    while step < cfg.steps:
        decay = 0.5 * (1 + math.cos(math.pi * step / cfg.steps)) if cfg.cosine else 1.0
        for opt, base in ((opt_g, cfg.lr), (opt_d, cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = base * decay * group.get("lr_mult", 1.0)
        if cfg.max_minutes > 0 and step == start + 30:
            # fit the schedule to the time budget from the speed of the first 30 steps
            rate = 30 / max(wall - wall_start, 1e-6)
            cfg.steps = min(cfg.steps, step + max(1, int(rate * (60 * cfg.max_minutes - wall))))
            log(f"time budget {cfg.max_minutes} min: {rate:.2f} steps/s, training to step {cfg.steps}")
        lr, hr = (t.to(dev) for t in _pairs(cfg, bank.size, step, folder, rng, sampler, tgen))
        # discriminator: GLEAN outputs against HR, lazy R1 on HR
        with torch.no_grad():
            fake = net(lr)
        loss_d = F.softplus(d(fake)).mean() + F.softplus(-d(hr)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        if cfg.r1_every > 0 and step % cfg.r1_every == 0:
            hr_r = hr.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(d(hr_r).sum(), hr_r, create_graph=True)
            opt_d.zero_grad(set_to_none=True)
            (gamma / 2 * grad.pow(2).flatten(1).sum(1).mean() * cfg.r1_every).backward()
            opt_d.step()
        # GLEAN
        d.requires_grad_(False)
        lat = torch.zeros((), device=dev)
        if source is not None:
            with torch.no_grad():
                w_true = source.mapping(
                    torch.randn(cfg.bank_samples, bank.style_dim, device=dev, generator=tgen)
                )
                hr_b = source(w=w_true).clamp(-1, 1)
                lr_b = degrade_batch((hr_b + 1) / 2, cfg.scale, cfg.degrade, tgen) * 2 - 1
            trunk, enc, w_hat = net.encode(torch.cat([lr, lr_b]))
            sr_all = net.decode(torch.cat([lr, lr_b]), trunk, net.bank_path(enc, w_hat))
            sr, sr_b = sr_all[: len(lr)], sr_all[len(lr) :]
            lat = (((w_hat[len(lr) :] - w_true[:, None]) / w_std) ** 2).mean()
            mse = F.mse_loss(sr, hr)
            mse_all = (mse * len(lr) + F.mse_loss(sr_b, hr_b) * len(lr_b)) / (len(lr) + len(lr_b))
        else:
            sr = net(lr)
            mse = mse_all = F.mse_loss(sr, hr)
        feat, logits = _feature_loss(d, sr, hr)
        adv = F.softplus(-logits).mean()
        loss = cfg.w_mse * mse_all + cfg.w_feat * feat + cfg.w_adv * adv + cfg.w_latent * lat
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        d.requires_grad_(True)
        step += 1
        now = time.perf_counter()
        wall += now - t_step
        t_step = now
        for k, v in (("mse", mse), ("feat", feat), ("adv", adv), ("latent", lat), ("loss_d", loss_d)):
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        n_acc += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            rec = {
                "step": step,
                **{k: round(v / n_acc, 5) for k, v in acc.items()},
                "psnr_train": round(psnr_from_mse(acc["mse"] / n_acc, peak=2.0), 2),
                "steps_per_s": round(n_acc / max(now - t_log, 1e-9), 3),
                "wall_s": round(wall, 1),
            }
            acc, n_acc, t_log = {}, 0, now
            with logf.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            log(json.dumps(rec))
        if step % cfg.sample_every == 0 or step == cfg.steps:
            import imageio.v3 as iio

            net.eval()
            with torch.no_grad():
                grid = _grid(grid_lr, net(grid_lr.to(dev)).cpu(), grid_hr)
            net.train()
            iio.imwrite(out.with_name(f"{out.stem}_samples_{step:06d}.png"), grid)
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            save()
    return out


# --------------------------------------------------------------------------------------------
# evaluation, export, loading


@torch.no_grad()
def evaluate(
    net: GLEAN, domain: str = "nuclei", n: int = 16, degrade_mode: str = "bicubic"
) -> dict[str, float]:
    """Mean PSNR/SSIM (data range 1) of GLEAN and of bicubic upsampling on ``n`` held-out images of
    ``domain`` (evaluation seeds ``EVAL_SEED_START…``), LR made by :func:`degrade`."""
    from skimage.transform import resize

    dev = next(net.parameters()).device
    hr = _domain_hr(domain, net.out_size, EVAL_SEED_START, n)
    rng = np.random.default_rng(EVAL_SEED_START)
    rows = []
    for h in hr:
        lr = degrade(h, net.scale, degrade_mode, rng)
        sr = net(torch.from_numpy(lr)[None].to(dev) * 2 - 1)[0].clamp(-1, 1).add(1).div(2).cpu().numpy()
        bic = np.clip(resize(lr, h.shape, order=3), 0, 1)
        ax = 0 if h.shape[0] > 1 else None
        h2, s2, b2 = (a if ax is not None else a[0] for a in (h, sr, bic))
        rows.append(
            (
                psnr(h2, s2, data_range=1.0),
                psnr(h2, b2, data_range=1.0),
                ssim(h2, s2, data_range=1.0, channel_axis=ax),
                ssim(h2, b2, data_range=1.0, channel_axis=ax),
            )
        )
    m = np.mean(rows, axis=0)
    return {
        "glean_psnr": round(float(m[0]), 2),
        "bicubic_psnr": round(float(m[1]), 2),
        "glean_ssim": round(float(m[2]), 4),
        "bicubic_ssim": round(float(m[3]), 4),
    }


@torch.no_grad()
def evaluate_real(
    net: GLEAN, n: int = 32, modes: tuple[str, ...] = ("bicubic", "acquisition")
) -> dict[str, dict[str, float]]:
    """Mean PSNR/SSIM (data range 1) of GLEAN and of bicubic upsampling on ``n`` held-out real
    nuclei crops (:func:`data.real.held_out_crops`, seed 0), per LR degradation of
    :func:`physics.degrade.degrade_batch` (fixed seed)."""
    dev = next(net.parameters()).device
    hr = torch.from_numpy(held_out_crops("nuclei", net.out_size, n, seed=0))[:, None]
    out: dict[str, dict[str, float]] = {}
    for mode in modes:
        lr = degrade_batch(hr, net.scale, mode, torch.Generator().manual_seed(EVAL_SEED_START))
        sr = torch.cat([net(x.to(dev) * 2 - 1).clamp(-1, 1).add(1).div(2).cpu() for x in lr.split(8)])
        bic = F.interpolate(lr, scale_factor=net.scale, mode="bicubic", align_corners=False).clamp(0, 1)
        rows = [
            (
                psnr(h[0].numpy(), s[0].numpy(), data_range=1.0),
                psnr(h[0].numpy(), b[0].numpy(), data_range=1.0),
                ssim(h[0].numpy(), s[0].numpy(), data_range=1.0),
                ssim(h[0].numpy(), b[0].numpy(), data_range=1.0),
            )
            for h, s, b in zip(hr, sr, bic)
        ]
        m = np.mean(rows, axis=0)
        out[mode] = {
            "glean_psnr": round(float(m[0]), 2),
            "bicubic_psnr": round(float(m[1]), 2),
            "glean_ssim": round(float(m[2]), 4),
            "bicubic_ssim": round(float(m[3]), 4),
        }
    return out


def _half(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.half() if v.is_floating_point() else v for k, v in state.items()}


def export_glean(ckpt: str | Path, out: str | Path, command: str = "", eval_images: int = 32) -> Path:
    """Write a bundle ``out`` (``.pt``: float16 trainable weights, the GLEAN settings, the training
    config and the bank's name — or its float16 weights when it is not bundled) and its model card
    (``.json``: data, command, steps, wall time, parameters, held-out PSNR/SSIM vs bicubic)."""
    net, info = load_glean(ckpt)
    ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    cfg = GleanConfig(**{k: v for k, v in ck["config"].items() if k in GleanConfig.__dataclass_fields__})
    bundled_bank = weights_path(cfg.bank) is not None and "/" not in cfg.bank
    bundle: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "model": _half(net.trainable_state_dict()),
        "glean": net.config(),
        "config": asdict(cfg),
        "bank": cfg.bank if bundled_bank else Path(cfg.bank).name,
        "bank_fingerprint": ck.get("bank_fingerprint"),
        "step": int(ck["step"]),
        "wall_s": float(ck["wall_s"]),
    }
    if not bundled_bank and net.bank is not None and net.bank_frozen:
        # a bank that is not bundled travels with the model, so the bundle works elsewhere
        bundle["bank_state"] = _half(net.bank.state_dict())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save(bundle, tmp)
    tmp.replace(out)
    metrics: dict[str, Any] = {}
    if eval_images and cfg.data in DOMAINS:
        metrics = evaluate(net, cfg.data, eval_images, cfg.degrade)
    elif eval_images and is_real_data(cfg.data):
        per_mode = evaluate_real(net, eval_images)
        metrics = {**per_mode["bicubic"], "by_degradation": per_mode}
    counts = net.num_parameters()
    card = {
        "use": f"Super-resolve ×{cfg.scale} images of the bank's domain ({cfg.bank}): LR tiles of "
        f"{net.in_size}×{net.in_size} pixels become {net.out_size}×{net.out_size}"
        + (
            f"; held-out PSNR {metrics['glean_psnr']:.2f} dB vs bicubic {metrics['bicubic_psnr']:.2f} dB"
            if metrics
            else ""
        )
        + ". It invents plausible detail from its prior: not for measurements.",
        "summary": f"GLEAN ×{cfg.scale}{' (ablation: no bank)' if cfg.no_bank else ''}, latent bank "
        f"{cfg.bank}, {counts['trainable']:,} trained parameters",
        "task": "glean",
        "scale": cfg.scale,
        "in_size": net.in_size,
        "channels": net.image_channels,
        "bank": bundle["bank"],
        "architecture": {
            "rrdb_blocks": cfg.rrdb_blocks,
            "width": cfg.width,
            "no_bank": cfg.no_bank,
            **counts,
        },
        "data": (
            f"synthetic {cfg.data!r} images, fresh every step, training seeds below {EVAL_SEED_START}"
            if cfg.data in DOMAINS
            else (
                f"real images {cfg.data}: random augmented crops of the training planes of the fixed split "
                f"(napari_genprior.data.real.SPLIT), scale {tuple(cfg.real_scale)}"
                + (f", plus {cfg.bank_samples} bank samples per step" if cfg.bank_samples else "")
                if is_real_data(cfg.data)
                else f"folder {Path(cfg.data).name}: random crops"
            )
        )
        + f"; LR by {cfg.degrade} degradation",
        "command": portable_command(command) or f"napari-genprior train glean --scale {cfg.scale} --out CKPT",
        "training": {k: v for k, v in asdict(cfg).items() if k not in ("out",)},
        "steps": int(ck["step"]),
        "wall_time": f"{float(ck['wall_s']) / 60:.1f} min",
        "metrics": metrics,
        "evaluation": (
            f"{eval_images} crops of {net.out_size}² of the held-out real nuclei planes (data.real.SPLIT), "
            "LR by clean bicubic (the headline) and by the acquisition degradation (physics.degrade); mean "
            "PSNR/SSIM (data range 1) of GLEAN and of bicubic upsampling of the same LR"
            if is_real_data(cfg.data)
            else f"{eval_images} held-out {cfg.data} images (seeds {EVAL_SEED_START}…), mean PSNR/SSIM "
            "(data range 1) of GLEAN and of bicubic upsampling of the same LR"
        ),
        "weights": "float16, trainable parts only" + ("" if bundled_bank else " + the bank"),
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return out
