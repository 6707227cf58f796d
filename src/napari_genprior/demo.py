"""``napari-genprior demo``: run every engine on bundled, offline samples; write results and one PNG.

Each row of ``demo.png`` is ``input | result | ground truth`` for one task: DIP denoise, inpaint and
×4 SR (fast preset), the IRN ×4 round trip, GLEAN ×8 and JoIN flat-field correction. All samples are
*synthetic* or bundled photographs, so the figures say what each engine does, not how well it does
on your data (docs/benchmarks.md has the real-data tables).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from skimage import transform

from .data.generators import EVAL_SEED_START, illumination, nuclei
from .data.samples import missing_pixels, natural_pair
from .data.synthetic import fluorescence, poisson_gaussian_noise
from .engines import dip, glean, irn, join
from .engines.base import drive
from .figures import display, labelled_grid
from .io import write_image
from .metrics import psnr

__all__ = ["DEMO_SETTINGS", "run_demo"]

#: Settings for a demo that finishes in a few minutes on a 2-core CPU: 128×128 images, DIP's fast
#: preset at fixed step counts, the bundled IRN and GLEAN models, JoIN with short stages;
#: ``--quick`` runs a handful of steps only.
DEMO_SETTINGS: dict[str, dict[str, Any]] = {
    "denoise": {
        "task": "denoise",
        "method": "dip",
        "preset": "fast",
        "noise_model": "poisson-gaussian",
        "iterations": 600,
    },
    "inpaint": {"task": "inpaint", "preset": "fast", "iterations": 800},
    "sr": {"task": "sr", "preset": "fast", "scale": 4, "iterations": 600},
    "irn": {"mode": "roundtrip", "scale": 4},
    "glean": {"scale": 8},
    "join": {"forward": "flatfield", "steps": 150, "finetune_steps": 0, "restarts": 1},
}
#: the demo's own held-out synthetic samples (evaluation seeds: never trained on)
_GLEAN_SEED, _SPECIMEN_SEED, _FIELD_SEED = (
    EVAL_SEED_START + 7000,
    EVAL_SEED_START + 9000,
    EVAL_SEED_START + 9001,
)


def _psnr(ref: np.ndarray, x: np.ndarray, data_range: float) -> float:
    return psnr(ref.astype(np.float64), x.astype(np.float64), data_range=data_range)


def _timed(gen: Any, desc: str, quiet: bool) -> tuple[Any, float]:
    from tqdm import tqdm

    bar = tqdm(total=0, desc=f"demo: {desc}", disable=quiet, file=sys.stderr)

    def update(ev, bar=bar):
        bar.total = ev.total
        bar.update(ev.step - bar.n)

    t0 = time.perf_counter()
    res = drive(gen, update)
    bar.close()
    return res, time.perf_counter() - t0


def _other_engines(out: Path, report: dict[str, Any], quick: bool, device: str, quiet: bool) -> list:
    """IRN ×4 round trip (synthetic fluorescence), GLEAN ×8 (a held-out synthetic nucleus image)
    and JoIN flat-field (a held-out synthetic specimen under a held-out synthetic field): rows for
    the montage, figures into ``report``."""
    rows = []
    n = 128
    # IRN: the image's own LR and back; bicubic down + up is the baseline
    hr = fluorescence((n, n), seed=5)
    res, wall = _timed(irn.run(hr, DEMO_SETTINGS["irn"], device=device), "IRN ×4 round trip", quiet)
    rec = res.layer("irn_hr").data
    bic = transform.resize(transform.resize(hr, (n // 4, n // 4), anti_aliasing=True), (n, n), order=3)
    rng = float(hr.max() - hr.min())
    report["irn"] = {
        "wall_time_s": round(wall, 1),
        "psnr_result": round(psnr(hr, rec, rng), 2),
        "psnr_bicubic": round(psnr(hr, bic, rng), 2),
    }
    write_image(out / "irn_result.tif", rec.astype(np.float32))
    r = report["irn"]
    lr_img = res.layer("irn_lr").data
    rows.append(
        (
            "irn",
            [display(lr_img, 192), display(rec, 192), display(hr, 192)],
            [
                f"×4 LR · bicubic trip {r['psnr_bicubic']:.1f} dB",
                f"round trip {r['psnr_result']:.1f} dB",
                "original",
            ],
        )
    )
    # GLEAN ×8: 16² LR → 128²
    hr = nuclei(n, _GLEAN_SEED).astype(np.float32)
    lr = np.clip(transform.resize(hr, (n // 8, n // 8), order=3, anti_aliasing=True), 0, 1).astype(np.float32)
    res, wall = _timed(
        glean.run(lr, {**DEMO_SETTINGS["glean"], "previews": 0}, device=device), "GLEAN ×8", quiet
    )
    sr = res.layers[0].data
    bic = np.clip(transform.resize(lr, hr.shape, order=3), 0, 1)
    report["glean"] = {
        "wall_time_s": round(wall, 1),
        "psnr_result": round(psnr(hr, np.clip(sr, 0, 1), 1.0), 2),
        "psnr_bicubic": round(psnr(hr, bic, 1.0), 2),
    }
    write_image(out / "glean_result.tif", sr.astype(np.float32))
    r = report["glean"]
    rows.append(
        (
            "glean",
            [display(lr, 192, 0, 1), display(sr, 192, 0, 1), display(hr, 192, 0, 1)],
            [
                f"×8 LR · bicubic {r['psnr_bicubic']:.1f} dB",
                f"GLEAN {r['psnr_result']:.1f} dB",
                "ground truth",
            ],
        )
    )
    # JoIN flat-field: specimen · field + dark offset + noise
    spec = nuclei(n, _SPECIMEN_SEED).astype(np.float64)
    field = transform.resize(illumination(64, _FIELD_SEED), (n, n), order=3)
    field = np.clip(field, 0.05, None)
    noise = np.random.default_rng(_SPECIMEN_SEED).standard_normal(spec.shape)
    image = (field * spec + 0.05 + 0.005 * noise).astype(np.float32)
    params = dict(DEMO_SETTINGS["join"], seed=0, preview_every=0)
    if quick:
        params["steps"] = 5
    res, wall = _timed(join.run(image, params, device=device), "JoIN flat-field", quiet)
    corrected = res.layer("corrected").data

    def affine_psnr(x: np.ndarray) -> float:
        # the correction is defined up to a gain and an offset: fit them before scoring
        a, b = np.polyfit(x.ravel(), spec.ravel(), 1)
        return psnr(spec, a * x + b, float(spec.max() - spec.min()))

    report["join"] = {
        "steps": params["steps"],
        "wall_time_s": round(wall, 1),
        "psnr_result": round(affine_psnr(corrected), 2),
        "psnr_input": round(affine_psnr(image), 2),
    }
    write_image(out / "join_corrected.tif", corrected.astype(np.float32))
    r = report["join"]
    rows.append(
        (
            "join",
            [display(image, 192), display(corrected, 192), display(spec, 192)],
            [
                f"uneven light · {r['psnr_input']:.1f} dB",
                f"corrected {r['psnr_result']:.1f} dB",
                "specimen",
            ],
        )
    )
    if not quiet:
        for k in ("irn", "glean", "join"):
            print(f"{k:8s} {json.dumps(report[k])}", file=sys.stderr)
    return rows


def run_demo(out_dir: str | Path, quick: bool = False, device: str = "auto", quiet: bool = False) -> dict:
    """Run DIP denoise (synthetic fluorescence, Poisson–Gaussian noise), inpaint (astronaut, 50 %
    of pixels missing) and ×4 SR (astronaut), then IRN, GLEAN and JoIN (:func:`_other_engines`) on
    128×128 samples; write TIFFs, ``demo.png`` and ``demo.json``. Returns the figures per task."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = 128
    # Samples (all made offline and seeded).
    fl_ideal, fl_noisy = poisson_gaussian_noise(fluorescence((n, n), seed=3), seed=3)
    nat_clean, _ = natural_pair(size=256)
    nat = np.rint(transform.resize(nat_clean, (n, n), anti_aliasing=True, preserve_range=True)).astype(
        np.uint8
    )
    miss = missing_pixels((n, n), 0.5, seed=1)
    damaged = np.where(miss[..., None] > 0, 0, nat).astype(np.uint8)
    hr = nat
    lr = np.rint(transform.resize(hr, (n // 4, n // 4), anti_aliasing=True, preserve_range=True)).astype(
        np.uint8
    )
    jobs = [
        ("denoise", fl_noisy, None, fl_ideal, float(fl_ideal.max() - fl_ideal.min())),
        ("inpaint", damaged, miss, nat, 255.0),
        ("sr", lr, None, hr, 255.0),
    ]
    report: dict[str, Any] = {}
    rows = []
    for task, image, mask, truth, rng in jobs:
        params = dict(DEMO_SETTINGS[task], seed=0, preview_every=0)
        if quick:
            params["iterations"] = 5
        bar = tqdm(total=0, desc=f"demo: DIP {task}", disable=quiet, file=sys.stderr)

        def update(ev, bar=bar):
            bar.total = ev.total
            bar.update(ev.step - bar.n)

        t0 = time.perf_counter()
        res = drive(dip.run(image, params, mask=mask, device=device), update)
        bar.close()
        wall = time.perf_counter() - t0
        result = res.layers[0].data
        write_image(out / f"{task}_input.tif", image)
        write_image(out / f"{task}_result.tif", result)
        write_image(out / f"{task}_truth.tif", truth)
        if task == "sr":
            baseline = transform.resize(image, truth.shape, order=3, preserve_range=True)
            base_name = "bicubic"
        else:
            baseline, base_name = image, "input"
        report[task] = {
            "iterations": params["iterations"],
            "wall_time_s": round(wall, 1),
            "psnr_result": round(_psnr(truth, result, rng), 2),
            f"psnr_{base_name}": round(_psnr(truth, baseline, rng), 2),
        }
        lo = hi = None
        if task == "denoise":
            lo, hi = float(np.percentile(truth, 0.5)), float(np.percentile(truth, 99.8))
        r = report[task]
        rows.append(
            (
                task,
                [display(image, 192, lo, hi), display(result, 192, lo, hi), display(truth, 192, lo, hi)],
                [
                    f"{base_name} {r[f'psnr_{base_name}']:.1f} dB",
                    f"{params['iterations']} steps · {r['psnr_result']:.1f} dB",
                    "ground truth",
                ],
            )
        )
        if not quiet:
            print(f"{task:8s} {json.dumps(report[task])}", file=sys.stderr)
    rows += _other_engines(out, report, quick, device, quiet)
    titles = {"denoise": "DIP denoise", "inpaint": "DIP inpaint", "sr": "DIP ×4 SR", "irn": "IRN ×4"}
    titles |= {"glean": "GLEAN ×8", "join": "JoIN flat-field"}
    figure = labelled_grid(
        [tiles for _, tiles, _ in rows],
        ["input", "result", "reference"],
        [titles.get(task, task) for task, _, _ in rows],
        [caps for _, _, caps in rows],
        font_size=13,
    )
    write_image(out / "demo.png", figure)
    (out / "demo.json").write_text(
        json.dumps({"settings": DEMO_SETTINGS, "quick": quick, "results": report}, indent=2)
    )
    print(f"wrote {out / 'demo.png'} and the results in {out}")
    return report
