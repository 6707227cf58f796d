"""The engine protocol shared by every engine, and its small helpers.

An engine run is a generator: it yields :class:`Progress` events and returns a :class:`Result`::

    gen = engine.run(image, params, device="auto")
    result = drive(gen, on_progress=print)

Pure torch + numpy: nothing here (or in any engine) imports napari or Qt.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..errors import Cancelled, InputError

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
    "available_devices",
    "resolve_device",
    "bfloat16_pays",
]

#: the kinds of device a run can name (``cuda`` also as ``cuda:N``); :func:`available_devices`
#: lists those this machine has
DEVICES = ("auto", "cpu", "cuda", "mps")


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


#: precisions of the optimisation loops: auto (bfloat16 where the CPU computes it natively)
PRECISIONS = ("auto", "float32", "bfloat16")


@functools.cache
def native_cpu_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions (AVX-512 BF16 or AMX); read from Linux's
    /proc/cpuinfo (once: the solvers ask every step), False where that cannot be read. Elsewhere
    bfloat16 is emulated and slower."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """A context in which convolutions and matrix products run at ``precision`` (``auto``: bfloat16
    on a CPU with native bfloat16, float32 elsewhere); reductions stay float32 (torch's autocast)."""
    if resolve_precision(precision, device) == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def resolve_precision(precision: str, device: torch.device) -> str:
    """``float32`` or ``bfloat16``: what ``precision`` (one of :data:`PRECISIONS`) means on ``device``."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "auto":
        return "bfloat16" if device.type == "cpu" and native_cpu_bf16() else "float32"
    return precision


def _has_mps() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def available_devices() -> list[str]:
    """The device names this machine can run on: ``auto``, ``cpu``, ``cuda:N`` for every GPU
    present and ``mps`` where Apple's GPU backend is available (the widgets' device choices)."""
    names = ["auto", "cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if _has_mps():
        names.append("mps")
    return names


def resolve_device(name: str | torch.device | None = "auto") -> torch.device:
    """Map ``auto`` / ``cpu`` / ``cuda[:N]`` / ``mps`` to an available ``torch.device``.

    ``auto`` takes CUDA, then MPS, then the CPU. A device that is not available (``cuda:1`` on a
    machine with one GPU) raises :class:`InputError` naming the devices there are.
    """
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").strip().lower()
    has_mps = _has_mps()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    here = ", ".join(available_devices())
    kind, sep, index = name.partition(":")
    if kind not in DEVICES[1:] or (sep and kind != "cuda"):
        raise InputError(f"unknown device {name!r}: choose one of {here} (cuda:N for GPU number N)")
    if sep and not index.isdigit():
        raise InputError(f"unknown device {name!r}: write cuda:N with N a GPU number, e.g. cuda:0")
    if kind == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} is not available on this machine: choose one of {here}")
    if sep and int(index) >= torch.cuda.device_count():
        # torch accepts any index here and fails only at the first tensor moved there
        raise InputError(f"device {name!r} is not present on this machine: choose one of {here}")
    if kind == "mps" and not has_mps:
        raise InputError(f"device 'mps' is not available on this machine: choose one of {here}")
    try:
        return torch.device(name)
    except RuntimeError as err:
        raise InputError(f"unknown device {name!r}: {err}") from None


def bfloat16_pays(device: torch.device) -> bool:
    """Whether bfloat16 autocast is expected to make convolutions faster on ``device``.

    CUDA: when the GPU supports bfloat16. CPU: only with AMX (Intel Sapphire Rapids and later,
    where the virtual machine exposes it). On a CPU with AVX-512 BF16 but no AMX, a DIP step
    at 32 channels was 16 % slower with bfloat16 than in float32 and no faster at 128 channels
    (docs/dip.md). MPS and others: no.
    """
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        amx = getattr(torch.cpu, "_is_amx_tile_supported", None)
        return bool(amx()) if amx is not None else False
    return False


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


@contextlib.contextmanager
def seeded(seed: int):
    """Seed torch's global generator inside the block and restore it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
