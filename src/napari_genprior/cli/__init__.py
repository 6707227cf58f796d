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

The package: :mod:`.parser` (the options of every command), :mod:`.restore` (the engine
commands and the batch command table), :mod:`.train` (the ``train`` commands) and :mod:`.misc`
(``models``, ``synth``, ``sample``, ``demo``). Nothing outside this package imports it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ..engines.base import Cancelled, InputError
from .misc import cmd_demo, cmd_models, cmd_sample, cmd_synth
from .parser import PROG, build_parser, fail
from .restore import ENGINE_COMMANDS, cmd_dip, cmd_glean, cmd_irn, cmd_join, engine_command, progress_bar
from .train import cmd_train

__all__ = [
    "ENGINE_COMMANDS",
    "PROG",
    "build_parser",
    "cmd_demo",
    "cmd_dip",
    "cmd_glean",
    "cmd_irn",
    "cmd_join",
    "cmd_models",
    "cmd_sample",
    "cmd_synth",
    "cmd_train",
    "main",
    "progress_bar",
]

#: the function of each top-level command
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    **dict.fromkeys(ENGINE_COMMANDS, engine_command),
    "join": cmd_join,
    "demo": cmd_demo,
    "models": cmd_models,
    "synth": cmd_synth,
    "sample": cmd_sample,
    "train": cmd_train,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``napari-genprior`` console script."""
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:  # name the subcommand's own help, where the options that do exist are listed
            prog = getattr(args, "_prog", PROG)
            return fail(f"unrecognized arguments: {' '.join(extra)} (see '{prog} --help')")
        command = COMMANDS.get(args.command)
        if command is not None:
            return command(args)
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else fail(exit_.code)
    except InputError as err:
        return fail(str(err))
    except Cancelled:
        return fail("cancelled")
    except OSError as err:  # e.g. a disk that filled up while writing: one line, no traceback
        return fail(f"{getattr(err, 'filename', None) or ''} {err.strerror or err}".strip(), status=1)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    return 2
