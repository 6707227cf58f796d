"""Study (issue 39): on a single frame, does subtracting JoIN's dark offset help the corrected
specimen, against dividing by its field alone?

Tuning only: crops of the *training* planes of ``data.real`` under tuning-seed fields (700 000 …),
I = F·X + D + noise as in ``benchmarks/join_bench.py --real-specimens``. For each case: JoIN's
field and dark offset, then the corrected specimen as (I − D̂)/F̂ (what JoIN returns), I/F̂ (the
field alone) and (I − D)/F̂ with the true D (an oracle), each scored as join_bench scores it.

    python -m studies.flatfield_single_dark [--cases 4] [--size 256]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from benchmarks.join_bench import DARK, _flat_metrics, _join

from studies.flatfield_stack_init import case as tuning_case


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args()
    rows: dict[str, list[dict]] = {}
    darks = []
    for j in range(args.cases):
        c = tuning_case(100 + j, 1, args.size)
        img = c["image"][0]
        t0 = time.perf_counter()
        res, _ = _join(img, {"forward": "flatfield", "steps": args.steps})
        f = res.layer("flatfield").data
        d = float(np.mean(res.layer("darkfield").data))
        darks.append(d)
        for name, corr in (
            ("JoIN (I − D̂)/F̂", (img - d) / f),
            ("field alone I/F̂", img / f),
            ("oracle (I − D)/F̂", (img - DARK) / f),
        ):
            rows.setdefault(name, []).append(_flat_metrics(corr[None], f, c))
        print(f"case {j + 1}: D̂ {d:.4f} (true {DARK}), {time.perf_counter() - t0:.0f} s", flush=True)
    print(f"{'corrected as':22s} {'field si-MSE':>12s} {'corrected dB':>12s} {'raw dB':>8s}")
    for name, rs in rows.items():
        m = {k: float(np.mean([r[k] for r in rs])) for k in rs[0]}
        print(f"{name:22s} {m['field_simse']:12.4f} {m['corrected_psnr']:12.2f} {m['uncorrected_psnr']:8.2f}")
    print("dark estimates:", [round(v, 4) for v in darks])


if __name__ == "__main__":
    main()
