"""Train an Invertible Image Rescaling network (Xiao et al., ECCV 2020) for ×2 or ×4.

Losses of the paper: ``λ_fit·Σ(LR − bicubic(HR))²`` keeps the LR a good thumbnail,
``λ_ce·Σz²`` pushes the latent towards N(0, 1), and ``λ_rec·Charbonnier(HR, inverse(Q(LR), ẑ))``
with ``ẑ ~ N(0, τ²)`` and ``Q`` rounding to 8 bits (straight-through gradient) teaches the
inverse to restore what the LR, as stored, keeps. ``τ`` ramps from 0 to 1 over the first
``tau_ramp`` steps so the network first learns to hide detail in the LR and then to ignore z.
``train_tau`` sets the final τ: 1 as in the paper, or 0 to train only for the mean latent, which
on a short (CPU) budget gives far better round trips at τ = 0 (the bundled models; see their cards).

The ``builtin`` corpus: scikit-image's bundled images (grey) and the project's synthetic
fluorescence images, minus :data:`HELD_OUT`, which only the validation and the benchmark use.
Checkpoints hold the model, the optimiser, the step and the log; training resumes from them.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.synthetic import fluorescence
from ..metrics import psnr, ssim
from ..models import irn_use, portable_command
from ..nets.irn import InvRescaleNet
from ..physics.degrade import bicubic_down, quantise

__all__ = [
    "HELD_OUT",
    "TRAIN_IMAGES",
    "IrnConfig",
    "bicubic_down",
    "build_net",
    "builtin_corpus",
    "evaluate",
    "export_irn",
    "losses",
    "held_out_images",
    "quantise",
    "train_irn",
]

#: scikit-image images used for training (converted to grey).
TRAIN_IMAGES = (
    "brick",
    "grass",
    "gravel",
    "moon",
    "page",
    "text",
    "clock",
    "coins",
    "cell",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "rocket",
    "chelsea",
    "stereo_motorcycle",
)
#: Never trained on: scikit-image's camera, astronaut and coffee, and synthetic fluorescence
#: images with evaluation seeds (≥ 1,000,000).
HELD_OUT = ("camera", "astronaut", "coffee", "fluorescence:1000000", "fluorescence:1000001")
N_FLUO_TRAIN = 24


@dataclass
class IrnConfig:
    """Settings of one training run (stored in every checkpoint)."""

    scale: int = 2
    data: str = "builtin"  # or a folder of images
    out: str = "irn.pt"
    steps: int = 1000
    batch: int = 8
    patch: int = 64
    channels: int = 1
    blocks: int = 8
    growth: int = 32
    lr: float = 2e-4
    lr_min: float = 1e-5  # cosine decay to this
    tau_ramp: int = 0  # steps over which τ of the sampled z rises from 0 to train_tau (0: no ramp)
    train_tau: float = 1.0  # std of the z the inverse sees in training (paper: 1; 0: mean latent only)
    val_every: int = 250
    ckpt_every: int = 100
    seed: int = 0

    def lambdas(self) -> tuple[float, float, float]:
        """(λ_fit, λ_rec, λ_ce) of the paper: (4, 1, 1) at ×2, (16, 1, 1) at ×4."""
        return {2: (4.0, 1.0, 1.0), 4: (16.0, 1.0, 1.0), 8: (64.0, 1.0, 1.0)}[self.scale]


def _grey(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif a.dtype.kind in "ui":
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    if a.ndim == 3:
        a = a[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)
    return a.astype(np.float32)


def held_out_images(size: int = 256) -> dict[str, np.ndarray]:
    """The evaluation images, grey float32 ``(size, size)`` in ``[0, 1]`` (centre crop, resized)."""
    from skimage import data as skdata
    from skimage.transform import resize

    out = {}
    for name in HELD_OUT:
        if name.startswith("fluorescence:"):
            out[name] = fluorescence((size, size), seed=int(name.split(":")[1]))
            continue
        a = _grey(getattr(skdata, name)())
        h, w = a.shape
        s = min(h, w)
        a = a[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
        out[name] = resize(a, (size, size), anti_aliasing=True).astype(np.float32)
    return out


def builtin_corpus() -> list[np.ndarray]:
    """Training images, grey float32 in ``[0, 1]``, various sizes (none of :data:`HELD_OUT`)."""
    from skimage import data as skdata

    imgs = []
    for name in TRAIN_IMAGES:
        a = getattr(skdata, name)()
        imgs.append(_grey(a[0] if isinstance(a, tuple) else a))  # stereo_motorcycle: (left, right, disparity)
    imgs += [fluorescence((256, 256), seed=s) for s in range(N_FLUO_TRAIN)]  # seeds < EVAL_SEED_START
    return imgs


def _folder_corpus(path: Path) -> list[np.ndarray]:
    from ..io import list_images, read_image

    files = list_images(path)
    out = []
    for f in files:
        a = read_image(f)
        if (a.ndim == 3 and a.shape[-1] not in (3, 4)) or a.ndim > 3:
            raise ValueError(
                f"{f.name} has shape {a.shape}: give 2-D grey or RGB images (one plane per file)"
            )
        if a.dtype.kind == "f" or (a.dtype.kind in "ui" and a.dtype.itemsize > 1):
            a = a.astype(np.float32)  # 16-bit and float: scale by the image's own range
            a = (a - a.min()) / max(float(a.max() - a.min()), 1e-12)
        out.append(_grey(a))
    return out


def _patches(imgs: list[np.ndarray], n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random crops ``(n, 1, size, size)`` with random flips and 90° rotations."""
    out = np.empty((n, 1, size, size), np.float32)
    sizes = np.array([a.size for a in imgs], np.float64)
    for k in range(n):
        a = imgs[rng.choice(len(imgs), p=sizes / sizes.sum())]
        y = rng.integers(0, a.shape[0] - size + 1)
        x = rng.integers(0, a.shape[1] - size + 1)
        p = a[y : y + size, x : x + size]
        p = np.rot90(p, rng.integers(4))
        if rng.random() < 0.5:
            p = p[:, ::-1]
        out[k, 0] = p
    return out


def _lr(cfg: IrnConfig, step: int) -> float:
    t = min(step / max(cfg.steps, 1), 1.0)
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * t))


def losses(
    net: InvRescaleNet, hr: torch.Tensor, scale: int, tau: float, generator: torch.Generator | None = None
) -> dict[str, torch.Tensor]:
    """The three training losses for a batch ``hr`` ``(B, C, H, W)`` in ``[0, 1]``.

    As in the paper each loss is a sum over its own elements (LR pixels, latent entries, HR
    pixels), here divided by the number of HR values ``B·C·H·W`` so that the λs weigh them as the
    paper does while the total stays O(1)."""
    c = hr.shape[1]
    y = net(hr)
    lr, z = y[:, :c], y[:, c:]
    n = hr.numel()
    fit = (lr - bicubic_down(hr, scale)).pow(2).sum() / n
    ce = z.pow(2).sum() / n
    z_hat = (
        tau * torch.randn(z.shape, generator=generator, device=z.device) if tau > 0 else torch.zeros_like(z)
    )
    rec = net.inverse(torch.cat([quantise(lr), z_hat], 1))
    charb = torch.sqrt((rec - hr) ** 2 + 1e-6).sum() / n
    return {"fit": fit, "ce": ce, "rec": charb}


@torch.no_grad()
def evaluate(
    net: InvRescaleNet, images: dict[str, np.ndarray], scale: int, tau: float = 1.0, seed: int = 0
) -> dict[str, tuple[float, float, float, float, float]]:
    """Scores on grey images ``(H, W)`` in ``[0, 1]``: ``{name: (IRN round-trip PSNR, bicubic
    down+up PSNR, LR-vs-bicubic-LR PSNR, IRN SSIM, bicubic SSIM)}``; 8-bit LR, z ~ N(0, τ²)."""
    dev = next(net.parameters()).device
    g = torch.Generator(device=dev).manual_seed(seed)
    out = {}
    for name, img in images.items():
        x = torch.from_numpy(img)[None, None].to(dev)
        y = net(x)
        lr = torch.round(y[:, :1].clamp(0, 1) * 255) / 255
        z = tau * torch.randn(y[:, 1:].shape, generator=g, device=dev)
        rec = net.inverse(torch.cat([lr, z], 1)).clamp(0, 1)[0, 0].cpu().numpy()
        bic_lr = torch.round(bicubic_down(x, scale).clamp(0, 1) * 255) / 255
        bic = F.interpolate(bic_lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
        bic = bic[0, 0].cpu().numpy()
        target_lr = bicubic_down(x, scale)[0, 0].clamp(0, 1).cpu().numpy()
        out[name] = (
            psnr(img, rec, data_range=1.0),
            psnr(img, bic, data_range=1.0),
            psnr(target_lr, lr[0, 0].cpu().numpy(), data_range=1.0),
            ssim(img, rec, data_range=1.0),
            ssim(img, bic, data_range=1.0),
        )
    return out


def build_net(cfg: IrnConfig) -> InvRescaleNet:
    """The network a config describes (grey: ``cfg.channels`` must be 1)."""
    if cfg.channels != 1:
        raise ValueError("training supports grey (1-channel) networks; RGB data is converted to grey")
    levels = int(math.log2(cfg.scale))
    if 2**levels != cfg.scale or levels < 1:
        raise ValueError(f"scale must be 2, 4 or 8, not {cfg.scale}")
    return InvRescaleNet(cfg.channels, levels, cfg.blocks, cfg.growth)


def train_irn(cfg: IrnConfig, device: str = "cpu", log: Callable[[str], None] = print) -> Path:
    """Train (or resume) and return the checkpoint path. The log is ``<out>.log.jsonl``."""
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dev = torch.device(device)
    torch.manual_seed(cfg.seed)
    net = build_net(cfg).to(dev)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    step, history, wall = 0, [], 0.0
    if out.exists():
        try:
            ck = torch.load(out, map_location=dev, weights_only=True)
            saved = ck["config"]
        except Exception as err:  # noqa: BLE001 - any unreadable file: say so, do not overwrite it
            raise ValueError(
                f"{out} exists but is not a training checkpoint ({err}); choose another --out"
            ) from None
        for key in ("scale", "channels", "blocks", "growth"):
            if saved[key] != getattr(cfg, key):
                raise ValueError(
                    f"{out} was trained with {key}={saved[key]}; use another --out to start afresh"
                )
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        step, wall = int(ck["step"]), float(ck.get("wall_s", 0.0))
        history = json.loads(ck.get("history", "[]"))
        log(f"resumed {out} at step {step}")
    imgs = builtin_corpus() if cfg.data == "builtin" else _folder_corpus(Path(cfg.data))
    imgs = [a for a in imgs if min(a.shape) >= cfg.patch]
    if not imgs:
        raise ValueError(f"no training image is at least {cfg.patch}×{cfg.patch} pixels")
    val = {k: v[:128, :128] for k, v in held_out_images(256).items()}
    rng = np.random.default_rng(cfg.seed + step)
    gen = torch.Generator(device=dev).manual_seed(cfg.seed + step)
    lam_fit, lam_rec, lam_ce = cfg.lambdas()
    logf = out.with_suffix(".log.jsonl")

    def save() -> None:
        tmp = out.with_suffix(".tmp")
        torch.save(
            {
                "model": net.state_dict(),
                "opt": opt.state_dict(),
                "step": step,
                "wall_s": wall,
                "config": asdict(cfg),
                "history": json.dumps(history),
            },
            tmp,
        )
        tmp.replace(out)

    t_last = time.perf_counter()
    while step < cfg.steps:
        for group in opt.param_groups:
            group["lr"] = _lr(cfg, step)
        tau = cfg.train_tau * (min(1.0, step / cfg.tau_ramp) if cfg.tau_ramp > 0 else 1.0)
        hr = torch.from_numpy(_patches(imgs, cfg.batch, cfg.patch, rng)).to(dev)
        ls = losses(net, hr, cfg.scale, tau, gen)
        loss = lam_fit * ls["fit"] + lam_rec * ls["rec"] + lam_ce * ls["ce"]
        if not torch.isfinite(loss):  # a rare bad batch must not poison hours of training
            log(f"step {step}: non-finite loss, batch skipped")
            rng = np.random.default_rng(cfg.seed + step + 7919)
            continue
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
        opt.step()
        step += 1
        now = time.perf_counter()
        wall += now - t_last
        t_last = now
        if step % cfg.val_every == 0 or step == cfg.steps:
            net.eval()
            ev = evaluate(net, val, cfg.scale)
            ev0 = evaluate(net, val, cfg.scale, tau=0.0)
            net.train()
            rec = {
                "step": step,
                "wall_s": round(wall, 1),
                "tau": tau,
                **{k: float(v.detach()) for k, v in ls.items()},
                "val_psnr": float(np.mean([v[0] for v in ev.values()])),
                "val_psnr_tau0": float(np.mean([v[0] for v in ev0.values()])),
                "val_bicubic": float(np.mean([v[1] for v in ev.values()])),
                "val_lr_vs_bicubic": float(np.mean([v[2] for v in ev.values()])),
            }
            history.append(rec)
            with logf.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            log(
                f"step {step}/{cfg.steps}  {wall:.0f} s  held-out round trip {rec['val_psnr']:.2f} dB "
                f"(τ=0: {rec['val_psnr_tau0']:.2f}) "
                f"(bicubic {rec['val_bicubic']:.2f}), LR vs bicubic {rec['val_lr_vs_bicubic']:.2f} dB"
            )
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            save()
    return out


def export_irn(ckpt: str | Path, out: str | Path, command: str = "") -> Path:
    """Write a bundle from a training checkpoint: ``out`` (``.pt``: ``{"model", "config"}``, no
    optimiser state) and the model card ``out`` with ``.json`` (data, command, steps, wall time,
    held-out PSNR/SSIM of the round trip with τ = 1 and τ = 0 against bicubic down+up, and the
    recommended τ: the better of the two)."""
    ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    cfg = IrnConfig(**{k: v for k, v in ck["config"].items() if k in IrnConfig.__dataclass_fields__})
    net = build_net(cfg)
    net.load_state_dict(ck["model"])
    net.eval()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model": net.state_dict(), "config": asdict(cfg)}, out)
    images = held_out_images(256)
    rows = {}
    for tau in (1.0, 0.0):
        ev = evaluate(net, images, cfg.scale, tau=tau)
        rows[tau] = ev
    per_image = {
        name: {
            "irn_psnr_tau1": round(rows[1.0][name][0], 2),
            "irn_ssim_tau1": round(rows[1.0][name][3], 3),
            "irn_psnr_tau0": round(rows[0.0][name][0], 2),
            "bicubic_psnr": round(rows[1.0][name][1], 2),
            "bicubic_ssim": round(rows[1.0][name][4], 3),
            "lr_vs_bicubic_psnr": round(rows[1.0][name][2], 2),
        }
        for name in images
    }
    mean = {
        k: round(float(np.mean([v[k] for v in per_image.values()])), 2)
        for k in next(iter(per_image.values()))
    }
    step = int(ck["step"])
    final_tau = cfg.train_tau * (min(1.0, step / cfg.tau_ramp) if cfg.tau_ramp > 0 else 1.0)
    recommended = 0.0 if mean["irn_psnr_tau0"] > mean["irn_psnr_tau1"] else 1.0
    card = {
        "use": irn_use(cfg.scale, mean, recommended),
        "summary": f"Invertible Image Rescaling ×{cfg.scale}, grey (1 channel), {sum(p.numel() for p in net.parameters()):,} parameters",
        "task": "irn",
        "scale": cfg.scale,
        "architecture": {"blocks_per_level": cfg.blocks, "growth": cfg.growth, "channels": cfg.channels},
        "data": (
            "builtin: scikit-image bundled images "
            + ", ".join(TRAIN_IMAGES)
            + f" (grey) and {N_FLUO_TRAIN} synthetic "
            "fluorescence images (seeds 0–23); random crops with flips and 90° rotations"
            if cfg.data == "builtin"
            else f"folder {cfg.data}"
        ),
        "held_out": list(HELD_OUT),
        "command": portable_command(command)
        or f"napari-genprior train irn --scale {cfg.scale} --steps {cfg.steps} --out CKPT",
        "training": {k: v for k, v in asdict(cfg).items() if k not in ("out", "data")},
        "steps": step,
        "wall_time": f"{float(ck.get('wall_s', 0)) / 60:.0f} min",
        "final_train_tau": float(f"{final_tau:.3g}"),
        # the τ that `up` uses unless told otherwise: the better of the two on the held-out images
        "recommended_tau": recommended,
        "metrics": {"mean": mean, "per_image": per_image},
        "evaluation": "held-out images at 256×256, 8-bit LR, PSNR over the whole image (data range 1); "
        "bicubic = antialiased bicubic down + bicubic up",
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return out
