"""One labelled figure per engine on real held-out images, for the README and docs/.

Every panel comes from the fixed held-out split of ``napari_genprior.data.real`` (confocal nuclei
z-planes 30–35, time-lapse frames 25–29, the right quarter of the photographs); where an input
needs a degradation (noise, missing pixels, a lower resolution, an illumination field) it is
simulated on them and says so in the figure's notes (docs). Run by ``make docs`` (about 10 min on
2 CPU cores)::

    python docs/make_figures.py                 # every figure
    python docs/make_figures.py --only glean    # one of: dip_denoise dip_inpaint dip_sr irn glean
                                                #         join_flatfield join_intrinsic

Writes ``docs/images/fig_<name>.png`` and ``docs/images/figures.json`` (each panel's PSNR and each
run's wall time, the source of the captions).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio as psnr
from skimage.transform import resize

from napari_genprior.data.generators import EVAL_SEED_START, illumination
from napari_genprior.data.real import real_planes
from napari_genprior.data.synthetic import poisson_gaussian_noise
from napari_genprior.engines import classical, dip, glean, irn, join
from napari_genprior.engines.base import drive
from napari_genprior.figures import display, labelled_grid

OUT = Path(__file__).resolve().parent / "images"
SIZE = 200  # display size of a panel (pixels)
PG = {"gain": 8.0, "offset": 200.0, "read_noise": 30.0}  # the camera of benchmarks/denoise_peers.py


def _nuclei(z: int) -> np.ndarray:
    """Held-out confocal nuclei plane ``z`` (30–35) in [0, 1], 256²."""
    return real_planes("nuclei", "held_out")[z - 30].astype(np.float64)


def _timelapse(t: int) -> np.ndarray:
    return real_planes("timelapse", "held_out")[t - 25].astype(np.float64)


def _db(ref: np.ndarray, x: np.ndarray, rng: float | None = None) -> float:
    ref, x = np.asarray(ref, np.float64), np.asarray(x, np.float64)
    return float(psnr(ref, x, data_range=rng if rng is not None else float(ref.max() - ref.min())))


def _timed(gen) -> tuple:
    t0 = time.perf_counter()
    res = drive(gen)
    return res, time.perf_counter() - t0


def _area_down(x: np.ndarray, f: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None, None]
    return F.avg_pool2d(t, f)[0, 0].numpy().astype(np.float64)


def _bicubic(x: np.ndarray, f: int) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(x, np.float32))[None, None]
    up = F.interpolate(t, scale_factor=f, mode="bicubic", align_corners=False)
    return up[0, 0].numpy().astype(np.float64).clip(float(x.min()), float(x.max()))


def fig_dip_denoise(rec: dict) -> np.ndarray:
    rows, caps, names = [], [], []
    for name, plane, photons in (
        ("time-lapse t=27", _timelapse(27)[128:256, 128:256], 100.0),
        ("nuclei z=32", _nuclei(32)[64:192, 64:192], 500.0),
    ):
        ideal, noisy = poisson_gaussian_noise(plane, photons=photons, **PG)
        model = dip.guess_noise_model(noisy)[0]  # what the widget picks: poisson-gaussian for uint16
        res, s = _timed(dip.run(noisy, {"task": "denoise", "noise_model": model}, device="cpu"))
        net, s_net = _timed(
            dip.run(
                noisy,
                {"task": "denoise", "method": "dip", "iterations": "auto", "noise_model": model},
                device="cpu",
            )
        )
        out, out_net = res.layers[0].data, net.layers[0].data
        rng = float(ideal.max() - ideal.min())
        lo, hi = float(np.percentile(ideal, 0.5)), float(np.percentile(ideal, 99.8))
        rows.append([display(x, SIZE, lo, hi) for x in (noisy, out, out_net, ideal)])
        p_in, p_out, p_net = _db(ideal, noisy, rng), _db(ideal, out, rng), _db(ideal, out_net, rng)
        caps.append(
            [f"{p_in:.2f} dB", f"{p_out:.2f} dB · {s:.0f} s", f"{p_net:.2f} dB · {s_net:.0f} s", "noise-free"]
        )
        names.append(name)
        rec[name] = {
            "noisy_db": p_in,
            "filter_db": p_out,
            "seconds": s,
            "dip_db": p_net,
            "dip_seconds": s_net,
        }
    cols = ["noisy (simulated camera)", "default: filter", "DIP network", "truth"]
    return labelled_grid(rows, cols, names, caps)


def fig_dip_inpaint(rec: dict) -> np.ndarray:
    truth = (_nuclei(31)[64:192, 64:192] * 65535 / 2).astype(np.uint16)
    mask = np.random.default_rng(0).random(truth.shape) < 0.5  # 50 % of the pixels missing
    holed = np.where(mask, 0, truth)
    res, s = _timed(dip.run(holed, {"task": "inpaint"}, mask=mask.astype(np.uint8), device="cpu"))
    out = res.layers[0].data
    rng = float(truth.max() - truth.min())
    lo, hi = float(np.percentile(truth, 0.5)), float(np.percentile(truth, 99.8))
    # the plain alternative: each missing pixel from its known neighbours (normalised blur)
    from scipy.ndimage import gaussian_filter

    known = (~mask).astype(np.float64)
    interp = gaussian_filter(holed.astype(np.float64), 1.5) / np.maximum(gaussian_filter(known, 1.5), 1e-6)
    interp = np.where(mask, interp, truth)
    rec["nuclei z=31"] = {"interp_db": _db(truth, interp, rng), "dip_db": _db(truth, out, rng), "seconds": s}
    row = [display(x, SIZE, lo, hi) for x in (holed, interp, out, truth)]
    caps = [
        [
            "50 % missing",
            f"{rec['nuclei z=31']['interp_db']:.2f} dB",
            f"{rec['nuclei z=31']['dip_db']:.2f} dB · {s:.0f} s",
            "",
        ]
    ]
    return labelled_grid([row], ["input", "normalised blur", "DIP inpaint", "truth"], ["nuclei z=31"], caps)


def fig_dip_sr(rec: dict) -> np.ndarray:
    truth = _nuclei(33)[64:192, 64:192]
    lr = _area_down(truth, 4)
    res, s = _timed(dip.run(lr.astype(np.float32), {"task": "sr", "scale": 4}, device="cpu"))
    out = res.layers[0].data
    bic = _bicubic(lr, 4)
    rec["nuclei z=33"] = {"bicubic_db": _db(truth, bic, 1.0), "dip_db": _db(truth, out, 1.0), "seconds": s}
    lo, hi = float(np.percentile(truth, 0.5)), float(np.percentile(truth, 99.8))
    row = [display(x, SIZE, lo, hi) for x in (lr, bic, out, truth)]
    r = rec["nuclei z=33"]
    caps = [["32² (area ×4 down)", f"{r['bicubic_db']:.2f} dB", f"{r['dip_db']:.2f} dB · {s:.0f} s", ""]]
    return labelled_grid([row], ["LR input", "bicubic ×4", "DIP ×4", "truth"], ["nuclei z=33"], caps)


def fig_irn(rec: dict) -> np.ndarray:
    hr = (_nuclei(34) * 65535 / 2).astype(np.uint16)
    rows, caps, names = [], [], []
    lo, hi = float(np.percentile(hr, 0.5)), float(np.percentile(hr, 99.8))
    rng = float(hr.max() - hr.min())
    for s in (2, 4):
        res, sec = _timed(irn.run(hr, {"mode": "roundtrip", "scale": s}, device="cpu"))
        back, lr = res.layer("irn_hr").data, res.layer("irn_lr").data
        bic = _bicubic(_area_down(hr.astype(np.float64), s), s)
        r = {"bicubic_db": _db(hr, bic, rng), "irn_db": _db(hr, back, rng), "seconds": sec}
        rec[f"×{s}"] = r
        rows.append([display(x, SIZE, lo, hi) for x in (hr, lr, bic, back)])
        caps.append(
            ["", f"{lr.shape[0]}² stored", f"{r['bicubic_db']:.2f} dB", f"{r['irn_db']:.2f} dB · {sec:.1f} s"]
        )
        names.append(f"×{s}")
    titles = ["input (nuclei z=34)", "IRN down (LR)", "area down, bicubic up", "IRN up (round trip)"]
    return labelled_grid(rows, titles, names, caps)


def fig_glean(rec: dict) -> np.ndarray:
    rows, caps, names = [], [], []
    for s, z, (y, x) in ((8, 35, (0, 0)), (8, 30, (96, 64)), (16, 32, (64, 96))):
        truth = _nuclei(z)[y : y + 128, x : x + 128]
        lr = _area_down(truth, s)
        res, sec = _timed(glean.run(lr.astype(np.float32), {"scale": s}, device="cpu"))
        out = res.layers[0].data
        bic = _bicubic(lr, s)
        key = f"×{s} nuclei z={z}"
        rec[key] = {"bicubic_db": _db(truth, bic, 1.0), "glean_db": _db(truth, out, 1.0), "seconds": sec}
        lo, hi = float(np.percentile(truth, 0.5)), float(np.percentile(truth, 99.8))
        rows.append([display(v, SIZE, lo, hi) for v in (lr, bic, out, truth)])
        r = rec[key]
        caps.append(
            [f"{lr.shape[0]}²", f"{r['bicubic_db']:.2f} dB", f"{r['glean_db']:.2f} dB · {sec:.1f} s", ""]
        )
        names.append(f"×{s}")
    return labelled_grid(rows, ["LR input", "bicubic", "GLEAN", "truth"], names, caps)


def fig_join_flatfield(rec: dict) -> np.ndarray:
    size = 256
    f = torch.from_numpy(illumination(64, EVAL_SEED_START + 9101))[None, None]
    field = F.interpolate(f, size=(size, size), mode="bicubic", align_corners=False)[0, 0].numpy().clip(0.05)
    field = field / field.mean()
    rows, caps, names = [], [], []
    for name, spec in (("nuclei z=35", _nuclei(35)), ("time-lapse t=29", _timelapse(29)[200:456, 200:456])):
        rng = np.random.default_rng(0)
        img = (field * spec + 0.05 + 0.01 * rng.standard_normal(spec.shape)).astype(np.float32)
        res, sec = _timed(join.run(img, {"forward": "flatfield", "preview_every": 0}, device="cpu"))
        corr, ff = res.layer("corrected").data, res.layer("flatfield").data
        bcorr, _ = classical.blur_flatfield(img)
        r = {
            "raw_db": _affine_db(img, spec),
            "join_db": _affine_db(corr, spec),
            "blur_db": _affine_db(bcorr, spec),
            "seconds": sec,
        }
        rec[name] = r
        lo, hi = float(np.percentile(spec, 0.5)), float(np.percentile(spec, 99.8))
        tiles = [display(img, SIZE), display(corr, SIZE), display(bcorr, SIZE), display(spec, SIZE, lo, hi)]
        tiles += [display(ff, SIZE, 0, 2 * field.max()), display(field, SIZE, 0, 2 * field.max())]
        rows.append(tiles)
        caps.append(
            [
                f"{r['raw_db']:.2f} dB",
                f"{r['join_db']:.2f} dB · {sec:.0f} s",
                f"{r['blur_db']:.2f} dB",
                "",
                "",
                "",
            ]
        )
        names.append(name)
    titles = [
        "input (simulated field)",
        "JoIN corrected",
        "image ÷ blurred image",
        "truth",
        "JoIN field",
        "true field",
    ]
    return labelled_grid(rows, titles, names, caps)


def _affine_db(est: np.ndarray, truth: np.ndarray) -> float:
    """PSNR after the best affine fit of ``est`` to ``truth`` (a flat-field is known up to a scale)."""
    e, t = est.ravel().astype(np.float64), truth.ravel().astype(np.float64)
    a, b = np.polyfit(e, t, 1)
    return _db(t, a * e + b, float(t.max() - t.min()))


def fig_join_intrinsic(rec: dict) -> np.ndarray:
    from napari_genprior.data.real import _texture

    rows, names = [], []
    for name in ("coffee", "astronaut"):
        part = _texture(name, "held_out")  # the held-out right quarter, (H, W, 3) in [0, 1]
        side = min(part.shape[:2])
        img = resize(part[:side, :side], (128, 128), anti_aliasing=True).astype(np.float32)
        res, sec = _timed(
            join.run(img, {"forward": "intrinsic", "gamma": 2.2, "preview_every": 0}, device="cpu")
        )
        alb, sh = res.layer("albedo").data, res.layer("shading").data
        r_alb, r_sh = classical.retinex_shading(np.clip(img, 0, 1) ** 2.2)
        rec[name] = {"seconds": sec}
        rows.append(
            [
                display(img, SIZE, 0, 1),
                display(alb, SIZE, 0, float(np.percentile(alb, 99.5))),
                display(sh, SIZE, 0, 1),
                display(r_alb, SIZE, 0, float(np.percentile(r_alb, 99.5))),
                display(r_sh, SIZE, 0, 1),
            ]
        )
        names.append(name)
    titles = ["photo (held-out part)", "JoIN albedo", "JoIN shading", "Retinex albedo", "Retinex shading"]
    return labelled_grid(rows, titles, names)


FIGURES = {
    "dip_denoise": fig_dip_denoise,
    "dip_inpaint": fig_dip_inpaint,
    "dip_sr": fig_dip_sr,
    "irn": fig_irn,
    "glean": fig_glean,
    "join_flatfield": fig_join_flatfield,
    "join_intrinsic": fig_join_intrinsic,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", choices=list(FIGURES), help="make only these figures")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    record_path = OUT / "figures.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    for name in args.only or list(FIGURES):
        t0 = time.perf_counter()
        rec: dict = {}
        iio.imwrite(OUT / f"fig_{name}.png", FIGURES[name](rec))
        record[name] = {k: {kk: round(vv, 2) for kk, vv in v.items()} for k, v in rec.items()}
        print(f"fig_{name}.png in {time.perf_counter() - t0:.0f} s: {record[name]}", flush=True)
        record_path.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
