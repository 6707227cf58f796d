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
from ..engines.base import InputError
from ..models import list_models, portable_command, weights_path
from ..nets.glean import GLEAN
from ..nets.stylegan2 import Discriminator, Generator

__all__ = [
    "DEGRADES",
    "GleanConfig",
    "bundled_glean",
    "degrade",
    "evaluate",
    "export_glean",
    "load_glean",
    "train_glean",
]

DEGRADES = ("bicubic", "realistic")
CKPT_FORMAT = "napari-genprior-glean-checkpoint"
BUNDLE_FORMAT = "napari-genprior-glean"


@dataclass
class GleanConfig:
    """Settings of one training run (stored in every checkpoint)."""

    bank: str = "nuclei"  # a bundled prior's name or a generator file
    scale: int = 8  # in_size = bank size / scale
    out: str = "glean.pt"
    data: str = "nuclei"  # a synthetic domain (fresh images every step) or a folder of images
    degrade: str = "bicubic"  # or "realistic": + mild blur and Poisson–Gaussian noise on the LR
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
    # variants measured by benchmarks/glean_bank_study.py; off by default (no gain found there)
    centred_latents: bool = False  # latents as offsets from the bank's w̄ (see nets.glean.GLEAN)
    residual_fusion: bool = False  # fusion adds a zero-initialised conv to the bank's feature
    latent_lr_mult: float = 1.0  # learning-rate multiplier of the W+ head
    bank_lr_mult: float = 0.1  # learning-rate multiplier of an unfrozen bank (bank_frozen=False)
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


def bundled_glean() -> list[str]:
    """Names of the bundled GLEAN models (cards with ``"task": "glean"`` and weights present)."""
    return [m["name"] for m in list_models() if m.get("task") == "glean"]


# --------------------------------------------------------------------------------------------
# data


def degrade(
    hr: np.ndarray, scale: int, mode: str = "bicubic", rng: np.random.Generator | None = None
) -> np.ndarray:
    """HR ``(C, H, W)`` float in ``[0, 1]`` → LR ``(C, H/s, W/s)`` float32 in ``[0, 1]``.

    ``bicubic``: antialiased bicubic resize. ``realistic``: the LR is further blurred (Gaussian,
    σ ∈ [0, 0.7] LR pixels) and gets Poisson noise (peak 50–1000 photons) plus Gaussian read noise
    (σ ∈ [0, 0.02]); ``rng`` draws these.
    """
    from skimage.transform import resize

    c, h, w = hr.shape
    lr = resize(hr, (c, h // scale, w // scale), order=3, anti_aliasing=True).astype(np.float32)
    if mode == "realistic":
        from scipy.ndimage import gaussian_filter

        rng = rng or np.random.default_rng()
        lr = gaussian_filter(lr, (0, *(2 * [rng.uniform(0.0, 0.7)])))
        peak = rng.uniform(50, 1000)
        lr = rng.poisson(np.clip(lr, 0, None) * peak) / peak + rng.normal(0, rng.uniform(0, 0.02), lr.shape)
    elif mode != "bicubic":
        raise ValueError(f"unknown degrade {mode!r}: choose one of {', '.join(DEGRADES)}")
    return np.clip(lr, 0, 1).astype(np.float32)


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
    cfg: GleanConfig, size: int, step: int, folder: list[np.ndarray] | None, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """(LR, HR) batches in ``[-1, 1]``."""
    hr = _hr_batch(cfg, size, step, folder, rng)
    lr = np.stack([degrade(h, cfg.scale, cfg.degrade, rng) for h in hr])
    return torch.from_numpy(lr) * 2 - 1, torch.from_numpy(hr) * 2 - 1


# --------------------------------------------------------------------------------------------
# bank, discriminator, checkpoints


def _bank_and_disc(bank: str) -> tuple[Generator, Discriminator | None]:
    from ..engines.join import load_component_prior

    gen, disc, _ = load_component_prior(bank, "the GLEAN latent bank")
    return gen, disc


def _fingerprint(bank: Generator) -> float:
    """A number that changes when the bank's weights do (sum of |w| over the synthesis layers)."""
    mods = [bank.input, bank.conv1, bank.convs]
    return float(sum(p.detach().double().abs().sum() for m in mods for p in m.parameters()))


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
    dev = torch.device(device)
    torch.manual_seed(cfg.seed)
    bank, d = _bank_and_disc(cfg.bank)
    fingerprint = _fingerprint(bank)
    if d is None:
        from .disc import build_discriminator, discriminator_config

        log(f"the bank {cfg.bank!r} carries no discriminator: starting one from scratch")
        d = build_discriminator(discriminator_config({"size": bank.size}, bank.image_channels))
    folder = None
    if cfg.data in DOMAINS:
        if _domain_hr(cfg.data, 8, 0, 1).shape[1] != bank.image_channels:
            raise ValueError(f"the domain {cfg.data!r} and the bank {cfg.bank!r} differ in channels")
    elif Path(cfg.data).is_dir():
        folder = _folder_images(Path(cfg.data), bank.size, bank.image_channels)
    else:
        raise ValueError(
            f"data must be a synthetic domain ({', '.join(DOMAINS)}) or a folder, not {cfg.data!r}"
        )
    net = _build(cfg, bank).to(dev)
    d = d.to(dev).train().requires_grad_(True)
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
    if folder is None:
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
    while step < cfg.steps:
        decay = 0.5 * (1 + math.cos(math.pi * step / cfg.steps)) if cfg.cosine else 1.0
        for opt, base in ((opt_g, cfg.lr), (opt_d, cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = base * decay * group.get("lr_mult", 1.0)
        lr, hr = (t.to(dev) for t in _pairs(cfg, bank.size, step, folder, rng))
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
        sr = net(lr)
        mse = F.mse_loss(sr, hr)
        feat, logits = _feature_loss(d, sr, hr)
        adv = F.softplus(-logits).mean()
        loss = cfg.w_mse * mse + cfg.w_feat * feat + cfg.w_adv * adv
        opt_g.zero_grad(set_to_none=True)
        loss.backward()
        opt_g.step()
        d.requires_grad_(True)
        step += 1
        now = time.perf_counter()
        wall += now - t_step
        t_step = now
        for k, v in (("mse", mse), ("feat", feat), ("adv", adv), ("loss_d", loss_d)):
            acc[k] = acc.get(k, 0.0) + float(v.detach())
        n_acc += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            rec = {
                "step": step,
                **{k: round(v / n_acc, 5) for k, v in acc.items()},
                "psnr_train": round(10 * math.log10(4 / max(acc["mse"] / n_acc, 1e-12)), 2),
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
    from skimage.metrics import peak_signal_noise_ratio as psnr
    from skimage.metrics import structural_similarity as ssim
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
    metrics = evaluate(net, cfg.data, eval_images, cfg.degrade) if cfg.data in DOMAINS and eval_images else {}
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
            else f"folder {Path(cfg.data).name}: random crops"
        )
        + f"; LR by {cfg.degrade} degradation",
        "command": portable_command(command) or f"napari-genprior train glean --scale {cfg.scale} --out CKPT",
        "training": {k: v for k, v in asdict(cfg).items() if k not in ("out",)},
        "steps": int(ck["step"]),
        "wall_time": f"{float(ck['wall_s']) / 60:.1f} min",
        "metrics": metrics,
        "evaluation": f"{eval_images} held-out {cfg.data} images (seeds {EVAL_SEED_START}…), mean PSNR/SSIM "
        "(data range 1) of GLEAN and of bicubic upsampling of the same LR",
        "weights": "float16, trainable parts only" + ("" if bundled_bank else " + the bank"),
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return out


def load_glean(name_or_path: str | Path, device: str | torch.device = "cpu") -> tuple[GLEAN, dict[str, Any]]:
    """A GLEAN net in eval mode (float32) and its info (``model``, ``scale``, ``in_size``,
    ``channels``, ``bank``, ``steps``) from a bundled model's name, a bundle of :func:`export_glean`
    or a checkpoint of :func:`train_glean`. Anything else raises :class:`InputError` saying why."""
    label = str(name_or_path)
    is_name = "/" not in label and "\\" not in label and not label.endswith(".pt")
    path = weights_path(label) if is_name else Path(label)
    if path is None or not path.is_file():
        names = ", ".join(bundled_glean()) or "none bundled yet"
        what = f"unknown model {label!r}" if is_name else f"model file {label} does not exist"
        raise InputError(
            f"{what}: give a bundled GLEAN model ({names}) or the path of a file made by "
            "`napari-genprior train glean` (or its export)"
        )
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same advice
        raise InputError(
            f"{path} is not a GLEAN model: not a readable torch file ({str(err).splitlines()[0]})"
        ) from None
    if not isinstance(ck, dict) or ck.get("format") not in (BUNDLE_FORMAT, CKPT_FORMAT) or "glean" not in ck:
        raise InputError(
            f"{path} is not a GLEAN model (no GLEAN settings in it): give a file made by "
            "`napari-genprior train glean` or its export"
        )
    gcfg, bank_ref = ck["glean"], ck.get("bank") or ck["config"]["bank"]
    if "bank_state" in ck:
        bank = Generator.from_state_dict({k: v.float() for k, v in ck["bank_state"].items()}).eval()
    else:
        from ..engines.prior import load_prior

        ref = bank_ref
        if not weights_path(str(ref)) and not Path(ref).is_absolute():
            ref = path.parent / ref  # a bank file named relative to the model
        try:
            bank = load_prior(ref)
        except (FileNotFoundError, ValueError) as err:
            raise InputError(f"the latent bank {bank_ref!r} of {path.name} is not available: {err}") from None
    fp = ck.get("bank_fingerprint")
    if fp and not gcfg["no_bank"] and gcfg["bank_frozen"] and abs(_fingerprint(bank) - fp) > 1e-3 * abs(fp):
        raise InputError(f"the latent bank {bank_ref!r} differs from the one {path.name} was trained with")
    try:
        net = GLEAN(
            bank,
            int(gcfg["in_size"]),
            int(gcfg["scale"]),
            int(gcfg["rrdb_blocks"]),
            int(gcfg["width"]),
            bank_frozen=bool(gcfg["bank_frozen"]),
            no_bank=bool(gcfg["no_bank"]),
            centred_latents=bool(gcfg.get("centred_latents", False)),
            residual_fusion=bool(gcfg.get("residual_fusion", False)),
        )
        net.load_trainable_state_dict({k: v.float() for k, v in ck["model"].items()})
    except (RuntimeError, ValueError, KeyError) as err:
        raise InputError(f"{path} does not load as a GLEAN model: {str(err).splitlines()[0]}") from None
    info = {
        "model": label,
        "scale": net.scale,
        "in_size": net.in_size,
        "channels": net.image_channels,
        "bank": str(bank_ref),
        "no_bank": net.no_bank,
        "steps": int(ck.get("step", 0)),
    }
    return net.to(device).eval(), info
