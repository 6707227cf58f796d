"""Batch throughput: the same batch of images in this process one by one, and on a local dask
cluster of 2 worker processes (one thread each), side by side on this machine.

    python -m benchmarks.batch_bench [--images 8] [--size 128] [--steps 200] [--repeats 2] [--no-write]

Each run is the real command (`napari-genprior dip denoise DIR -o OUT --iterations N`, a fresh
process, cluster start-up included), interleaved sequential / cluster, medians of the repeats.
'Engine s/image' is the median of the per-image task times in batch.json (reading, the fit and
writing); 'overhead s/image' is what the wall time adds to them: (wall × parallel slots − Σ task
times) / images, i.e. start-up, scheduling and idle slots, per image.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import tifffile

from benchmarks.report import machine, markdown_table, write_section
from napari_genprior.data.synthetic import fluorescence, poisson_gaussian_noise

CLI = [sys.executable, "-m", "napari_genprior.cli"]


def make_images(folder: Path, n: int, size: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        _, noisy = poisson_gaussian_noise(fluorescence((size, size), seed=1000 + i), seed=i)
        tifffile.imwrite(folder / f"img{i:02d}.tif", noisy)


def one_run(inp: Path, out: Path, steps: int, extra: list[str]) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    argv = [
        *CLI,
        "dip",
        "denoise",
        str(inp),
        "-o",
        str(out),
        "--method",
        "dip",
        "--iterations",
        str(steps),
        "--seed",
        "0",
    ]
    argv += ["--noise-model", "gaussian", "-q", "--device", "cpu", *extra]
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    rec = json.loads((out / "batch.json").read_text())
    assert rec["done"] == len(rec["images"]), rec
    return {"wall": wall, "task_s": [r["seconds"] for r in rec["images"]]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    modes = {"in-process, one by one": ([], 1), "--workers 2 (1 thread each)": (["--workers", "2"], 2)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_images(tmp / "in", args.images, args.size)
        runs: dict[str, list[dict]] = {m: [] for m in modes}
        for _ in range(args.repeats):  # interleaved: drift hits both alike
            for m, (extra, _slots) in modes.items():
                runs[m].append(one_run(tmp / "in", tmp / "out", args.steps, extra))
    base = statistics.median(r["wall"] for r in runs[next(iter(modes))])
    rows = []
    for m, (_extra, slots) in modes.items():
        wall = statistics.median(r["wall"] for r in runs[m])
        engine = statistics.median(s for r in runs[m] for s in r["task_s"])
        over = statistics.median((r["wall"] * slots - sum(r["task_s"])) / args.images for r in runs[m])
        rows.append(
            [
                m,
                f"{wall:.1f}",
                f"{60 * args.images / wall:.1f}",
                f"{engine:.2f}",
                f"{over:.2f}",
                f"{base / wall:.2f}×",
            ]
        )
    header = [
        "how",
        "wall (s)",
        "images/min",
        "engine s/image",
        "overhead s/image",
        "throughput vs one by one",
    ]
    table = markdown_table(header, rows)
    print(table)
    if args.no_write:
        return
    body = (
        "## Batches: one by one vs a local dask cluster (benchmarks/batch_bench.py)\n\n"
        f"{args.images} synthetic fluorescence images of {args.size}×{args.size} (uint16), "
        f"`dip denoise --iterations {args.steps} --noise-model gaussian`, the whole command in a fresh "
        f"process each time (cluster start-up included), modes interleaved, medians of {args.repeats}. "
        "'engine s/image': median task time (read, fit, write) from batch.json; 'overhead s/image': "
        "(wall × parallel slots − Σ task times) / images. Target: 2 workers ≥ 1.6× the one-by-one "
        f"throughput. Machine: {machine()}.\n\n{table}\n"
    )
    write_section("batch_bench", body)


if __name__ == "__main__":
    main()
