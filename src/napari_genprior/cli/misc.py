"""The commands around the engines: ``models``, ``synth``, ``sample`` and ``demo``."""

from __future__ import annotations

import argparse
import json

import numpy as np

from ..engines.base import InputError

__all__ = ["cmd_demo", "cmd_models", "cmd_sample", "cmd_synth"]


def cmd_models(args: argparse.Namespace) -> int:
    from ..models import list_models

    models = list_models()
    if args.name is not None:
        models = [m for m in models if m["name"] == args.name]
        if not models:
            names = ", ".join(m["name"] for m in list_models())
            raise InputError(f"no bundled model {args.name!r}: the bundled ones are {names}")
    if not models:
        print("no bundled models")
        return 0
    for m in models:
        print(f"{m['name']}: {m.get('use') or m.get('summary', '')}")
        if args.brief:
            continue
        shown = {**m, "metrics": m.get("metrics", {}).get("mean", m.get("metrics"))}
        keys = ("summary", "task", "data", "held_out", "command", "steps", "wall_time", "iterations_per_s")
        for key in (*keys, "recommended_tau", "metrics", "evaluation", "notes"):
            if shown.get(key) is not None:
                value = (
                    shown[key] if isinstance(shown[key], str) else json.dumps(shown[key], ensure_ascii=False)
                )
                print(f"  {key}: {value}")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from ..data.generators import EVAL_SEED_START, generate
    from ..io import write_image

    if args.n < 1 or args.size < 16:
        raise InputError("-n must be >= 1 and --size >= 16")

    def to_int(x: np.ndarray, bits: int) -> np.ndarray:
        top = 2**bits - 1
        return np.clip(np.rint(x * top), 0, top).astype(np.uint8 if bits == 8 else np.uint16)

    out = args.output
    for i, sample in enumerate(generate(args.domain, args.n, args.size, args.seed)):
        stem = f"{args.domain}_{args.seed + i:07d}"
        if args.domain == "scene":
            write_image(out / f"{stem}.png", to_int(sample["image"], 8))
            write_image(out / f"{stem}_albedo.png", to_int(sample["albedo"], 8))
            write_image(out / f"{stem}_shading.png", to_int(sample["shading"], 16))
        elif args.domain == "albedo":
            write_image(out / f"{stem}.png", to_int(sample, 8))
        elif args.domain == "nuclei":
            write_image(out / f"{stem}.tif", to_int(sample, 16))
        else:
            write_image(out / f"{stem}.png", to_int(sample, 16))
    kind = "evaluation" if args.seed >= EVAL_SEED_START else "training"
    print(f"wrote {args.n} {args.domain} images ({args.size}×{args.size}, {kind} seeds) to {out}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from ..engines.base import resolve_device
    from ..engines.prior import load_prior, sample_prior
    from ..io import check_writable, write_image

    if args.n < 1 or not 0 <= args.truncation <= 1:
        raise InputError("-n must be >= 1 and --truncation within 0–1")
    suffix = args.output.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg", ".tif", ".tiff"):
        raise InputError("-o must end in .png/.jpg (a grid) or .tif/.tiff (a stack)")
    stack = suffix in (".tif", ".tiff")
    check_writable(args.output, np.dtype(np.float32 if stack else np.uint8))
    try:
        gen = load_prior(args.model, device=resolve_device(args.device))
    except (FileNotFoundError, ValueError) as err:
        raise InputError(str(err)) from None
    x = sample_prior(gen, args.n, seed=args.seed, truncation=args.truncation)
    if stack:
        write_image(args.output, x)
    else:
        import imageio.v3 as iio

        from ..engines.prior import sample_grid

        args.output.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(args.output, sample_grid(x, int(np.ceil(np.sqrt(args.n)))))
    print(f"wrote {args.n} samples of {args.model} to {args.output}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo

    run_demo(args.output, quick=args.quick, device=args.device, quiet=args.quiet)
    return 0
