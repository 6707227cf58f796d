"""Study (issue 40): the block-matching filter against BM3D on the *tuning* half of
studies/dip_stop_study.py (σ = 25, the true σ for both), and the choices made there: the search
radius (±16 or ±19 pixels) and the transforms along a group and over a patch in the first stage
(DCT or Haar).

The report half and the microscopy cases are benchmarks/denoise_peers.py's; nothing here looks at
them. BM3D (non-commercial licence) only when the ``bm3d`` package is installed (the bench venv).

    PYTHONPATH=. .venv-bench/bin/python -m studies.denoise_filter_study
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from benchmarks.dip_bench import make_case
from benchmarks.report import machine, markdown_table
from skimage.metrics import peak_signal_noise_ratio as psnr

from napari_genprior.engines import blockmatch
from studies.dip_stop_study import TUNE

OUT = Path(__file__).resolve().parent / "results" / "denoise_filter_study.md"
SIGMA = 25 / 255
#: (column, module settings); the last is the shipped default
CONFIGS = (
    ("±16, DCT", {"SEARCH": 16, "GROUP_TRANSFORM": "dct", "HARD_PATCH_TRANSFORM": "dct"}),
    ("±19, DCT", {"SEARCH": 19, "GROUP_TRANSFORM": "dct", "HARD_PATCH_TRANSFORM": "dct"}),
    ("±19, Haar group", {"SEARCH": 19, "GROUP_TRANSFORM": "haar", "HARD_PATCH_TRANSFORM": "dct"}),
    (
        "±19, Haar group + Haar patch (default)",
        {"SEARCH": 19, "GROUP_TRANSFORM": "haar", "HARD_PATCH_TRANSFORM": "haar"},
    ),
)


def _uint8(x: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] → the case's uint8 layout."""
    o = np.rint(np.clip(x, 0, 1) * 255).astype(np.uint8)
    return o[0] if o.shape[0] == 1 else np.moveaxis(o, 0, -1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    try:
        import bm3d
    except ImportError:
        bm3d = None
    head = ["image", "noisy", *(name for name, _ in CONFIGS), "BM3D (true σ)", "filter s", "BM3D s"]
    rows, gaps = [], {name: [] for name, _ in CONFIGS}
    default = {key: getattr(blockmatch, key) for key in CONFIGS[-1][1]}
    for name in TUNE:
        c = make_case(name, "denoise", 256)
        y = c.inp.astype(np.float32) / 255
        chw = torch.from_numpy(y[None] if y.ndim == 2 else np.moveaxis(y, -1, 0).copy())
        ours, secs = [], 0.0
        for _, settings in CONFIGS:
            for key, value in settings.items():
                setattr(blockmatch, key, value)
            t0 = time.perf_counter()
            ours.append(psnr(c.clean, _uint8(blockmatch.blockmatch_denoise(chw, SIGMA).numpy())))
            secs = time.perf_counter() - t0
        ref, ref_s = None, None
        if bm3d is not None:
            t0 = time.perf_counter()
            out = (
                bm3d.bm3d_rgb(y.astype(np.float64), SIGMA)
                if y.ndim == 3
                else bm3d.bm3d(y.astype(np.float64), SIGMA)
            )
            ref_s = time.perf_counter() - t0
            ref = psnr(c.clean, np.rint(np.clip(out, 0, 1) * 255).astype(np.uint8))
            for (name_, _), v in zip(CONFIGS, ours):
                gaps[name_].append(v - ref)
        rows.append(
            [name, f"{psnr(c.clean, c.inp):.2f}", *(f"{v:.2f}" for v in ours)]
            + ["–" if ref is None else f"{ref:.2f}", f"{secs:.1f}", "–" if ref_s is None else f"{ref_s:.1f}"]
        )
        print(rows[-1], flush=True)
    body = (
        "# The block-matching filter against BM3D, tuning half (σ = 25, 256²)\n\n"
        f"`python -m studies.denoise_filter_study` · {machine()} · {args.threads} torch thread(s)\n\n"
        + markdown_table(head, rows)
        + "\n\n"
        + "".join(f"Mean gap to BM3D, {name}: {np.mean(g):+.3f} dB.\n" for name, g in gaps.items() if g)
    )
    for key, value in default.items():
        setattr(blockmatch, key, value)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(body)
    print(body)


if __name__ == "__main__":
    main()
