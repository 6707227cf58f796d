"""Time per DIP step with the 1×1 convolutions padded through a reflection copy (before session 12) or not.

    python -m studies.dip_conv_pad_probe            # ~4 minutes on a 2-core CPU; writes docs/benchmarks.md
    python -m studies.dip_conv_pad_probe --rounds 1 --size 64 --no-write   # smoke run

A 1×1 convolution pads nothing, but with ``padding_mode="reflect"`` torch still copies its input
through ``F.pad`` (forward and backward). SkipNet now builds its 1×1 convolutions with
``padding_mode="zeros"``. This times one optimisation step of the network each preset builds
(grey 256² image, the engine's loss and, for SR ×4, its Lanczos downsampler), both ways,
interleaved in one process, checks that both give the same loss to the bit, and reports the
median step time of each round and the median over rounds.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from benchmarks.report import NOTES, machine, markdown_table, write_section

from napari_genprior.engines import dip
from napari_genprior.physics.downsample import LanczosDownsampler

CASES = (("paper", "denoise"), ("paper", "sr"), ("fast", "denoise"), ("fast", "sr"), ("fast", "inpaint"))


def make_step(preset: str, task: str, size: int, reflect_1x1: bool) -> Callable[[], float]:
    """One Adam step of ``preset``'s network for ``task`` on a random ``(1, 1, size, size)`` target."""
    cfg = dip.resolve_config(dip.DIPParams(task=task, preset=preset, scale=4, precision="float32"))
    torch.manual_seed(0)
    net = dip.build_net(cfg, 1)
    if reflect_1x1:  # the behaviour before session 12
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1):
                m.padding_mode = "reflect"
    z0 = torch.rand(1, cfg["input_depth"], size, size) * 0.1
    f = 4 if task == "sr" else 1
    down = LanczosDownsampler(f) if f > 1 else None
    y = torch.rand(1, 1, size // f, size // f)
    w = (torch.rand(1, 1, size, size) > 0.5).float() if task == "inpaint" else torch.ones_like(y)
    opt = torch.optim.Adam(net.parameters(), lr=cfg["lr"])
    gen = torch.Generator().manual_seed(1)
    reg = float(cfg["reg_noise"] or 1 / 50)

    def step() -> float:
        out = net(z0 + reg * torch.randn(z0.shape, generator=gen))
        obs = down(out) if down is not None else out
        loss = ((obs - y).square() * w).sum() / w.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    args = ap.parse_args(argv)

    rows = []
    for preset, task in CASES:
        steps = {v: make_step(preset, task, args.size, v) for v in (True, False)}
        losses = {v: [s() for _ in range(3)] for v, s in steps.items()}  # also the warm-up
        same = losses[True] == losses[False]
        n = 8 if preset == "paper" else 30
        per_round: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.rounds):
            for v, s in steps.items():
                s()
                ts = []
                for _ in range(n):
                    t = time.perf_counter()
                    s()
                    ts.append(time.perf_counter() - t)
                per_round[v].append(statistics.median(ts))
        before, after = (statistics.median(per_round[v]) for v in (True, False))
        ratios = [b / a for b, a in zip(per_round[True], per_round[False])]
        rows.append(
            [
                preset,
                task if task != "sr" else "sr4",
                f"{before * 1000:.0f}",
                f"{after * 1000:.0f}",
                f"{1 - after / before:.1%}",
                f"{min(ratios):.2f}–{max(ratios):.2f}",
                "yes" if same else "NO",
            ]
        )
        print(" | ".join(rows[-1]), flush=True)
    header = [
        "preset",
        "task",
        "1×1 reflect-padded (ms/step)",
        "1×1 unpadded (ms/step)",
        "less time",
        "before ÷ after, range over rounds",
        "same losses",
    ]
    table = markdown_table(header, rows)
    print(table)
    if args.no_write:
        return
    body = (
        "## DIP: 1×1 convolutions without a padding copy (studies/dip_conv_pad_probe.py)\n\n"
        f"Grey {args.size}² image, float32; run on {time.strftime('%Y-%m-%d')}; {machine()}. "
        f"{args.rounds} interleaved rounds of 8 (paper) or 30 (fast) optimisation steps of each preset's "
        "network, both ways; each round's time is its median step, the table gives the median over rounds. "
        "Before session 12 SkipNet's 1×1 convolutions used the 3×3 convolutions' padding mode, so with "
        "reflection padding torch copied their input through `F.pad` for nothing; the losses of both "
        "ways are compared to the bit after three steps.\n\n" + table
    )
    write_section("dip_conv_pad", body, doc=NOTES / "dip_conv_pad.md")


if __name__ == "__main__":
    main()
