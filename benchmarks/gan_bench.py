"""GAN prior benchmark: training speed at the bundled configurations (float32 vs bfloat16 autocast)
and the fidelity figures of the bundled priors from their model cards.

    python -m benchmarks.gan_bench [--steps 6] [--repeats 3] [--no-write]

Speed: one training step = a discriminator step (with the lazy R1 penalty amortised as in
training) and a generator step, measured on the training command's own loop (``train_gan``); the
time of building the data pool and the models is excluded (with ``--pool 0`` the fresh synthetic
images of each step are drawn inside the loop and count). Median over repeats.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.report import machine, markdown_table, write_section
from napari_genprior.models import list_models
from napari_genprior.train.gan import GanConfig, build_models, train_gan, training_images


def bundled_configs() -> list[tuple[str, GanConfig]]:
    """(name, training settings) of each bundled prior, read from its model card."""
    fields = GanConfig.__dataclass_fields__
    return [
        (m["name"], GanConfig(out="", **{k: v for k, v in m["training"].items() if k in fields}))
        for m in list_models()
        if m.get("task") == "gan-prior"
    ]


def seconds_per_step(trained: GanConfig, amp: bool, steps: int) -> float:
    """Wall seconds per training step at ``trained``'s settings (setup excluded)."""
    with tempfile.TemporaryDirectory() as d:
        cfg = replace(
            trained,
            out=str(Path(d) / "g.pt"),
            steps=2,
            pool=32 if trained.pool else 0,  # streaming draws its images in the loop: keep it
            amp=amp,
            sample_every=10**9,
            ckpt_every=10**9,
        )
        train_gan(cfg, log=lambda _m: None)  # warm-up (and a checkpoint to resume from)
        t = time.perf_counter()
        data = training_images(cfg)
        build_models(cfg, data.shape[1])
        setup = time.perf_counter() - t
        cfg.steps = 2 + steps
        t = time.perf_counter()
        train_gan(cfg, log=lambda _m: None)
        return (time.perf_counter() - t - setup) / steps


def layout_cell(card: dict, who: str) -> str:
    """'whole (interior)' layout correlation of ``who`` (prior or real) from a model card."""
    lc = card["metrics"].get("layout_correlation")
    return f"{lc[who]:.3f} ({lc[who + '_interior']:.3f})" if lc else "-"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    rows = []
    for name, cfg in bundled_configs():
        cells = []
        for amp in (False, True):
            ts = [seconds_per_step(cfg, amp, args.steps) for _ in range(args.repeats)]
            cells.append(statistics.median(ts))
        rows.append(
            [
                name,
                f"{cfg.size}×{cfg.size}",
                f"{cfg.max_channels} (base {cfg.channel_base})" if cfg.channel_base else cfg.max_channels,
                cfg.batch,
                "yes" if cfg.augment else "no",
                "latent" if cfg.latent_input else "constant",
                "fresh" if cfg.pool == 0 else cfg.pool,
                f"{cells[0]:.2f} s ({1 / cells[0]:.2f} it/s)",
                f"{cells[1]:.2f} s ({1 / cells[1]:.2f} it/s)",
                f"{cells[0] / cells[1]:.2f}×",
            ]
        )
        print(rows[-1], flush=True)
    speed = markdown_table(
        [
            "prior",
            "size",
            "max channels",
            "batch",
            "augment",
            "4×4 input",
            "data pool",
            "float32 per step",
            "bf16 autocast per step",
            "speed-up",
        ],
        rows,
    )
    fid = []
    for m in list_models():
        if m.get("task") != "gan-prior":
            continue
        mean = m["metrics"]["mean"]
        fid.append(
            [
                m["name"],
                f"{m['size']}×{m['size']}",
                m["steps"],
                m["wall_time"],
                mean["prior"],
                mean["baseline_blurred_noise"],
                mean.get("real_vs_real", "-"),
                layout_cell(m, "prior"),
                layout_cell(m, "real"),
            ]
        )
    fid_table = markdown_table(
        [
            "prior",
            "size",
            "steps",
            "wall time",
            "SWD prior",
            "SWD blurred noise",
            "SWD real vs real",
            "layout corr. prior (interior)",
            "layout corr. real (interior)",
        ],
        fid,
    )
    print(speed + "\n\n" + fid_table)
    if args.no_write:
        return
    body = (
        "## GAN priors: training speed and fidelity (benchmarks/gan_bench.py)\n\n"
        f"Training speed of `napari-genprior train gan` at the bundled priors' settings, median of "
        f"{args.repeats} × {args.steps} steps. Machine: {machine()}.\n\n{speed}\n\n"
        "Fidelity of the bundled priors (from their model cards): SWD ×1000 of 7×7 Laplacian-pyramid "
        "patches against held-out real images (evaluation seeds); smaller is closer. 'Blurred noise' is "
        "the trivial baseline, 'real vs real' two independent draws of the real data (the floor). "
        "Layout correlation: mean pairwise correlation of the samples' edge maps, whole image and "
        "interior (≈ 0 for independent layouts, → 1 when all samples share one layout).\n\n"
        f"{fid_table if fid else '(no bundled priors yet)'}\n"
    )
    write_section("gan_bench", body)


if __name__ == "__main__":
    torch.manual_seed(0)
    main()
