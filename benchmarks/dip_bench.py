"""DIP benchmark: the paper preset, the fast preset with automatic stopping, and scikit-image's
classical methods, side by side on the same 256×256 images.

    python -m benchmarks.dip_bench                     # full run; writes docs/benchmarks.md
    python -m benchmarks.dip_bench --quick             # smoke run in a few minutes (prints only)
    python -m benchmarks.dip_bench --methods fast,classical --images camera,astronaut
    python -m benchmarks.dip_bench --reuse             # take finished rows from the results log
    python -m benchmarks.dip_bench --reuse --logged-only --memory   # rebuild the table from the log
    python -m benchmarks.dip_bench --reuse --logged-only   # same, quoting the last logged memory

Images: scikit-image's camera (grey), astronaut and coffee (RGB), and the project's synthetic
fluorescence image, all 256×256. Tasks: Gaussian denoising σ = 25 (8-bit), Poisson–Gaussian
denoising (fluorescence, 16-bit camera counts), SR ×4 (low-resolution image made by antialiased
bicubic downscaling, as MATLAB's imresize) and inpainting of 50 % missing pixels.

Every finished row is appended to ``benchmarks/results/dip_bench.jsonl`` (with the commit, date
and machine). A paper-preset row costs 48–120 minutes on a 2-core CPU; ``--reuse`` takes rows of
the same settings from that log instead of recomputing them, and the table marks them. Peak memory
of a tiled 2048×2048 fit (``--memory``) is measured in a child process and logged to
``benchmarks/results/dip_memory.jsonl``; ``--reuse`` without ``--memory`` quotes the last logged one.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from skimage import data as skdata
from skimage import restoration, transform

from benchmarks.report import machine, markdown_table, write_section
from napari_genprior.data.samples import missing_pixels
from napari_genprior.data.synthetic import fluorescence, poisson_gaussian_noise
from napari_genprior.engines import dip, drive
from napari_genprior.metrics import image_metrics as metrics

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "benchmarks" / "results" / "dip_bench.jsonl"
MEMORY_LOG = ROOT / "benchmarks" / "results" / "dip_memory.jsonl"
IMAGES = ("camera", "astronaut", "coffee", "fluorescence")
TASKS = ("denoise", "denoise-poisson", "sr4", "inpaint50")
METHODS = ("classical", "fast", "paper")


@dataclass
class Case:
    """One benchmark input: what the method sees, the clean reference and the task settings."""

    image: str
    task: str
    inp: np.ndarray
    clean: np.ndarray
    channel_axis: int | None
    mask: np.ndarray | None = None
    dip_params: dict[str, Any] = field(default_factory=dict)


def clean_image(name: str, size: int) -> np.ndarray:
    """``size``² uint8 test image (grey or RGB)."""
    if name == "fluorescence":
        return np.rint(fluorescence((size, size), seed=0) * 255).astype(np.uint8)
    img = getattr(skdata, name)()  # any of scikit-image's bundled images (no download)
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    out = transform.resize(img, (size, size), anti_aliasing=True, preserve_range=True)
    return np.rint(out).clip(0, 255).astype(np.uint8)


def bicubic_down(img: np.ndarray, f: int) -> np.ndarray:
    """Antialiased bicubic downscaling by ``f`` (torch's, as MATLAB's imresize), uint8 → uint8."""
    t = torch.from_numpy(img.astype(np.float32))
    t = t.permute(2, 0, 1)[None] if img.ndim == 3 else t[None, None]
    lo = torch.nn.functional.interpolate(t, scale_factor=1 / f, mode="bicubic", antialias=True)
    lo = lo[0].permute(1, 2, 0) if img.ndim == 3 else lo[0, 0]
    return np.rint(lo.numpy()).clip(0, 255).astype(np.uint8)


def make_case(image: str, task: str, size: int) -> Case | None:
    """The input for ``task`` on ``image``; ``None`` where the pair is not in the benchmark."""
    if task == "denoise-poisson":
        if image != "fluorescence":
            return None
        ideal, noisy = poisson_gaussian_noise(fluorescence((size, size), seed=0), seed=0)
        return Case(image, task, noisy, ideal, None, dip_params={"noise_model": "poisson-gaussian"})
    clean = clean_image(image, size)
    ch = -1 if clean.ndim == 3 else None
    rng = np.random.default_rng(0)
    if task == "denoise":
        noisy = np.rint(clean + rng.normal(0, 25, clean.shape)).clip(0, 255).astype(np.uint8)
        return Case(image, task, noisy, clean, ch)
    if task == "sr4":
        return Case(image, task, bicubic_down(clean, 4), clean, ch, dip_params={"task": "sr", "scale": 4})
    if task == "inpaint50":
        mask = missing_pixels(clean.shape[:2], 0.5, seed=0)
        damaged = np.where((mask[..., None] if clean.ndim == 3 else mask) > 0, 0, clean).astype(np.uint8)
        return Case(image, task, damaged, clean, ch, mask=mask, dip_params={"task": "inpaint"})
    raise ValueError(task)


# -- methods ------------------------------------------------------------------------------------


def classical(case: Case) -> list[tuple[str, np.ndarray, float]]:
    """scikit-image's methods: (name, output in the clean image's units, seconds).

    Denoisers get their parameter tuned against the clean image (an oracle choice that favours
    them); the noise level they are given is scikit-image's own estimate.
    """
    ch = case.channel_axis
    out: list[tuple[str, np.ndarray, float]] = []
    if case.task.startswith("denoise"):
        lo, hi = float(case.inp.min()), float(case.inp.max())
        x = (case.inp.astype(np.float64) - lo) / (hi - lo)
        sigma = float(np.mean(restoration.estimate_sigma(x, channel_axis=ch)))

        def back(y: np.ndarray) -> np.ndarray:
            return y * (hi - lo) + lo

        def best(name: str, fn, grid) -> None:
            t0 = time.perf_counter()
            cands = [back(fn(v)) for v in grid]
            scores = [metrics(c, case.clean, ch)["psnr"] for c in cands]
            k = int(np.argmax(scores))
            out.append((name, cands[k], (time.perf_counter() - t0) / len(grid)))

        best(
            "nl_means",
            lambda hf: restoration.denoise_nl_means(
                x, h=hf * sigma, sigma=sigma, fast_mode=True, patch_size=5, patch_distance=6, channel_axis=ch
            ),
            (0.6, 0.8, 1.0, 1.2),
        )
        best(
            "tv_chambolle",
            lambda wt: restoration.denoise_tv_chambolle(x, weight=wt, channel_axis=ch),
            (0.03, 0.05, 0.08, 0.12, 0.2),
        )
        best(
            "wavelet",
            lambda m: restoration.denoise_wavelet(
                x, method=m, mode="soft", rescale_sigma=True, channel_axis=ch, convert2ycbcr=ch is not None
            ),
            ("BayesShrink", "VisuShrink"),
        )
    elif case.task == "sr4":
        t0 = time.perf_counter()
        y = transform.resize(case.inp.astype(np.float64), case.clean.shape, order=3, preserve_range=True)
        out.append(("bicubic", y.clip(0, 255), time.perf_counter() - t0))
    elif case.task == "inpaint50":
        t0 = time.perf_counter()
        y = restoration.inpaint_biharmonic(
            case.inp.astype(np.float64), case.mask.astype(bool), channel_axis=ch
        )
        out.append(("biharmonic", y, time.perf_counter() - t0))
    return out


def dip_params(case: Case, method: str, cap: int | None) -> dict[str, Any]:
    p: dict[str, Any] = {
        "task": "denoise",
        "method": "dip",
        "preset": method,
        "seed": 0,
        "preview_every": 0,
        **case.dip_params,
    }
    if method == "fast":
        p["iterations"] = "auto"
    if cap is not None:  # --quick
        p["iterations"] = cap
    return p


def run_dip(case: Case, params: dict[str, Any], device: str = "cpu") -> tuple[np.ndarray, dict[str, Any]]:
    """Run DIP; also track the best PSNR of the estimate every 100 steps (an oracle that sees the
    clean image), to show how close automatic stopping gets to the best possible stop. The whole
    PSNR trajectory is returned too (``trajectory``: ``[[step, psnr], …]``), so stopping rules can
    be compared offline from the results log."""
    best = {"psnr": -np.inf, "step": 0}
    trajectory: list[list[float]] = []

    def on_progress(ev: Any) -> None:
        if ev.preview is None:
            return
        pv = ev.preview
        if case.clean.dtype == np.uint8:
            pv = np.rint(pv).clip(0, 255).astype(np.uint8)
        ps = metrics(pv, case.clean, case.channel_axis)["psnr"]
        trajectory.append([ev.step, round(float(ps), 3)])
        if ps > best["psnr"]:
            best.update(psnr=ps, step=ev.step)

    t0 = time.perf_counter()
    res = drive(
        dip.run(case.inp, {**params, "preview_every": 100}, mask=case.mask, device=device), on_progress
    )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    meta = res.metadata
    return res.layers[0].data, {
        "wall_s": time.perf_counter() - t0,
        "steps": meta.get("stopped_at", [meta["config"]["iterations"]])[0],
        "chosen": meta.get("chosen_step", [meta["config"]["iterations"]])[0],
        "oracle_psnr": best["psnr"],
        "oracle_step": best["step"],
        "trajectory": trajectory,
    }


# -- bookkeeping --------------------------------------------------------------------------------


def settings_key(
    case: Case, method: str, params: dict[str, Any] | None, size: int, device: str = "cpu"
) -> str:
    cfg = dip.resolve_config(dip.DIPParams.from_any(params)) if params is not None else {}
    if "precision" in cfg:  # as the run will resolve ``auto`` on this device
        cfg["precision"] = dip.resolve_precision(cfg["precision"], torch.device(device))
    where = [] if device == "cpu" else [device]  # CPU keys stay as they were
    blob = json.dumps([case.image, case.task, method, size, cfg, params, *where], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def load_log(log: Path = LOG) -> dict[str, dict[str, Any]]:
    """The logged rows by settings key: the latest row of each key. Where the same settings ran
    more than once on the latest row's machine, ``wall_s`` is the median of those runs and
    ``wall_runs`` lists them (the machine's speed drifts by 10–25 % between runs)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                groups.setdefault(r["key"], []).append(r)
    rows: dict[str, dict[str, Any]] = {}
    for key, runs in groups.items():
        last = runs[-1]
        walls = [r["wall_s"] for r in runs if r.get("machine") == last.get("machine")]
        rows[key] = {**last, "wall_s": float(np.median(walls)), "wall_runs": [round(w, 1) for w in walls]}
    return rows


def append_log(row: dict[str, Any], log: Path = LOG) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as fh:
        fh.write(json.dumps(row) + "\n")


def measure_memory(size: int = 2048) -> dict[str, float]:
    """Peak resident memory (GiB) of a child process fitting a ``size``² grey image, 3 steps per fit.

    Tiled (the default) and, for comparison, untiled at 512² and 1024².
    """
    code = (
        "import resource,sys,numpy as np;from napari_genprior.engines import dip,drive;"
        "n,t=int(sys.argv[1]),int(sys.argv[2]);x=np.random.default_rng(0).random((n,n)).astype(np.float32);"
        "r=drive(dip.run(x,{'preset':'fast','iterations':3,'tile_size':t,'preview_every':0},device='cpu'));"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/2**20, r.metadata['tiles'])"
    )
    out = {}
    for n, tile in ((512, 0), (1024, 0), (size, dip.DEFAULT_TILE)):
        res = subprocess.run([sys.executable, "-c", code, str(n), str(tile)], capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(res.stderr)
        gib, tiles = res.stdout.split()
        out[f"{n}² ({'untiled' if tile == 0 else f'{tiles} tiles of {tile}²'})"] = float(gib)
    return out


STEP_LOG = ROOT / "benchmarks" / "results" / "dip_step_times.jsonl"
STEP_CASES = (("camera", "denoise"), ("camera", "sr4"), ("camera", "inpaint50"), ("coffee", "sr4"))


def time_steps(case: Case, params: dict[str, Any], steps: int, device: str = "cpu") -> float:
    """Median seconds per step of ``steps`` DIP steps (the first 3 not counted)."""
    stamps: list[float] = []
    p = {**params, "iterations": steps, "preview_every": 0}
    drive(dip.run(case.inp, p, mask=case.mask, device=device), lambda ev: stamps.append(time.perf_counter()))
    return float(np.median(np.diff(stamps[2:])))


def step_times(
    device: str = "cpu", rounds: int = 3, paper_steps: int = 10, fast_steps: int = 40
) -> list[dict[str, Any]]:
    """Time per step of both presets, side by side in one run on this machine, for the cases of
    :data:`STEP_CASES` (256²): ``paper``, ``fast`` as it runs here (``auto`` precision) and ``fast``
    with bfloat16 forced, interleaved over ``rounds`` rounds (a shared machine's speed drifts from
    minute to minute); medians over the rounds. The paper preset always runs all its steps, so
    its wall time on this machine is its number of steps times its time per step;
    ``fast_budget`` is the step at which ``fast`` must stop to take at most a tenth of that."""
    rows = []
    for image, task in STEP_CASES:
        case = make_case(image, task, 256)
        assert case is not None
        paper = dip_params(case, "paper", None)
        fast = {**dip_params(case, "fast", None), "iterations": None}
        cfg = dip.resolve_config(dip.DIPParams.from_any(paper))
        t_paper, t_fast, t_bf16 = [], [], []
        for _ in range(rounds):
            t_paper.append(time_steps(case, paper, paper_steps, device))
            t_fast.append(time_steps(case, fast, fast_steps, device))
            t_bf16.append(time_steps(case, {**fast, "precision": "bfloat16"}, fast_steps, device))
        ratios = [p / f for p, f in zip(t_paper, t_fast, strict=True)]
        ratio = float(np.median(ratios))
        rows.append(
            {
                "image": image,
                "task": task,
                "paper_s": float(np.median(t_paper)),
                "fast_s": float(np.median(t_fast)),
                "fast_bf16_s": float(np.median(t_bf16)),
                "ratio": ratio,
                "ratio_range": [min(ratios), max(ratios)],
                "rounds": rounds,
                "fast_precision": dip.resolve_precision("auto", torch.device(device)),
                "paper_iterations": cfg["iterations"],
                "fast_budget": int(cfg["iterations"] * ratio / 10),
            }
        )
        print(
            f"  {image} {task}: paper {rows[-1]['paper_s']:.3f} s/step, fast {rows[-1]['fast_s']:.3f}, "
            f"fast bf16 {rows[-1]['fast_bf16_s']:.3f}; paper/fast {ratio:.2f} "
            f"({min(ratios):.2f}–{max(ratios):.2f})",
            flush=True,
        )
    return rows


def step_table(rows: list[dict[str, Any]]) -> str:
    return markdown_table(
        [
            "image",
            "task",
            "paper (s/step)",
            "fast (s/step, precision)",
            "fast, bfloat16 forced (s/step)",
            "paper ÷ fast (range over rounds)",
            "paper steps",
            "fast must stop by (1/10 of paper's time)",
        ],
        [
            [
                r["image"],
                r["task"],
                f"{r['paper_s']:.3f}",
                f"{r['fast_s']:.3f} ({r['fast_precision']})",
                f"{r['fast_bf16_s']:.3f}",
                f"{r['ratio']:.2f} ({r['ratio_range'][0]:.2f}–{r['ratio_range'][1]:.2f})",
                r["paper_iterations"],
                r["fast_budget"],
            ]
            for r in rows
        ],
    )


# -- main -----------------------------------------------------------------------------------------


def fmt(x: float | None, nd: int = 2) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="128² images, 2 images, 40 DIP steps; prints only")
    ap.add_argument("--images", default=",".join(IMAGES))
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--reuse", action="store_true", help="take rows with the same settings from the log")
    ap.add_argument(
        "--logged-only",
        action="store_true",
        help="with --reuse: DIP rows not in the log are left out (not run), e.g. the paper preset's",
    )
    ap.add_argument("--memory", action="store_true", help="also measure peak memory at 2048²")
    ap.add_argument(
        "--step-times",
        action="store_true",
        help="only time both presets per step, side by side (a few minutes); writes its own section",
    )
    ap.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    ap.add_argument("--log", type=Path, default=LOG, help=f"results log (default {LOG.relative_to(ROOT)})")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda; rows are kept apart by device")
    args = ap.parse_args()
    if args.step_times:
        run_step_times(args)
        return
    size = 128 if args.quick else 256
    cap = 40 if args.quick else None
    images = ["camera", "fluorescence"] if args.quick else args.images.split(",")
    tasks, methods = args.tasks.split(","), args.methods.split(",")
    log = load_log(args.log) if args.reuse else {}
    commit, today = git_commit(), dt.date.today().isoformat()

    cases = [c for t in tasks for i in images if (c := make_case(i, t, size)) is not None]
    rows: list[dict[str, Any]] = []
    # Cheap methods first, then the fast preset, then the paper preset (the long runs) last.
    for method in [m for m in METHODS if m in methods]:
        for case in cases:
            base = {"image": case.image, "task": case.task, "size": size}
            if method == "classical":
                for name, y, secs in classical(case):
                    m = metrics(y, case.clean, case.channel_axis)
                    rows.append({**base, "method": name, **m, "wall_s": secs})
                continue
            params = dip_params(case, method, cap)
            key = settings_key(case, method, params, size, args.device)
            if key in log:
                rows.append({**log[key], "reused": True})
                print(f"reused {case.image} {case.task} {method} from {log[key]['date']}", flush=True)
                continue
            if args.logged_only:
                continue
            print(f"running DIP {method} on {case.image} {case.task} …", flush=True)
            y, info = run_dip(case, params, args.device)
            m = metrics(y, case.clean, case.channel_axis)
            row = {
                **base,
                "method": f"dip-{method}",
                **m,
                **info,
                "key": key,
                "commit": commit,
                "date": today,
            }
            row["machine"] = machine_on(args.device)
            row["device"] = args.device
            print(
                f"  {row['psnr']:.2f} dB, SSIM {row['ssim']:.3f}, {row['wall_s']:.0f} s, "
                f"chose step {row['chosen']} of {row['steps']}",
                flush=True,
            )
            rows.append(row)
            if not args.quick:
                append_log(row, args.log)

    table, summary = report(rows, cases, last_step_times())
    text = f"{table}\n\n{summary}"
    print(text)
    mem_text = ""
    mem, mem_note = None, ""
    if args.memory:
        mem = measure_memory()
        if not args.quick:
            append_log({"memory": mem, "commit": commit, "date": today, "machine": machine()}, MEMORY_LOG)
    elif args.reuse and MEMORY_LOG.exists():
        last = json.loads(MEMORY_LOG.read_text().splitlines()[-1])
        mem, mem_note = last["memory"], f" (logged on {last['date']}, commit {last['commit']})"
    if mem is not None:
        mem_text = (
            f"Peak resident memory (fast preset, grey image, whole process){mem_note}:\n\n"
            + markdown_table(["image", "peak memory (GiB)"], [[k, f"{v:.2f}"] for k, v in mem.items()])
        )
        print(mem_text)
    if args.quick or args.no_write:
        return
    fast_machine = next((r["machine"] for r in rows if r["method"] == "dip-fast"), "none")
    body = (
        "## DIP: paper preset vs fast preset vs classical (benchmarks/dip_bench.py)\n\n"
        f"{size}×{size} images; run on {today}, commit {commit}; {machine()}. PSNR (dB) / SSIM against the "
        "clean image; wall time in seconds for one image on this CPU. DIP fast = fast preset with "
        "automatic stopping (ES-WMV with a 1 % tolerance, patience 200, 500 for SR; denoising instead "
        "stops once the residual is white: its lag-1 autocorrelation below 0 from step 100 on, or the "
        "residual whitened by the noise estimate below 0.7 of the noise; docs/dip.md). "
        "Classical denoisers: parameter chosen with the clean image "
        "(oracle), noise level estimated by scikit-image. 'Best PSNR seen': the best of the DIP "
        "estimates checked every 100 steps against the clean image (an oracle stop, for comparison "
        "with automatic stopping). Rows marked * were taken from "
        "benchmarks/results/dip_bench.jsonl (same settings, an earlier run; `--reuse`), each with "
        "the machine it ran on; where the same settings ran more than once on that machine, the "
        "wall time is the median of those runs (this machine's speed drifts by 10–25 % between "
        "runs). The machines lent to this project differ between sessions, so the "
        "fast-vs-paper table gives two time ratios: between the logged runs (marked when they ran on "
        "different machines) and on the fast rows' machine, where the paper preset's time is its "
        "number of steps times its time per step measured there side by side with `fast` "
        "(`--step-times`, section below; the paper preset always runs all its steps). The target "
        "column uses the same-machine ratio where there is one. 'Step budget': the step by which "
        "`fast` must stop to take a tenth of the paper's time, from the per-step times of both presets "
        "measured interleaved in one run (`--step-times`): free of the drift between runs, but "
        "without the automatic stop's bookkeeping, which those timings leave out. Fast rows' machine: "
        f"{fast_machine}.\n\n"
        f"{text}\n"
    )
    if mem_text:
        body += f"\n{mem_text}\n"
    write_section("dip_bench", body)


def machine_on(device: str) -> str:
    """The machine line of a row run on ``device`` (with the GPU's name for CUDA)."""
    return machine() if device == "cpu" else f"{machine()}, {torch.cuda.get_device_name()}"


def run_step_times(args: argparse.Namespace) -> None:
    commit, today = git_commit(), dt.date.today().isoformat()
    rows = step_times(args.device)
    table = step_table(rows)
    print(table)
    if args.no_write:
        return
    where = machine_on(args.device)
    append_log({"step_times": rows, "commit": commit, "date": today, "machine": where}, STEP_LOG)
    write_section(
        "dip_step_times",
        "## DIP: time per step of both presets on one machine (benchmarks/dip_bench.py --step-times)\n\n"
        f"256×256 images; run on {today}, commit {commit}; {where}. Three interleaved rounds of "
        "10 paper steps, 40 fast steps and 40 fast steps in bfloat16 per case; each round's time "
        "per step is the median step (the first 3 not counted), the table gives medians over the "
        "rounds and the median and range of the rounds' paper ÷ fast ratios. "
        "`fast` runs in the precision its `auto` setting picks here; the column after it forces "
        "bfloat16. The machines lent to this project differ between sessions: compare the "
        "full-run rows above with this table only where the machine line is the same.\n\n"
        f"{table}\n",
    )


def last_step_times(log: Path = STEP_LOG) -> dict[str, Any] | None:
    """The last ``--step-times`` entry of the log, or ``None``."""
    if not log.exists():
        return None
    lines = [ln for ln in log.read_text().splitlines() if ln.strip()]
    return json.loads(lines[-1]) if lines else None


def step_row(fast: dict[str, Any], step_log: dict[str, Any] | None) -> dict[str, Any] | None:
    """The ``--step-times`` row for ``fast``'s cell, from a run on the same machine line: the same
    image if timed, else camera for the same task."""
    if step_log is None or step_log.get("machine") != fast.get("machine"):
        return None
    task = "denoise" if fast["task"] == "denoise-poisson" else fast["task"]
    timed = [r for r in step_log["step_times"] if r["task"] == task]
    return next((r for r in timed if r["image"] == fast["image"]), None) or next(
        (r for r in timed if r["image"] == "camera"), None
    )


def paper_time_here(fast: dict[str, Any], step_log: dict[str, Any] | None) -> float | None:
    """The paper preset's wall time for ``fast``'s cell on the machine ``fast`` ran on: its number of
    steps times its time per step from a ``--step-times`` run on the same machine line (the paper
    preset always runs all its steps)."""
    row = step_row(fast, step_log)
    return None if row is None else row["paper_iterations"] * row["paper_s"]


def report(
    rows: list[dict[str, Any]], cases: list[Case], step_log: dict[str, Any] | None = None
) -> tuple[str, str]:
    """The per-image table and the per-task summary against the targets. ``step_log``: a
    ``--step-times`` entry, for the paper preset's time on the fast rows' machine."""
    header = [
        "task",
        "image",
        "method",
        "PSNR",
        "SSIM",
        "wall (s)",
        "DIP steps (chosen/run)",
        "best PSNR seen (step)",
    ]
    out = []
    for r in rows:
        steps = f"{r['chosen']}/{r['steps']}" if "steps" in r else "-"
        oracle = f"{r['oracle_psnr']:.2f} ({r['oracle_step']})" if "oracle_psnr" in r else "-"
        name = r["method"] + (" *" if r.get("reused") else "")
        out.append(
            [
                r["task"],
                r["image"],
                name,
                fmt(r["psnr"]),
                fmt(r["ssim"], 3),
                fmt(r["wall_s"], 1) + (f" (median of {n})" if (n := len(r.get("wall_runs", []))) > 1 else ""),
                steps,
                oracle,
            ]
        )
    table = markdown_table(header, out)

    def get(task: str, image: str, method: str) -> dict[str, Any] | None:
        return next((r for r in rows if (r["task"], r["image"], r["method"]) == (task, image, method)), None)

    vs_header = [
        "task",
        "image",
        "fast − paper (dB)",
        "fast time / paper time (logged runs)",
        "fast time / paper time, same machine",
        "fast steps / step budget (interleaved step times)",
        "target (≥ −0.3 dB in ≤ 1/10 time)",
        "fast − best classical (dB)",
    ]
    body = []
    for c in cases:
        fast, paper = get(c.task, c.image, "dip-fast"), get(c.task, c.image, "dip-paper")
        cl = [
            r
            for r in rows
            if (r["task"], r["image"]) == (c.task, c.image) and not r["method"].startswith("dip")
        ]
        best = max((r["psnr"] for r in cl), default=None)
        here = paper_time_here(fast, step_log) if fast else None
        srow = step_row(fast, step_log) if fast else None
        logged = "not run"
        if fast and paper:
            logged = f"1/{paper['wall_s'] / fast['wall_s']:.1f}"
            if paper.get("machine") != fast.get("machine"):
                logged += " (other machines)"
        # time: the same-machine ratio where there is one, else the logged runs'
        paper_s = here if here is not None else (paper["wall_s"] if paper else None)
        time_ok = None if fast is None or paper_s is None else 10 * fast["wall_s"] <= paper_s
        if fast and paper and time_ok is not None:
            met = "met" if fast["psnr"] - paper["psnr"] >= -0.3 and time_ok else "missed"
        elif time_ok is not None:
            met = f"time {'met' if time_ok else 'missed'}; PSNR not run"
        else:
            met = "not run"
        body.append(
            [
                c.task,
                c.image,
                fmt(fast["psnr"] - paper["psnr"]) if fast and paper else "not run",
                logged,
                f"1/{here / fast['wall_s']:.2f}" if here is not None else "-",
                f"{fast['steps']} / {srow['fast_budget']}" if srow else "-",
                met,
                fmt(fast["psnr"] - best) if fast and best is not None else "-",
            ]
        )
    summary = "Fast preset against the paper preset and the best classical method:\n\n" + markdown_table(
        vs_header, body
    )
    # Means per task over the images where every method ran; the paper preset (rows that cost an
    # hour each, often only some images) is left out of that condition and averaged over its own.
    means = []
    for task in dict.fromkeys(c.task for c in cases):
        names = list(dict.fromkeys(r["method"] for r in rows if r["task"] == task))
        all_imgs = [c.image for c in cases if c.task == task]
        imgs = [i for i in all_imgs if all(get(task, i, m) for m in names if m != "dip-paper")]
        for m in names:
            own = [i for i in all_imgs if get(task, i, m)] if m == "dip-paper" else imgs
            vals = [get(task, i, m) for i in own]
            means.append(
                [
                    task,
                    m,
                    len(own),
                    fmt(float(np.mean([v["psnr"] for v in vals]))),
                    fmt(float(np.mean([v["ssim"] for v in vals])), 3),
                    fmt(float(np.median([v["wall_s"] for v in vals])), 1),
                ]
            )
    summary += (
        "\n\nMean per task (images where every listed method ran; the paper preset over the images"
        " it ran on):\n\n"
    ) + markdown_table(["task", "method", "images", "mean PSNR", "mean SSIM", "median wall (s)"], means)
    return table, summary


if __name__ == "__main__":
    main()
