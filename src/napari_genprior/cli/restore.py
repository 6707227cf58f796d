"""The engine commands: ``dip``, ``irn``, ``glean`` and ``join``, and the batch command table.

Each command reads its input, checks every output before the run starts, drives the engine with a
progress bar and writes the results; ``dip``, ``irn`` and ``glean`` also run as batches
(:data:`ENGINE_COMMANDS`, run image by image by :mod:`napari_genprior.batch`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ..engines.base import EngineRun, InputError, Result
from ..metrics import image_metrics
from .parser import warn

__all__ = ["ENGINE_COMMANDS", "cmd_dip", "cmd_glean", "cmd_irn", "cmd_join", "engine_command", "progress_bar"]


def progress_bar(quiet: bool, desc: str):
    """A tqdm bar over the whole run and its update function for progress events.

    The description names the part being worked on (``plane 2/5``) and says when the total is an
    upper bound (automatic stopping); the postfix has the step within the part and the loss.
    """
    from tqdm import tqdm

    from ..engines.base import progress_text

    bar = tqdm(total=0, desc=desc, disable=quiet, file=sys.stderr, dynamic_ncols=True)
    shown = [desc]

    def update(ev: Any) -> None:
        if bar.total != ev.total:
            bar.total = ev.total
            bar.refresh()
        head = " · ".join(t for t in (desc, ev.part, "auto-stop: at most" if ev.at_most else "") if t)
        if shown[0] != head:
            shown[0] = head
            bar.set_description(head, refresh=False)
        bar.update(ev.step - bar.n)
        bar.set_postfix_str(progress_text(ev), refresh=False)

    return bar, update


def drive_with_progress(gen: EngineRun, quiet: bool, desc: str) -> Result:
    """Run the engine generator ``gen`` to its result under a :func:`progress_bar` named ``desc``
    (none with ``quiet``); the bar is closed however the run ends."""
    from ..engines import base

    bar, update = progress_bar(quiet, desc)
    try:
        return base.drive(gen, update)
    finally:
        bar.close()


def check_json_path(path: Path | None) -> None:
    """``--metadata`` must be writable too: checked before the run, like the images."""
    if path is not None:
        from ..io import check_parent

        if path.is_dir():
            raise InputError(f"{path} is a folder: give a file name such as {path / 'run.json'}")
        check_parent(path)


def cmd_dip(args: argparse.Namespace) -> int:
    from ..engines import dip
    from ..imaging import PlaneLayout, guess_channel_axis
    from ..io import (
        check_writable,
        output_pixel_size,
        read_image,
        read_metadata,
        read_pixel_size,
        write_image,
        write_text,
    )

    image = read_image(args.input)
    pixel = read_pixel_size(args.input)  # kept in the outputs (OME-TIFF / ImageJ TIFF inputs)
    check_writable(args.output, image.dtype)  # fail now, not after the run
    mask = read_image(args.mask) if args.task == "inpaint" else None
    if mask is not None and mask.ndim == image.ndim and mask.ndim >= 3 and mask.shape[-1] in (3, 4):
        mask = mask.any(axis=-1)  # an RGB(A) mask image: any non-zero channel = missing
    if args.uncertainty is not None:
        check_writable(args.uncertainty, np.float32)
    check_json_path(args.metadata)
    params: dict[str, Any] = {
        "uncertainty": args.uncertainty is not None,
        "task": args.task,
        "preset": args.preset,
        "seed": args.seed,
        "iterations": args.iterations,
        "channel_axis": args.channel_axis,
        "preview_every": 0,
        "tile_size": args.tile_size,
    }
    if args.task == "sr":
        params["scale"] = args.scale
    if args.task == "denoise":
        model = args.noise_model
        if model == "auto":
            model, why = dip.guess_noise_model(image, read_metadata(args.input))
            if not args.quiet:
                print(f"noise model: {model} ({why}; --noise-model to choose)")
        params["noise_model"] = model
        params["method"] = args.method
    gen = dip.run(image, params, mask=mask, device=args.device)  # checks the input
    ch = guess_channel_axis(image.shape) if args.channel_axis == "auto" else args.channel_axis
    reference = None
    if args.reference:
        reference = read_image(args.reference)
        expected = PlaneLayout(image.shape, ch).scaled_shape(args.scale if args.task == "sr" else 1)
        if reference.shape != expected:
            raise InputError(
                f"--reference has shape {reference.shape}; the result will have shape {expected}"
            )
    label = f"DIP {args.task}" + (f" ×{args.scale}" if args.task == "sr" else "")
    filtering = dip.DIPParams.from_any(params).resolved_method == "filter"
    if filtering:
        label = "denoise (block-matching filter)"
    n_tiles = 1 if filtering else dip.tiles_for(image, params)
    if n_tiles > 1:
        print(f"{label}: the image is large; fitting each plane in {n_tiles} overlapping tiles")
    result = drive_with_progress(gen, args.quiet, label)
    out = result.layers[0].data
    out_pixel = output_pixel_size(pixel, args.scale if args.task == "sr" else 1)
    write_image(args.output, out, pixel_size=out_pixel)
    meta = result.metadata
    print(f"wrote {args.output} {out.shape} {out.dtype} in {meta['wall_time_s']:.1f} s")
    if "chosen_step" in meta:
        print(f"auto-stop: chose step {meta['chosen_step']}, stopped at {meta['stopped_at']}")
    for warning in meta.get("warnings", ()):
        warn(warning)
    if args.uncertainty is not None:
        write_image(args.uncertainty, result.layer("dip_uncertainty").data, pixel_size=out_pixel)
        print(f"wrote {args.uncertainty} (per-pixel spread of the last iterates)")
    if reference is not None:
        m = image_metrics(out, reference, meta["channel_axis"])
        meta["metrics"] = m
        print(f"PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}")
    if args.metadata:
        write_text(args.metadata, json.dumps(meta, indent=2, default=str))
    return 0


def cmd_irn(args: argparse.Namespace) -> int:
    from ..engines import irn
    from ..io import (
        check_writable,
        output_pixel_size,
        read_image,
        read_metadata,
        read_pixel_size,
        write_image,
        write_text,
    )

    if args.mode == "down" and (args.samples is not None or args.tau is not None):
        raise InputError(
            "--samples and --tau apply to `irn up` and `irn roundtrip` (draws of z when restoring); "
            "`irn down` draws nothing: leave them out"
        )
    image = read_image(args.input)
    pixel = read_pixel_size(args.input)
    check_writable(args.output, image.dtype)
    check_json_path(args.metadata)
    unc_path = getattr(args, "uncertainty", None)
    if unc_path is not None:
        check_writable(unc_path, np.float32)
        if args.samples < 2:
            raise InputError("--uncertainty needs --samples 2 or more (the std over draws of z)")
    if getattr(args, "lr", None) is not None:
        check_writable(args.lr, image.dtype)
    params: dict[str, Any] = {
        "mode": args.mode,
        "scale": args.scale,
        "weights": str(args.weights) if args.weights else None,
        "samples": args.samples or 1,
        "tau": args.tau,
        "seed": args.seed,
        "channel_axis": args.channel_axis,
        "tile_size": args.tile_size,
    }
    no_record = ""
    if args.mode == "up":
        from ..imaging import PlaneLayout, guess_channel_axis

        ch = guess_channel_axis(image.shape) if args.channel_axis == "auto" else args.channel_axis
        spatial = PlaneLayout(image.shape, ch).spatial_shape
        stored = irn.up_record(read_metadata(args.input).get("irn"), spatial) or {}
        if stored and int(stored["scale"]) != args.scale:
            raise InputError(f"{args.input} was made by `irn down --scale {stored['scale']}`: use that scale")
        if not stored and not (args.value_range and args.hr_shape):
            no_record = irn.NO_RECORD.format(
                name=str(args.input),
                hint="run it on a file written by `irn down`, or give --value-range and --hr-shape.",
            )
        params["value_range"] = args.value_range or stored.get("value_range")
        params["hr_shape"] = args.hr_shape or stored.get("hr_shape")
    gen = irn.run(image, params, device=args.device)  # checks the input
    if no_record:  # the same warning as the widget's, once the run is known to start
        warn(no_record)
    result = drive_with_progress(gen, args.quiet, f"IRN {args.mode} ×{args.scale}")
    meta = result.metadata
    main_suffix = "irn_lr" if args.mode == "down" else "irn_hr"
    out = result.layer(main_suffix).data
    zoom = {"down": 1 / args.scale, "up": args.scale}.get(args.mode, 1)
    write_image(
        args.output,
        out,
        {"irn": meta["irn"]} if args.mode == "down" else None,
        pixel_size=output_pixel_size(pixel, zoom),
    )
    print(f"wrote {args.output} {out.shape} {out.dtype} in {meta['wall_time_s']:.2f} s")
    if args.mode == "roundtrip":
        if args.lr is not None:
            lr_pixel = output_pixel_size(pixel, 1 / args.scale)
            write_image(args.lr, result.layer("irn_lr").data, {"irn": meta["irn"]}, pixel_size=lr_pixel)
            print(f"wrote {args.lr} (LR)")
        m = image_metrics(out, image, meta["channel_axis"])
        meta["metrics"] = m
        print(f"round trip: PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}")
    if unc_path is not None:
        write_image(unc_path, result.layer("irn_uncertainty").data, pixel_size=output_pixel_size(pixel, zoom))
        print(f"wrote {unc_path} (per-pixel std over {args.samples} draws of z)")
    if args.metadata:
        write_text(args.metadata, json.dumps(meta, indent=2, default=str))
    return 0


def cmd_glean(args: argparse.Namespace) -> int:
    from ..engines import glean
    from ..engines.base import resolve_device
    from ..io import (
        check_parent,
        check_writable,
        output_pixel_size,
        read_image,
        read_pixel_size,
        write_image,
        write_text,
    )

    check_parent(args.output)  # where the output goes, before the input is read or the model loaded
    resolve_device(args.device)
    image = read_image(args.input)
    pixel = read_pixel_size(args.input)
    check_writable(args.output, image.dtype)
    check_json_path(args.metadata)
    reference = read_image(args.reference) if args.reference is not None else None
    params = {
        "model": args.model,
        "scale": args.scale,
        "tile_overlap": args.tile_overlap,
        "channel_axis": args.channel_axis,
        "previews": 0,
    }
    gen = glean.run(image, params, device=args.device)  # checks the input and the model
    result = drive_with_progress(gen, args.quiet, f"GLEAN ×{args.scale}")
    meta = result.metadata
    out = result.layers[0].data
    write_image(args.output, out, pixel_size=output_pixel_size(pixel, args.scale))
    print(f"wrote {args.output} {out.shape} {out.dtype} in {meta['wall_time_s']:.2f} s")
    if reference is not None:
        if reference.shape != out.shape:
            raise InputError(
                f"--reference has shape {reference.shape}, the result {out.shape}: give the HR image"
            )
        m = image_metrics(out, reference, meta["channel_axis"])
        meta["metrics"] = m
        print(f"against the reference: PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}")
    if args.metadata:
        write_text(args.metadata, json.dumps(meta, indent=2, default=str))
    return 0


def cmd_join(args: argparse.Namespace) -> int:
    from ..engines import join
    from ..engines.base import resolve_device
    from ..io import check_parent, read_image, read_pixel_size, write_image, write_text

    priors: dict[str, str] = {}
    for item in args.prior:
        comp, sep, model = item.partition("=")
        if not sep or not comp or not model:
            raise InputError(f"--prior {item!r}: write COMPONENT=MODEL_OR_PATH, e.g. specimen=my_gan.pt")
        priors[comp.strip()] = model.strip()
    out = args.output
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} exists and is not a folder: -o names the output folder")
    check_parent(out / "join.json")  # the folder can be made and written: fail now, not after the run
    resolve_device(args.device)
    image = read_image(args.input)
    pixel = read_pixel_size(args.input)
    params = {
        "forward": args.forward,
        "steps": args.steps,
        "finetune_steps": args.finetune_steps,
        "restarts": args.restarts,
        "priors": priors,
        "per_plane": args.per_plane,
        "stack_weight": args.stack_weight,
        "stack_method": args.stack_method,
        "in_domain_metric": args.in_domain_metric,
        "precision": args.precision,
        "darkfield": args.darkfield,
        "gamma": args.gamma,
        "seed": args.seed,
        "preview_every": 0,
    }
    gen = join.run(image, params, device=args.device)  # checks the input and the priors
    out.mkdir(parents=True, exist_ok=True)
    result = drive_with_progress(gen, args.quiet, f"JoIN {args.forward}")
    written = []
    for lay in result.layers:
        data = lay.data.astype(np.uint8 if lay.layer_type == "labels" else np.float32)
        written.append(write_image(out / f"{lay.suffix}.tif", data, pixel_size=pixel).name)
    meta = result.metadata
    write_text(out / "join.json", json.dumps(meta, indent=2, default=str))
    print(f"wrote {', '.join(written)} and join.json to {out} in {meta['wall_time_s']:.1f} s")
    for warning in meta.get("warnings", ()):
        warn(warning)
    return 0


#: the engine commands that take many inputs (batch.py runs them image by image)
ENGINE_COMMANDS = {"dip": cmd_dip, "irn": cmd_irn, "glean": cmd_glean}


def engine_command(args: argparse.Namespace) -> int:
    """One image (the command as it always was), or a batch of them (batch.py)."""
    from .. import batch

    if args.workers is not None and args.workers < 1:
        raise InputError("--workers must be at least 1")
    if args.workers is not None and args.scheduler:
        raise InputError("give --workers (a local cluster) or --scheduler (an existing one), not both")
    if args.torch_threads is not None and args.torch_threads < 1:
        raise InputError("--torch-threads must be at least 1")
    run_one = ENGINE_COMMANDS[args.command]
    if not batch.is_batch(args):
        args.input = Path(args.input[0])
        if args.torch_threads:
            import torch

            torch.set_num_threads(args.torch_threads)
        return run_one(args)
    _check_batch_args(args)
    jobs, out_dir = batch.plan_jobs(args, args.command)
    sub = {"dip": getattr(args, "task", ""), "irn": getattr(args, "mode", "")}.get(args.command, "")
    params = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if not k.startswith("_")}
    return batch.run_batch(
        jobs,
        out_dir,
        ENGINE_COMMANDS,
        workers=args.workers,
        scheduler=args.scheduler,
        overwrite=args.overwrite,
        quiet=args.quiet,
        label=f"{args.command} {sub}".strip(),
        parameters=params,
    )


def _check_batch_args(args: argparse.Namespace) -> None:
    """What is wrong for every image is refused before the batch starts (exit 2)."""
    from ..engines.base import resolve_device

    resolve_device(args.device)
    if args.command == "dip":
        from ..engines.dip import DIPParams

        p = {"task": args.task, "iterations": args.iterations, "preset": args.preset, "seed": args.seed}
        p["tile_size"] = args.tile_size
        if args.task == "sr":
            p["scale"] = args.scale
        if args.task == "denoise":
            p["method"] = args.method
        DIPParams(**p).validate()
    elif args.command == "glean":
        from ..engines import glean

        glean.prepare({"model": args.model, "scale": args.scale, "tile_overlap": args.tile_overlap})
    else:
        from ..engines import irn

        if args.mode == "down" and (args.samples is not None or args.tau is not None):
            raise InputError(
                "--samples and --tau apply to `irn up` and `irn roundtrip`; `irn down` draws nothing"
            )
        p = {
            "mode": args.mode,
            "scale": args.scale,
            "samples": args.samples or 1,
            "tile_size": args.tile_size,
        }
        p["weights"] = str(args.weights) if args.weights else None
        p["tau"] = args.tau
        irn.prepare(p)
