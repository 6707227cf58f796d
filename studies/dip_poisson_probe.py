"""Input-perturbation probe for Poisson–Gaussian DIP denoising (fast preset).

    python -m studies.dip_poisson_probe --reg 0.05 --steps 2500
    python -m studies.dip_poisson_probe --reg 0.02 --photons 20 --seed 1

Runs ``fast`` with the ``poisson-gaussian`` noise model for a fixed number of steps on the
synthetic fluorescence image (dip_bench's ``denoise-poisson`` case by default), prints every 100
steps the PSNR (dB, against the clean expected ADU) of the raw iterate and of the averaged
estimate the engine returns, and replays the engine's automatic-stopping rule on the recorded
iterate variance: the step it stops at and the PSNR of the average there. Minutes per run.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
from skimage.metrics import peak_signal_noise_ratio as psnr

from napari_genprior.data.synthetic import fluorescence, poisson_gaussian_noise
from napari_genprior.engines import dip, drive
from napari_genprior.imaging import Normalizer
from studies.dip_stop_study import es_wmv


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reg", type=float, required=True, help="input perturbation (reg_noise)")
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--photons", type=float, default=60.0, help="photons at intensity 1 (benchmark: 60)")
    ap.add_argument("--seed", type=int, default=0, help="image and noise seed (benchmark: 0)")
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args(argv)

    ideal, noisy = poisson_gaussian_noise(
        fluorescence((args.size, args.size), seed=args.seed), photons=args.photons, seed=args.seed
    )
    norm = Normalizer.fit(noisy)
    ref = ideal.astype(np.float64)
    rng = float(ref.max() - ref.min())
    raw: dict[int, float] = {}
    avg: dict[int, float] = {}
    var: list[float | None] = []

    class Window(dip.MovingWindow):
        def push(self, x: Any) -> None:  # x: (C, H, W) raw iterate, normalised
            super().push(x)
            var.append(float(self.variance_map().mean()) if self.full else None)
            if self.count % 10 == 0:
                r = norm.inverse(x.float().cpu().numpy()[0], cast=False).astype(np.float64)
                raw[self.count] = psnr(ref, r, data_range=rng)

    def on_progress(ev: Any) -> None:
        if ev.preview is not None:
            avg[ev.step] = psnr(ref, ev.preview.astype(np.float64), data_range=rng)

    params = {
        "task": "denoise",
        "method": "dip",
        "noise_model": "poisson-gaussian",
        "preset": "fast",
        "seed": 0,
        "iterations": args.steps,
        "reg_noise": args.reg,
        "uncertainty": True,  # keeps the moving window without stopping
        "preview_every": 10,
    }
    orig = dip.fit.MovingWindow
    dip.fit.MovingWindow = Window
    t0 = time.perf_counter()
    try:
        drive(dip.run(noisy, params, device="cpu"), on_progress)
    finally:
        dip.fit.MovingWindow = orig
    print(f"reg {args.reg}, photons {args.photons:g}, seed {args.seed}: {time.perf_counter() - t0:.0f} s")
    print("| step | raw iterate (dB) | average (dB) |\n|---|---|---|")
    for s in range(100, args.steps + 1, 100):
        print(f"| {s} | {raw.get(s, float('nan')):.2f} | {avg.get(s, float('nan')):.2f} |")
    best = max(avg.items(), key=lambda kv: kv[1])
    print(f"best average: {best[1]:.2f} dB at step {best[0]}")
    cfg = dip.resolve_config(dip.DIPParams.from_any({**params, "iterations": "auto", "reg_noise": None}))
    patience = cfg["auto_patience"]
    stop = es_wmv(patience, dip.AUTO_TOLERANCE)({"var": var})  # the engine's rule
    at = avg.get(stop - stop % 10, float("nan"))
    print(f"automatic stopping (patience {patience}): step {stop}, average {at:.2f} dB")


if __name__ == "__main__":
    main()
