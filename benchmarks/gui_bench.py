"""GUI overhead: DIP steps per second in the napari widget against the same run driven as the CLI does.

    xvfb-run -a -s "-screen 0 1600x1000x24" python -m benchmarks.gui_bench [--steps 150] [--repeats 3]
        [--configs 10 0 10:3] [--label after] [--no-write]

Same data (the bundled fluorescence sample, 256×256 uint16), same settings (fast preset, Gaussian
noise model, a fixed number of steps, seed 0), same process, runs interleaved: the CLI, then the
widget with each of --configs, and again for each repeat.
For each run: the time from Run to the first progress event ("starting"), and the step rate from
the first to the last event (medians of the repeats). The GUI runs in a real, shown viewer with the
widget docked, so canvas redraws of the preview are paid for as a user pays for them.
Results are appended to benchmarks/results/gui_bench.jsonl (one line per --label) and the table in
docs/benchmarks.md shows every label logged on this machine, side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchmarks.report import machine, markdown_table, write_section

LOG = Path(__file__).resolve().parent / "results" / "gui_bench.jsonl"


def cli_run(data, steps: int) -> tuple[float, float]:
    """(seconds to the first event, steps/s) of the CLI's way: drive() with its tqdm bar."""
    from napari_genprior.cli import progress_bar
    from napari_genprior.engines import dip, drive

    params = {
        "task": "denoise",
        "method": "dip",
        "iterations": steps,
        "preview_every": 0,
        "seed": 0,
        "noise_model": "gaussian",
    }
    stamps: list[float] = []
    bar, update = progress_bar(True, "DIP denoise")
    t0 = time.perf_counter()
    gen = dip.run(data, params, device="cpu")

    def on(ev) -> None:
        stamps.append(time.perf_counter())
        update(ev)

    drive(gen, on)
    bar.close()
    return stamps[0] - t0, (len(stamps) - 1) / (stamps[-1] - stamps[0])


def gui_run(viewer, widget, layer, steps: int, preview_every: int) -> tuple[float, float]:
    """(seconds from Run to the first event, steps/s) in the docked widget of a shown viewer."""
    from qtpy.QtCore import QEventLoop

    widget.image.value = layer
    widget.task.value = "denoise"
    widget.method.value = "dip"
    widget.noise.value = "gaussian"
    widget.auto_stop.value = False
    widget.iterations.value = steps
    widget.preview_every.value = preview_every
    widget.seed.value = 0
    widget.device.value = "cpu"
    stamps: list[float] = []
    t0 = time.perf_counter()
    assert widget.run()
    worker = widget.runner.worker
    worker.yielded.connect(lambda _ev: stamps.append(time.perf_counter()))
    # Qt's own event loop, as in a user's session: it sleeps between events (no polling).
    loop = QEventLoop()
    worker.finished.connect(loop.quit)
    if widget.running:
        loop.exec()
    for lay in [lay for lay in viewer.layers if lay is not layer]:
        viewer.layers.remove(lay)
    return stamps[0] - t0, (len(stamps) - 1) / (stamps[-1] - stamps[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--configs",
        nargs="+",
        default=["10"],
        help="widget settings to run side by side, each EVERY[:INTERVAL]: the widget's 'preview every' "
        "(steps; 0: no previews) and at most one canvas redraw per INTERVAL seconds (default: the "
        "widget's own limit)",
    )
    ap.add_argument(
        "--label", default="current", help="name of this code state in the log (e.g. before/after)"
    )
    ap.add_argument("--no-write", action="store_true", help="print only: no log line, no docs section")
    args = ap.parse_args()

    import napari

    from napari_genprior._napari.dip_widget import DipWidget
    from napari_genprior.data.samples import fluorescence_sample

    data, kwargs, _ = fluorescence_sample()[1]
    viewer = napari.Viewer(show=True)
    widget = DipWidget(viewer)
    viewer.window.add_dock_widget(widget)
    layer = viewer.add_image(data, **kwargs)
    default_interval = getattr(widget.runner, "preview_interval", None)  # None: code without a limit
    configs = []
    for c in args.configs:
        every, _, interval = c.partition(":")
        configs.append((int(every), float(interval) if interval else default_interval))

    def gui(steps: int, every: int, interval: float | None) -> tuple[float, float]:
        if interval is not None:
            widget.runner.preview_interval = interval
        return gui_run(viewer, widget, layer, steps, every)

    # The first run in a fresh process pays for torch's kernel set-up: measured once, in the widget.
    cold_start = gui(5, *configs[0])[0]
    res: dict[str, list[tuple[float, float]]] = {"cli": [], **{c: [] for c in args.configs}}
    for _ in range(args.repeats):  # interleaved: the machine's drift hits every setting alike
        res["cli"].append(cli_run(data, args.steps))
        for c, (every, interval) in zip(args.configs, configs):
            res[c].append(gui(args.steps, every, interval))
    viewer.close()

    def med(runs: list[tuple[float, float]], i: int) -> float:
        return round(statistics.median(r[i] for r in runs), 3)

    rows = []
    for c, (every, interval) in zip(args.configs, configs):
        rows.append(
            {
                "label": args.label,
                "machine": machine(),
                "steps": args.steps,
                "preview_every": every,
                "preview_interval_s": interval,
                "repeats": args.repeats,
                "interleaved": True,
                "gui_cold_start_s": round(cold_start, 3),
                "cli_start_s": med(res["cli"], 0),
                "cli_steps_per_s": med(res["cli"], 1),
                "gui_start_s": med(res[c], 0),
                "gui_steps_per_s": med(res[c], 1),
                "raw": {"cli": res["cli"], "gui": res[c]},
            }
        )
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "raw"}))
    if args.no_write:
        return
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with LOG.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    report()


def report() -> None:
    """Rebuild the docs section from the log: the newest line of each label and setting on this machine."""
    rows_by_label: dict[tuple, dict] = {}
    here = machine()
    for line in LOG.read_text().splitlines():
        r = json.loads(line)
        if r["machine"] == here and r.get("interleaved"):
            rows_by_label[r["label"], r["preview_every"], r.get("preview_interval_s")] = r
    rows = [
        [
            r["label"],
            r["steps"],
            r["preview_every"],
            "none" if r.get("preview_interval_s") is None else f"{r['preview_interval_s']:g}",
            f"{r['cli_steps_per_s']:.2f}",
            f"{r['gui_steps_per_s']:.2f}",
            f"{r['gui_steps_per_s'] / r['cli_steps_per_s']:.2f}",
            f"{r['cli_start_s']:.2f}",
            f"{r['gui_start_s']:.2f}",
            f"{r['gui_cold_start_s']:.2f}",
        ]
        for r in rows_by_label.values()
    ]
    table = markdown_table(
        [
            "code",
            "steps",
            "preview every (steps)",
            "redraws at most every (s)",
            "CLI steps/s",
            "widget steps/s",
            "widget / CLI",
            "CLI start (s)",
            "widget start (s)",
            "widget start, first run (s)",
        ],
        rows,
    )
    body = (
        "## GUI overhead: DIP in the widget vs the CLI (benchmarks/gui_bench.py)\n\n"
        "The bundled fluorescence sample (256×256 uint16), fast preset, Gaussian noise model, fixed steps, "
        "seed 0; CLI and widget runs interleaved in one process, medians of the repeats. 'start' is the time "
        "from Run to the first progress event; 'first run' is the first run in a fresh process (torch's "
        "kernel set-up included), the others follow it. The widget runs docked in a shown viewer under Xvfb "
        f"(software OpenGL). Machine: {here}.\n\n{table}\n"
    )
    write_section("gui_bench", body)
    print(table)


if __name__ == "__main__":
    main()
