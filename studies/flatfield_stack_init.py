"""Study (issue 39): closed-form flat-field estimates for a stack, before any prior — how close do
they come to BaSiCPy on real specimens under synthetic fields?

Tuning only: specimens are crops of the *training* planes of ``data.real`` (never the held-out
ones the benchmark reports on) and fields/noise use tuning seeds (700 000 …). The cases are built
as ``benchmarks/join_bench.py --real-specimens`` builds its stacks (I = F·X + D + noise).

    python -m studies.flatfield_stack_init [--stacks 6] [--planes 8] [--basicpy] [--priors]
    python -m studies.flatfield_stack_init --sparse --planes 20 --basicpy   # tiles of sparse cells
    python -m studies.flatfield_stack_init --stacks 10 --planes 32 --trim 0 0.1 0.25 0.5

``--sparse``: a tile scan of sparse cells instead (crops at random positions of the time-lapse's
training frames: a few cells on a dark background per tile, BaSiC's own use case).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from benchmarks.join_bench import DARK, NOISE, _basic, _field, _flat_metrics, _real_specimens

from napari_genprior.data.real import real_planes
from napari_genprior.engines.classical import blur_flatfield
from napari_genprior.engines.flatstack import stack_estimate

TUNE_SEED = 700_000


def sparse_case(j: int, n: int, size: int) -> dict:
    """``n`` tiles of sparse cells: crops at random positions of the time-lapse's training frames."""
    frames = real_planes("timelapse", "train")
    rng = np.random.default_rng(TUNE_SEED + 10_000 + j)
    f = _field(TUNE_SEED + 10_050 + j, size)
    xs = []
    for i in rng.integers(0, len(frames), n):
        y, x = rng.integers(0, frames[i].shape[0] - size + 1, 2)
        xs.append(frames[i][y : y + size, x : x + size])
    xs = np.stack(xs).astype(np.float32)
    img = f * xs + DARK + NOISE * rng.standard_normal(xs.shape)
    return {"image": img.astype(np.float32), "specimen": xs, "field": f / f.mean()}


def case(j: int, n: int, size: int) -> dict:
    rng = np.random.default_rng(TUNE_SEED + j)
    f = _field(TUNE_SEED + 50 + j, size)
    xs = _real_specimens(n, size, TUNE_SEED + 1000 * j, split="train")
    img = f * xs + DARK + NOISE * rng.standard_normal(xs.shape)
    return {"image": img.astype(np.float32), "specimen": xs, "field": f / f.mean()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--stacks", type=int, default=6)
    ap.add_argument("--planes", type=int, default=8)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--basicpy", action="store_true")
    ap.add_argument("--priors", action="store_true", help="also JoIN's joint inversion (minutes per stack)")
    ap.add_argument("--sparse", action="store_true", help="tiles of sparse cells (see above)")
    ap.add_argument(
        "--trim", type=float, nargs="*", default=[], help="also the closed form with these trim fractions"
    )
    args = ap.parse_args()
    rows: dict[str, list[dict]] = {}

    def add(name: str, corrected, field, c, dt) -> None:
        m = _flat_metrics(corrected, field, c)
        m["s"] = dt
        rows.setdefault(name, []).append(m)

    for j in range(args.stacks):
        c = (sparse_case if args.sparse else case)(j, args.planes, args.size)
        stack = c["image"]
        t0 = time.perf_counter()
        corr, ff = blur_flatfield(stack)
        add("blurred mean (σ side/8)", corr, ff, c, time.perf_counter() - t0)
        for label, kw in (
            ("closed form", {}),
            ("closed form, no dark", {"dark": False}),
            *((f"closed form, trim {t:g}", {"trim": t}) for t in args.trim),
        ):
            t0 = time.perf_counter()
            est = stack_estimate(stack, **kw)
            dt = time.perf_counter() - t0
            add(label, (stack - est.dark) / est.flatfield, est.flatfield, c, dt)
        if args.priors:
            from benchmarks.join_bench import _join

            res, dt = _join(stack, {"forward": "flatfield", "stack_method": "priors"})
            add("JoIN priors", res.layer("corrected").data, res.layer("flatfield").data, c, dt)
        if args.basicpy:
            got = _basic(stack)
            if not isinstance(got, str):
                add("BaSiCPy", got[0], got[1], c, got[2])
        print(f"stack {j + 1}/{args.stacks} done", flush=True)
    print(f"{'method':32s} {'field si-MSE':>12s} {'corrected dB':>12s} {'raw dB':>8s} {'s':>6s}")
    for name, rs in rows.items():
        mean = {k: float(np.mean([r[k] for r in rs])) for k in rs[0]}
        print(
            f"{name:32s} {mean['field_simse']:12.4f} {mean['corrected_psnr']:12.2f} "
            f"{mean['uncorrected_psnr']:8.2f} {mean['s']:6.2f}"
        )


if __name__ == "__main__":
    main()
