"""Probe for issue 25 (short fixed runs come back worse than their input): the returned average
(EMA 0.99) against the raw iterate, step by step, on a dark 16-bit fluorescence image.

    python benchmarks/dip_bias_probe.py [--steps 300] [--size 256]
    python benchmarks/dip_bias_probe.py --ab [--images camera,fluorescence]   # long runs, ramp vs plain

Two runs with the same seed: the preset's EMA, and ``ema=None`` (the raw iterate; the fit itself is
the same, averaging does not feed back into it). Prints, every 50 steps, each output's mean
relative to the truth's and its PSNR against the truth, beside the noisy input's. Prints only.

``--ab``: dip_bench's automatic-stop denoising cells (fast preset, σ 25) with the ramped average
(the engine's ``AVG_RAMP``) and with the plain EMA (``AVG_RAMP = 0``, the averaging before it),
interleaved on this machine: what the ramp changes where the benchmark's numbers come from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from skimage.metrics import peak_signal_noise_ratio as psnr

from napari_genprior.data.synthetic import fluorescence, poisson_gaussian_noise
from napari_genprior.engines import dip, drive


def ab(images: list[str]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dip_bench import dip_params, make_case, metrics, run_dip

    ramp = dip.AVG_RAMP
    print("image | average | PSNR | chosen step | stopped at")
    for name in images:
        case = make_case(name, "denoise", 256)
        for label, value in (("ramped", ramp), ("plain EMA", 0.0)):
            dip.AVG_RAMP = value
            out, info = run_dip(case, dip_params(case, "fast", None))
            ps = metrics(out, case.clean, case.channel_axis)["psnr"]
            print(f"{name} | {label} | {ps:.3f} | {info['chosen']} | {info['steps']}", flush=True)
    dip.AVG_RAMP = ramp


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--ab", action="store_true", help="benchmark cells: ramped average vs plain EMA")
    ap.add_argument("--images", default="camera,fluorescence", help="with --ab")
    args = ap.parse_args()
    if args.ab:
        ab(args.images.split(","))
        return
    clean, noisy = poisson_gaussian_noise(fluorescence((args.size, args.size), seed=1000), seed=0)
    rng = float(clean.max() - clean.min())
    print(
        f"truth mean {clean.mean():.1f}; noisy input: PSNR {psnr(clean, noisy.astype(np.float64), data_range=rng):.2f} dB"
    )
    for model in ("gaussian", "poisson-gaussian"):
        seen: dict[str, dict[int, np.ndarray]] = {}
        for name, ema in (("EMA 0.99", None), ("raw iterate", 0.0)):
            params = {"task": "denoise", "iterations": args.steps, "preview_every": 50, "seed": 0}
            params.update(noise_model=model, **({"ema": ema} if ema is not None else {}))
            seen[name] = {}
            drive(
                dip.run(noisy, params, device="cpu"),
                lambda ev, d=seen[name]: (
                    d.__setitem__(ev.step, ev.preview) if ev.preview is not None else None
                ),
            )
        print(f"\n{model}: step | " + " | ".join(f"{n}: mean/truth, PSNR" for n in seen))
        for step in sorted(seen["EMA 0.99"]):
            cells = []
            for name in seen:
                x = seen[name][step].astype(np.float64)
                cells.append(f"{x.mean() / clean.mean():.3f}, {psnr(clean, x, data_range=rng):.2f} dB")
            print(f"{step:5d} | " + " | ".join(cells))


if __name__ == "__main__":
    main()
