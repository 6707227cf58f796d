"""One device run: the real-nuclei prior, then GLEAN ×8/×16 and their no-bank ablations on it.

A one-off recipe for a lent GPU (the bundled ``nuclei`` prior and ``glean-nuclei-x8/x16`` were made
by it; their cards record the commands). Everything is time-boxed so one call fits the lease:

1. ``train gan`` on ``bio-sample-fluo`` (real confocal nuclei + time-lapse training planes) for
   ``--gan-minutes``; export the bundle (float16 EMA generator + its discriminator);
2. four GLEAN runs side by side on that bank, each for ``--glean-minutes``: ×8 and ×16, each with
   the bank and as the equal-size no-bank ablation, same data, losses, seeds and schedule;
3. the checkpoints, without optimiser states, and a tarball of logs and sample grids in ``--out``.

Run: ``python -m benchmarks.gpu_real_priors --out DIR [--device cuda] [--tiny]`` (``--tiny``: a CPU smoke
test of the whole recipe in about a minute). Export the cards afterwards on the CPU (docs/glean.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from napari_genprior.train.gan import GanConfig, export_gan, slim_checkpoint, train_gan
from napari_genprior.train.glean import GleanConfig, train_glean

GLEAN_RUNS = {"g8": (8, False), "a8": (8, True), "g16": (16, False), "a16": (16, True)}


def _slim_glean(path: Path) -> None:
    """A finished GLEAN checkpoint as it must come back (under 16 MB): no optimiser states, no
    discriminator, the model in float16 as its bundle will hold it. (GAN checkpoints:
    :func:`~napari_genprior.train.gan.slim_checkpoint`.)"""
    ck = torch.load(path, map_location="cpu", weights_only=True)
    for k in ("opt_g", "opt_d", "d"):
        ck.pop(k, None)
    ck["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ck["model"].items()}
    torch.save(ck, path)


def glean_config(name: str, bank: str, out: Path, minutes: float, tiny: bool) -> GleanConfig:
    scale, no_bank = GLEAN_RUNS[name]
    return GleanConfig(
        bank=bank,
        scale=scale,
        out=str(out / f"{name}.pt"),
        data="bio-sample-fluo",
        degrade="mixed",
        steps=40 if tiny else 200_000,
        batch=4 if tiny else 32,
        bank_samples=2 if tiny else 16,
        w_latent=0.05,
        w_feat=1e-2,
        w_adv=1e-2,
        centred_latents=True,
        residual_fusion=True,
        no_bank=no_bank,
        max_minutes=minutes,
        sample_every=20 if tiny else 1000,
        ckpt_every=20 if tiny else 1000,
        log_every=10 if tiny else 100,
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--gan-minutes", type=float, default=3.5)
    ap.add_argument("--glean-minutes", type=float, default=3.3)
    ap.add_argument("--tiny", action="store_true")
    ap.add_argument("--glean-one", default=None, help=argparse.SUPPRESS)  # child process: one GLEAN run
    args = ap.parse_args()
    torch.backends.cudnn.benchmark = True
    if args.glean_one:
        spec = json.loads(args.glean_one)
        cfg = glean_config(spec["name"], spec["bank"], args.out, spec["minutes"], spec["tiny"])
        train_glean(cfg, device=args.device, log=lambda m: print(spec["name"], m, flush=True))
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    gcfg = GanConfig(
        data="bio-sample-fluo",
        out=str(args.out / "gan_real.pt"),
        size=128,
        steps=6 if args.tiny else 1_000_000,
        batch=4 if args.tiny else 64,
        max_channels=64,
        channel_base=4096,
        latent_input=True,
        noise=False,
        augment=True,
        amp=args.device.startswith("cuda"),
        max_minutes=0 if args.tiny else args.gan_minutes,
        sample_every=3 if args.tiny else 1000,
        ckpt_every=3 if args.tiny else 1000,
    )
    train_gan(gcfg, device=args.device, log=lambda m: print("gan", m, flush=True))
    slim_checkpoint(args.out / "gan_real.pt", args.out / "gan_real.pt")
    print(f"gan done at {time.time() - t0:.0f} s", flush=True)
    bank = args.out / "nuclei.pt"
    export_gan(args.out / "gan_real.pt", bank, command="studies/gpu_real_priors.py", n_eval=32)
    print(f"export done at {time.time() - t0:.0f} s", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "3"}
    procs = []
    for name in GLEAN_RUNS:
        spec = {"name": name, "bank": str(bank), "minutes": args.glean_minutes, "tiny": args.tiny}
        cmd = [
            sys.executable,
            __file__,
            "--out",
            str(args.out),
            "--device",
            args.device,
            "--glean-one",
            json.dumps(spec),
        ]
        procs.append(subprocess.Popen(cmd, env=env))
    codes = [p.wait() for p in procs]
    print(f"glean runs done at {time.time() - t0:.0f} s, exit codes {codes}", flush=True)
    for name in GLEAN_RUNS:
        if (args.out / f"{name}.pt").exists():
            _slim_glean(args.out / f"{name}.pt")
    with tarfile.open(args.out / "logs.tar.gz", "w:gz") as tf:
        for f in sorted(args.out.iterdir()):
            if f.suffix in (".png", ".jsonl", ".json"):
                tf.add(f, arcname=f.name)
                f.unlink()
    (args.out / "configs.json").write_text(json.dumps({"gan": asdict(gcfg)}, indent=1, default=str))
    print(f"all done at {time.time() - t0:.0f} s", flush=True)
    return 0 if all(c == 0 for c in codes) else 1


if __name__ == "__main__":
    sys.exit(main())
