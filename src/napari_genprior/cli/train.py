"""The ``train`` commands: ``gan``, ``irn``, ``glean`` (checkpoint, resume, export) and ``disc``.

Each command checks its options (a one-line error before any work), builds its training config from
the parsed options (:func:`config_from_args`) and runs the training with :func:`train_then_export`.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..engines.base import InputError

__all__ = [
    "cmd_train",
    "cmd_train_disc",
    "cmd_train_gan",
    "cmd_train_glean",
    "cmd_train_irn",
    "config_from_args",
    "train_then_export",
]


def cmd_train(args: argparse.Namespace) -> int:
    """``train MODEL``: the subcommand's own function."""
    commands = {"gan": cmd_train_gan, "irn": cmd_train_irn, "glean": cmd_train_glean, "disc": cmd_train_disc}
    return commands[args.model](args)


def config_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """The training config ``cls`` (a dataclass) from the parsed options: every option named like one
    of its fields (``--style-dim`` → ``style_dim``) gives that field its value, ``overrides`` the
    fields whose options are named or typed otherwise (``--no-noise`` → ``noise``); fields without
    an option keep their defaults."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(overrides) - names
    if unknown:  # a programming error, not a user's
        raise TypeError(f"{cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    given = {k: v for k, v in vars(args).items() if k in names}
    return cls(**{**given, **overrides})


def train_then_export(
    train: Callable[..., Path],
    cfg: Any,
    device: str,
    export: Callable[..., Path],
    out: Path | None,
    **kw: Any,
) -> int:
    """Run a training command's ``train(cfg, device=…)``; with ``out``, export the checkpoint there
    with the command line in its model card. A checkpoint that cannot resume this run is a one-line
    error."""
    from ..engines.base import resolve_device

    try:  # e.g. a checkpoint whose settings cannot resume this run
        ckpt = train(cfg, device=str(resolve_device(device)))
    except ValueError as err:
        raise InputError(str(err)) from None
    if out:
        command = _command_line()
        path = export(ckpt, out, command=command, **kw)
        print(f"exported {path} and {path.with_suffix('.json')}")
    return 0


def _command_line() -> str:
    """The training command as typed, for the model card ("" when not run as ``napari-genprior train``)."""
    return "napari-genprior " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["train"] else ""


def cmd_train_gan(args: argparse.Namespace) -> int:
    from ..data.generators import DOMAINS
    from ..data.real import REAL_DATA, bio_sample_file
    from ..train.gan import GanConfig, export_gan, train_gan

    if args.data in REAL_DATA:
        try:  # say how to get the images before any work starts
            bio_sample_file("nuclei.tif")
        except FileNotFoundError as err:
            raise InputError(str(err)) from None
    elif args.data not in DOMAINS and not Path(args.data).is_dir():
        raise InputError(
            f"--data {args.data!r} is neither a domain ({', '.join(DOMAINS)}), real images "
            f"({', '.join(REAL_DATA)}) nor a folder"
        )
    if args.size < 8 or args.size & (args.size - 1):
        raise InputError("--size must be a power of two >= 8")
    if args.lr <= 0 or args.r1_gamma < 0:
        raise InputError("--lr must be > 0 and --r1-gamma >= 0 (0 picks 0.0002 · size² / batch)")
    cfg = config_from_args(GanConfig, args, out=str(args.out), noise=not args.no_noise)
    return train_then_export(train_gan, cfg, args.device, export_gan, args.export, grid_png=args.grid)


def cmd_train_irn(args: argparse.Namespace) -> int:
    from ..train.irn import IrnConfig, export_irn, train_irn

    if args.data != "builtin" and not Path(args.data).is_dir():
        raise InputError(f"--data {args.data!r} is neither 'builtin' nor a folder of images")
    if args.patch % (2 * args.scale) or args.patch < 4 * args.scale:
        raise InputError(f"--patch must be a multiple of {2 * args.scale} and at least {4 * args.scale}")
    if min(args.steps, args.batch, args.blocks, args.growth, args.val_every) < 1 or not args.lr > 0:
        raise InputError("--steps, --batch, --blocks, --growth and --val-every must be at least 1; --lr > 0")
    if not args.train_tau >= 0:
        raise InputError("--train-tau must be >= 0")
    cfg = config_from_args(IrnConfig, args, out=str(args.out))
    return train_then_export(train_irn, cfg, args.device, export_irn, args.export)


def cmd_train_glean(args: argparse.Namespace) -> int:
    from ..train.glean import GleanConfig, export_glean, train_glean

    if min(args.steps, args.batch, args.rrdb_blocks + 1, args.sample_every) < 1 or not args.lr > 0:
        raise InputError(
            "--steps, --batch and --sample-every must be at least 1, --rrdb-blocks >= 0, --lr > 0"
        )
    if args.width < 2:
        raise InputError("--width must be at least 2")
    if args.bank_samples < 0 or args.w_latent < 0 or args.max_minutes < 0:
        raise InputError("--bank-samples, --w-latent and --max-minutes must be >= 0")
    if not args.latent_lr_mult > 0:
        raise InputError("--latent-lr-mult must be > 0")
    if args.unfreeze_bank and args.no_bank:
        raise InputError("--unfreeze-bank and --no-bank exclude each other: the ablation has no bank")
    cfg = config_from_args(GleanConfig, args, out=str(args.out), bank_frozen=not args.unfreeze_bank)
    return train_then_export(train_glean, cfg, args.device, export_glean, args.export)


def cmd_train_disc(args: argparse.Namespace) -> int:
    from ..train.disc import export_discriminator, train_discriminator

    if args.steps < 1 or args.batch < 2:
        raise InputError("--steps must be >= 1 and --batch >= 2")
    try:
        d, info = train_discriminator(
            args.prior, args.out, steps=args.steps, batch=args.batch, data=args.data, seed=args.seed
        )
    except (FileNotFoundError, ValueError) as err:
        raise InputError(str(err)) from None
    if args.export:
        path = export_discriminator(args.prior, d, info, command=_command_line())
        print(f"added the discriminator to {path} and its card")
    return 0
