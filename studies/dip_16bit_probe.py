"""DIP on a real 16-bit fluorescence plane at a fixed, short step count: is the result worse than
its input? (issue 40, part 3: the short-run failure on held-out 16-bit data)

The case: the held-out real confocal nuclei plane z = 32 (``data.real``, ``SPLIT``) taken as the
expected photon rate, ``photons`` at intensity 1, through a camera with gain 8, read noise 30 ADU
and an offset of 200 (``data.synthetic.poisson_gaussian_noise``; 500 photons gives a noisy input
of about 34 dB). The "truth" is the real plane itself, which carries the microscope's own noise:
the noise estimate sees that noise too.

Prints, per noise model: the noisy input's PSNR, DIP's at ``--steps`` (fast preset, seed 0), its
mean bias, and the Poisson–Gaussian estimate ``(a, b)`` beside the simulated camera's; and what a
residual Wiener step (``x + g·(y − x)``, ``g = max(0, 1 − var / local mean of (y − x)²)``, 7×7)
gives with the estimated and with the simulated noise variance.

    python -m studies.dip_16bit_probe [--photons 500] [--steps 300] [--models poisson-gaussian gaussian]
        [--synthetic 96]

``--synthetic N``: the same camera on the synthetic ``fluorescence((N, N), seed=3)`` instead of the
real plane: a clean truth with the same statistics (the regression test's case).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage as ndi

from napari_genprior.data.real import real_planes
from napari_genprior.data.synthetic import fluorescence, poisson_gaussian_noise
from napari_genprior.engines import dip, drive
from napari_genprior.metrics import psnr
from napari_genprior.physics.noise import estimate_poisson_gaussian

GAIN, OFFSET, READ = 8.0, 200.0, 30.0


def wiener(y: np.ndarray, x: np.ndarray, var: np.ndarray, size: int = 7) -> np.ndarray:
    """``x`` plus the part of the residual ``y − x`` that exceeds the noise variance locally."""
    r = y - x
    g = np.clip(1 - var / np.maximum(ndi.uniform_filter(r * r, size, mode="reflect"), 1e-12), 0, 1)
    return x + g * r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photons", type=float, default=500.0)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--models", nargs="+", default=["poisson-gaussian", "gaussian"])
    ap.add_argument(
        "--synthetic", type=int, default=0, help="N: a synthetic N×N image instead of the real plane"
    )
    args = ap.parse_args()
    plane = (
        fluorescence((args.synthetic,) * 2, seed=3)
        if args.synthetic
        else real_planes("nuclei", "held_out")[2]
    )
    clean, noisy = poisson_gaussian_noise(
        plane,
        photons=args.photons,
        gain=GAIN,
        offset=OFFSET,
        read_noise=READ,
        seed=3 if args.synthetic else 0,
    )
    rng = float(clean.max() - clean.min())
    y = noisy.astype(np.float64)
    lo, hi = y.min(), y.max()
    yn = (y - lo) / (hi - lo)
    a, b = estimate_poisson_gaussian(yn)
    print(
        f"noisy input {psnr(clean, y, rng):.2f} dB; estimate a={a:.3g} b={b:.3g}, camera a={GAIN / (hi - lo):.3g}"
    )
    for model in args.models:
        t = time.perf_counter()
        params = {
            "task": "denoise",
            "method": "dip",
            "iterations": args.steps,
            "preview_every": 0,
            "seed": 0,
            "noise_model": model,
        }
        res = drive(dip.run(noisy, params, device="cpu"))
        out = res.layers[0].data.astype(np.float64)
        xn = (out - lo) / (hi - lo)
        est = wiener(yn, xn, np.maximum(a * xn + b, 1e-8)) * (hi - lo) + lo
        cam = (
            wiener(yn, xn, (GAIN * np.clip(out - OFFSET, 0, None) + READ**2) / (hi - lo) ** 2) * (hi - lo)
            + lo
        )
        print(
            f"{model}: DIP {args.steps} steps (input noise {res.metadata['config']['reg_noise']:.3g}) "
            f"{psnr(clean, out, rng):.2f} dB, bias "
            f"{100 * (out.mean() / clean.mean() - 1):+.2f} %, {time.perf_counter() - t:.0f} s; + Wiener step: "
            f"estimated variance {psnr(clean, est, rng):.2f} dB, camera variance {psnr(clean, cam, rng):.2f} dB"
        )


if __name__ == "__main__":
    main()
