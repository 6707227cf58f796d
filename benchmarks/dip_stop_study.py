"""Automatic stopping study for DIP: record whole runs, then compare stopping rules offline.

    python benchmarks/dip_stop_study.py record --steps 2500       # runs the fast preset; minutes each
    python benchmarks/dip_stop_study.py evaluate                  # the rules' table (seconds)

``record`` runs the fast preset to a fixed number of steps on dip_bench's denoising cases and
writes, per step, the statistics a stopping rule may use (no ground truth): the mean windowed
variance of the iterates (ES-WMV), the data residual ``mean((x - y)²)`` and the residual
whitened by the estimated noise variance. Every 10 steps it also records the PSNR of the
returned (averaged) estimate and of the raw iterate against the clean image, which only the
evaluation sees. Traces go to ``benchmarks/results/dip_stop_traces.jsonl``.

``evaluate`` replays each stopping rule on the traces and prints, per case, the step it stops
at and the PSNR lost against the best averaged estimate of the run (an oracle stop); the table
also goes to ``docs/benchmarks.md`` (unless ``--no-write``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import markdown_table, write_section  # noqa: E402
from dip_bench import git_commit, make_case  # noqa: E402
from napari_genprior.cli import metrics  # noqa: E402
from napari_genprior.engines import dip, drive  # noqa: E402
from napari_genprior.imaging import Normalizer, PlaneLayout  # noqa: E402
from napari_genprior.physics.noise import estimate_poisson_gaussian  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRACES = ROOT / "benchmarks" / "results" / "dip_stop_traces.jsonl"
CASES = (
    ("camera", "denoise"),
    ("astronaut", "denoise"),
    ("coffee", "denoise"),
    ("fluorescence", "denoise"),
    ("fluorescence", "denoise-poisson"),
)


def record(image: str, task: str, steps: int, size: int = 256) -> dict[str, Any]:
    """Run the fast preset for ``steps`` steps on one case and return its trace."""
    case = make_case(image, task, size)
    norm = Normalizer.fit(case.inp)
    layout = PlaneLayout(case.inp.shape, case.channel_axis)
    y = layout.to_planes(norm.forward(case.inp))[0].astype(np.float64)  # (C, H, W) normalised
    clean = layout.to_planes(norm.forward(case.clean.astype(np.float64)))[0]
    ab = [estimate_poisson_gaussian(c) for c in y.astype(np.float32)]
    var_noise = np.stack([np.maximum(a * y[i] + b, 1e-6) for i, (a, b) in enumerate(ab)])
    # data range as napari_genprior.cli.metrics: the dtype's for uint8, else the reference's span
    span = 255.0 if case.clean.dtype == np.uint8 else float(np.ptp(case.clean))
    peak = span / (norm.hi - norm.lo)
    tr: dict[str, list] = {"var": [], "mse": [], "white": [], "raw_psnr": [], "avg_psnr": []}
    step = {"n": 0}

    class Window(dip._MovingWindow):
        def push(self, x: Any) -> None:  # x: (C, H, W) raw iterate, normalised
            super().push(x)
            step["n"] += 1
            xn = x.double().cpu().numpy()
            tr["var"].append(float(self.variance_map().mean()) if self.full else None)
            tr["mse"].append(float(np.mean((xn - y) ** 2)))
            tr["white"].append(float(np.mean((xn - y) ** 2 / var_noise)))
            if step["n"] % 10 == 0:
                mse = float(np.mean((xn.clip(0, 1) - clean) ** 2))
                tr["raw_psnr"].append([step["n"], round(10 * math.log10(peak**2 / mse), 3)])

    def on_progress(ev: Any) -> None:
        if ev.preview is not None:
            pv = ev.preview
            if case.clean.dtype == np.uint8:
                pv = np.rint(pv).clip(0, 255).astype(np.uint8)
            tr["avg_psnr"].append([ev.step, round(metrics(pv, case.clean, case.channel_axis)["psnr"], 3)])

    params = {
        "task": "denoise",
        "preset": "fast",
        "seed": 0,
        "iterations": steps,
        "uncertainty": True,  # keeps the moving window without stopping
        "preview_every": 10,
        **case.dip_params,
    }
    orig = dip._MovingWindow
    dip._MovingWindow = Window
    try:
        res = drive(dip.run(case.inp, params, device="cpu"), on_progress)
    finally:
        dip._MovingWindow = orig
    cfg = res.metadata["config"]
    return {
        "image": image,
        "task": task,
        "steps": steps,
        "window": cfg["auto_window"],
        "noise_sigma_estimate": cfg.get("noise_sigma_estimate"),
        "noise_ab": [list(map(float, t)) for t in ab],
        "commit": git_commit(),
        **{
            k: [None if v is None else round(v, 8) for v in vs] if k in ("var", "mse", "white") else vs
            for k, vs in tr.items()
        },
    }


# -- rules: trace -> (stop step, step whose averaged estimate is returned) -------------------------

Rule = Callable[[dict[str, Any]], int]


def es_wmv(patience: int, eps: float = 0.0, lag: float = 1.0) -> Rule:
    """ES-WMV: ``t*`` = the last step where the windowed variance fell more than ``eps`` (relative)
    below its value at the previous such step (``eps = 0``: the running minimum); stop at
    ``max(t* + patience, lag·t*)``. The engine's rule is ``eps = AUTO_TOLERANCE, lag = 1``."""

    def rule(tr: dict[str, Any]) -> int:
        best, t_best = math.inf, 0
        for i, v in enumerate(tr["var"]):
            n = i + 1
            if v is not None and v < (1.0 - eps) * best:
                best, t_best = v, n  # a significant fall: the new reference
            if t_best and n - t_best >= patience and n >= math.ceil(lag * t_best):
                return n
        return len(tr["var"])

    return rule


def discrepancy(level: float, smooth: int = 50) -> Rule:
    """Stop when the whitened residual (moving mean over ``smooth`` steps) falls below ``level``
    (1.0 = the residual equals the estimated noise variance)."""

    def rule(tr: dict[str, Any]) -> int:
        w = np.asarray(tr["white"])
        c = np.cumsum(np.r_[0.0, w])
        for n in range(smooth, len(w) + 1):
            if (c[n] - c[n - smooth]) / smooth < level:
                return n
        return len(w)

    return rule


def psnr_at(tr: dict[str, Any], n: int) -> float:
    """PSNR of the averaged estimate at the recorded step nearest ``n``."""
    steps = np.array([s for s, _ in tr["avg_psnr"]])
    k = int(np.argmin(np.abs(steps - n)))
    return tr["avg_psnr"][k][1]


def evaluate(traces: list[dict[str, Any]], rules: dict[str, Rule]) -> str:
    """Replay ``rules`` on ``traces``; a markdown table of (stop step, PSNR lost) per case."""
    best = [max(t["avg_psnr"], key=lambda r: r[1]) for t in traces]
    header = ["rule", *(f"{t['image']} {t['task']}" for t in traces), "mean loss (dB)", "max loss (dB)"]
    rows: list[list[object]] = [
        ["oracle: best averaged estimate", *(f"{n} · {p:.2f} dB" for n, p in best), "-", "-"]
    ]
    for name, rule in rules.items():
        cells, losses = [], []
        for t, (_, b) in zip(traces, best):
            n = rule(t)
            loss = b - psnr_at(t, n)
            losses.append(loss)
            cells.append(f"{n} · −{loss:.2f}")
        rows.append([name, *cells, f"{np.mean(losses):.2f}", f"{np.max(losses):.2f}"])
    return markdown_table(header, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=("record", "evaluate"))
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--cases", default=",".join(f"{i}:{t}" for i, t in CASES))
    ap.add_argument("--traces", type=Path, default=TRACES)
    ap.add_argument("--no-write", action="store_true", help="evaluate: do not write docs/benchmarks.md")
    a = ap.parse_args()
    if a.mode == "record":
        a.traces.parent.mkdir(parents=True, exist_ok=True)
        for spec in a.cases.split(","):
            image, task = spec.split(":")
            tr = record(image, task, a.steps)
            with a.traces.open("a") as fh:
                fh.write(json.dumps(tr) + "\n")
            print(f"{image} {task}: best averaged PSNR {max(p for _, p in tr['avg_psnr']):.2f}", flush=True)
        return
    traces = [json.loads(line) for line in a.traces.read_text().splitlines() if line.strip()]
    plateau = es_wmv(200, dip.AUTO_TOLERANCE)
    held = discrepancy(dip.AUTO_DISCREPANCY)
    wait = dip._DISCREPANCY_MAX_WAIT
    rules: dict[str, Rule] = {
        # the engine's rule for denoising: ES-WMV with a tolerance, then wait for the whitened
        # residual to reach the noise level, for at most (wait - 1) × the ES-WMV step more
        f"engine: max(plateau P=200 eps=0.01, min(discrepancy {dip.AUTO_DISCREPANCY}, {wait}× plateau))": (
            lambda t: max(plateau(t), min(held(t), math.ceil(wait * plateau(t))))
        ),
        "before (session 10): plateau P=200 eps=0.01": plateau,
        "before: es-wmv P=300 lag=1.6": es_wmv(300, lag=1.6),
    }
    for p in (100, 200, 300):
        for lag in (1.0, 1.4):
            rules[f"es-wmv P={p} lag={lag}"] = es_wmv(p, lag=lag)
    for p in (150, 200, 250):
        for eps in (0.005, 0.01, 0.02, 0.03):
            rules[f"plateau P={p} eps={eps}"] = es_wmv(p, eps)
    for level in (0.9, 0.95):
        rules[f"discrepancy {level}"] = discrepancy(level)
    for level in (0.85, 0.9, 0.95):  # the plateau rule, held on until the residual is down to L
        d = discrepancy(level)
        rules[f"max(plateau P=200 eps=0.01, discrepancy {level})"] = lambda t, d=d: max(plateau(t), d(t))
    table = evaluate(traces, rules)
    print(table)
    if not a.no_write:
        commits = sorted({t["commit"] for t in traces})
        write_section(
            "dip_stop_study",
            "## DIP automatic stopping: rules replayed on recorded runs (benchmarks/dip_stop_study.py)\n\n"
            f"Fast preset, {traces[0]['steps']} steps, seed 0, on dip_bench's denoising inputs (256×256; "
            f"recorded at commit {', '.join(commits)}). Each cell: the step where the rule stops · the "
            "PSNR it loses against the best averaged estimate of the run (checked every 10 steps "
            "against the clean image). P: patience (steps); eps: the relative fall of the windowed "
            "variance that counts as progress; lag: also wait until lag × t*. 'discrepancy L': stop when "
            "the residual whitened by the estimated noise variance (mean over 50 steps) falls below L; "
            "'max(plateau …, discrepancy L)': whichever of the two stops later; the engine's rule waits for "
            "the discrepancy for at most half its plateau step again. Rules that run to the "
            "end stop at the last recorded step.\n\n" + table,
        )


if __name__ == "__main__":
    main()
