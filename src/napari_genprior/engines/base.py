"""The engine protocol shared by every engine, and its small helpers.

An engine run is a generator: it yields :class:`Progress` events and returns a :class:`Result`::

    gen = engine.run(image, params, device="auto")
    result = drive(gen, on_progress=print)

Devices, precision and seeding live in :mod:`napari_genprior.runtime`; their names are
re-exported here, so engines import them from here as before.

Pure torch + numpy: nothing here (or in any engine) imports napari or Qt.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import Cancelled, InputError
from ..runtime import (
    DEVICES,
    PRECISIONS,
    autocast,
    available_devices,
    bfloat16_pays,
    native_cpu_bf16,
    resolve_device,
    resolve_precision,
    seeded,
)

__all__ = [
    "check_cancel",
    "Cancelled",
    "InputError",
    "OutputLayer",
    "Progress",
    "Result",
    "drive",
    "output_geometry",
    "progress_text",
    # re-exported from ..runtime
    "DEVICES",
    "PRECISIONS",
    "autocast",
    "available_devices",
    "bfloat16_pays",
    "native_cpu_bf16",
    "resolve_device",
    "resolve_precision",
    "seeded",
]


def params_from(cls: type, params: Any, engine: str) -> Any:
    """``params`` (an instance of the dataclass ``cls``, a dict of its fields, or ``None``) as a
    ``cls``; unknown keys raise :class:`InputError` naming them."""
    if params is None:
        return cls()
    if isinstance(params, cls):
        return params
    unknown = set(params) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise InputError(f"unknown {engine} parameter(s): {', '.join(sorted(unknown))}")
    return cls(**params)


def check_cancel(cancel: Callable[[], bool] | None) -> None:
    """Raise :class:`Cancelled` if ``cancel`` (an engine's cancel callback) says so."""
    if cancel is not None and cancel():
        raise Cancelled("cancelled")


@dataclass
class Progress:
    """One progress event. ``preview`` (optional) is a float32 image of the current estimate.

    ``step``/``total`` count over the whole run. Runs over several planes or tiles also name the
    ``part`` being worked on (``"plane 2/5"``) with the step within it (``part_step``/``part_total``).
    ``at_most``: ``total`` is an upper bound (automatic stopping may end the run sooner).
    ``loss_label`` says what ``loss`` is (NaN: the engine has none).
    """

    step: int
    total: int
    loss: float
    preview: np.ndarray | None = None
    message: str = ""
    part: str = ""
    part_step: int = 0
    part_total: int = 0
    at_most: bool = False
    loss_label: str = "loss"


def progress_text(ev: Progress) -> str:
    """One line for a progress event, the same in the widget and the CLI.

    E.g. ``plane 2/5, step 9/15 · loss 0.0123`` or ``step 16 of at most 1800 · residual/noise 1.05``.
    """
    step, total = (ev.part_step, ev.part_total) if ev.part_total else (ev.step, ev.total)
    text = f"step {step} of at most {total}" if ev.at_most else f"step {step}/{total}"
    if ev.part:
        text = f"{ev.part}, {text}"
    if ev.loss == ev.loss:  # NaN: no loss to show
        text += f" · {ev.loss_label} {ev.loss:.4g}"
    return f"{text} · {ev.message}" if ev.message else text


@dataclass
class OutputLayer:
    """One result layer.

    ``suffix`` is appended to the input's name (``cells`` + ``dip_denoise``). ``zoom`` is the
    number of output pixels per input pixel along Y and X (4 for ×4 super-resolution), used to
    place the layer exactly over the input. ``layer_type`` is ``"image"`` or ``"labels"``.
    """

    data: np.ndarray
    suffix: str
    layer_type: str = "image"
    zoom: float = 1.0
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """What an engine returns: named output layers and the parameters that made them.

    ``layers[0]`` is the primary result (the restored image); the others are auxiliary (a mask,
    an uncertainty map, the LR of a round trip), which the widgets place below it.
    """

    layers: list[OutputLayer]
    metadata: dict[str, Any]

    def layer(self, suffix: str) -> OutputLayer:
        """The output layer with this suffix."""
        for lay in self.layers:
            if lay.suffix == suffix:
                return lay
        raise KeyError(suffix)


EngineRun = Generator[Progress, None, Result]


def drive(
    gen: EngineRun,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Result:
    """Run an engine generator to completion and return its result.

    ``cancel`` is polled at each progress event; when it returns True the generator is
    closed and :class:`Cancelled` is raised.
    """
    try:
        while True:
            event = next(gen)
            if on_progress is not None:
                on_progress(event)
            if cancel is not None and cancel():
                gen.close()
                raise Cancelled("cancelled")
    except StopIteration as stop:
        return stop.value


def output_geometry(
    scale: tuple[float, ...] | np.ndarray, translate: tuple[float, ...] | np.ndarray, zoom: float
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Scale and translate of an output layer that has ``zoom`` × the pixels of the input along
    the last two (spatial) axes, so that it sits exactly over the input.

    Pixel centres line up: an input pixel spans ``[i - ½, i + ½]`` in its own pixel units, and
    output pixel ``j`` has its centre at ``(j + ½) / zoom - ½`` there.
    """
    s = np.asarray(scale, dtype=float).copy()
    t = np.asarray(translate, dtype=float).copy()
    t[-2:] = t[-2:] + s[-2:] * (1.0 / zoom - 1.0) / 2.0
    s[-2:] = s[-2:] / zoom
    return tuple(float(v) for v in s), tuple(float(v) for v in t)
