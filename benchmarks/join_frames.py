"""JoIN flat-field on one camera frame per size: wall time and peak memory, beside the widget's
estimate (issue 39: "state the time per frame size"; "a 4096² frame must run in bounded memory").

    python -m benchmarks.join_frames                      # 256² … 4096², writes docs/benchmarks.md
    python -m benchmarks.join_frames --sizes 256 2048 --threads 2 --no-write

Timing only: each frame is a held-out real nuclei plane (``data.real``) repeated to the size,
under a smooth synthetic field with the benchmark's dark level and noise; the quality of the
correction is join_bench.py's. Each size runs in a fresh process, so its peak resident memory
(``ru_maxrss``, which includes the ~0.6 GB of torch and the package) is its own. One run each.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LOG = ROOT / "benchmarks" / "results" / "join_frames.jsonl"


def frame(size: int) -> np.ndarray:
    """A ``(size, size)`` float32 frame: real held-out nuclei repeated, a synthetic field, dark, noise."""
    from benchmarks.join_bench import DARK, NOISE, _field
    from napari_genprior.data.real import real_planes

    plane = real_planes("nuclei", "held_out")[0].astype(np.float32)
    reps = -(-size // plane.shape[0])
    spec = np.tile(plane, (reps, reps))[:size, :size]
    rng = np.random.default_rng(0)
    img = _field(1, size) * spec + DARK + NOISE * rng.standard_normal(spec.shape).astype(np.float32)
    return img.astype(np.float32)


def one(size: int, threads: int) -> dict:
    """Run one size in this process; the record (seconds, peak MB, the widget's estimate)."""
    import torch

    from napari_genprior.engines import drive, join

    torch.set_num_threads(threads)
    img = frame(size)
    params = {"forward": "flatfield", "preview_every": 0}
    n_tiles, tile = join.tiles_for(img, params)
    estimate = join.rough_seconds(n_tiles, tile, params)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    res = drive(join.run(img, params, device="cpu"))
    secs = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    corrected = res.layer("corrected").data
    assert corrected.shape == img.shape and np.isfinite(corrected).all()
    return {
        "size": size,
        "seconds": round(secs, 1),
        "estimate_s": round(estimate, 1),
        "tiles": n_tiles,
        "tile": tile,
        "work_size": res.metadata.get("work_size"),
        "peak_mb": round(peak),
        "before_run_mb": round(before),
        "input_mb": round(img.nbytes / 2**20, 1),
        "threads": threads,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048, 4096])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--one", type=int, help=argparse.SUPPRESS)  # the child process's size
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--from-log", action="store_true", help="rebuild the table from the log's latest rows")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.threads)))
        return
    from benchmarks.dip_bench import git_commit
    from benchmarks.report import machine, markdown_table, write_section

    rows: list[dict] = []
    if args.from_log:
        latest = {
            r["size"]: r for r in map(json.loads, LOG.read_text().splitlines()) if r["size"] in args.sizes
        }
        rows = [latest[s] for s in args.sizes if s in latest]
    for size in [] if args.from_log else args.sizes:
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.join_frames",
            "--one",
            str(size),
            "--threads",
            str(args.threads),
        ]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT).stdout
        rec = json.loads(out.strip().splitlines()[-1])
        rec.update(commit=git_commit(), date=time.strftime("%Y-%m-%d"), machine=machine())
        print(json.dumps(rec), flush=True)
        rows.append(rec)
        if not args.no_write:
            LOG.parent.mkdir(parents=True, exist_ok=True)
            with LOG.open("a") as fh:
                fh.write(json.dumps(rec) + "\n")
    table = markdown_table(
        [
            "frame",
            "tiles × side solved",
            "solved at",
            "wall s",
            "widget's estimate s",
            "peak memory MB",
            "input MB",
        ],
        [
            [
                f"{r['size']}²",
                f"{r['tiles']} × {r['tile']}",
                "×".join(map(str, r["work_size"])) if r["work_size"] else "–",
                f"{r['seconds']:.0f}",
                f"{r['estimate_s']:.0f}",
                f"{r['peak_mb']}",
                f"{r['input_mb']}",
            ]
            for r in rows
        ],
    )
    body = (
        "## JoIN flat-field: time and memory per frame size (`benchmarks/join_frames.py`)\n\n"
        "One frame per size (real held-out nuclei repeated to the size under a synthetic field: timing "
        f"only), default settings, {rows[0]['threads']} torch thread(s); {rows[0]['machine'].rsplit(', ', 2)[0]}; "
        f"commit {rows[0]['commit']}, {rows[0]['date']}; one run each, each "
        "size in a fresh process (peak memory includes torch and the package, about 0.6 GB).\n\n"
        f"{table}\n"
    )
    print(body)
    if not args.no_write:
        write_section("join_frames", body)


if __name__ == "__main__":
    main()
