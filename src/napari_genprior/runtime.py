"""Where and how a run computes: devices, precision and seeding, the same for every engine.

- devices: :data:`DEVICES`, :func:`available_devices`, :func:`resolve_device`;
- precision: :data:`PRECISIONS`, :func:`resolve_precision` (the one ``auto`` policy, with the
  criterion each engine measured), :func:`autocast`, :func:`bfloat16_pays`, :func:`native_cpu_bf16`;
- seeding: :func:`seeded`.

Pure torch: nothing here imports napari, Qt or another part of the project but its errors.
``engines.base`` re-exports these names, so engine code imports them from there as before.
"""

from __future__ import annotations

import contextlib
import functools

import torch

from .errors import InputError

__all__ = [
    "DEVICES",
    "PRECISIONS",
    "PRECISION_NEEDS",
    "autocast",
    "available_devices",
    "bfloat16_pays",
    "native_cpu_bf16",
    "resolve_device",
    "resolve_precision",
    "seeded",
]

# --- devices -------------------------------------------------------------------------------------

#: the kinds of device a run can name (``cuda`` also as ``cuda:N``); :func:`available_devices`
#: lists those this machine has
DEVICES = ("auto", "cpu", "cuda", "mps")


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


# --- precision -----------------------------------------------------------------------------------

#: precisions of the optimisation loops: ``auto`` (see :func:`resolve_precision`), float32, bfloat16
PRECISIONS = ("auto", "float32", "bfloat16")

#: the criteria ``auto`` precision can ask of a device before it picks bfloat16
#: (:func:`resolve_precision`'s ``needs``): ``amx`` (DIP) and ``bf16`` (JoIN)
PRECISION_NEEDS = ("amx", "bf16")


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


def resolve_precision(precision: str, device: torch.device, *, needs: str) -> str:
    """``float32`` or ``bfloat16``: what ``precision`` (one of :data:`PRECISIONS`) means on ``device``.

    ``float32`` and ``bfloat16`` mean themselves. ``auto`` is the one policy: bfloat16 where it was
    measured to be faster for the caller's networks, float32 elsewhere (emulated bfloat16 is
    slower). Where it is faster depends on the work, so the caller names its criterion, ``needs``:

    - ``"amx"`` (DIP, :func:`bfloat16_pays`): bfloat16 on a CUDA GPU that supports it and on a CPU
      with AMX (torch's ``torch.cpu._is_amx_tile_supported()``); float32 on every other CPU and on
      MPS. DIP's small convolutions ran 16 % *slower* in bfloat16 on a CPU with AVX-512 BF16 but
      no AMX (a 32-channel step; no faster at 128 channels: docs/dip.md).
    - ``"bf16"`` (JoIN, :func:`native_cpu_bf16`): bfloat16 on any CPU with native bfloat16
      instructions, AVX-512 BF16 or AMX (Linux's /proc/cpuinfo flags); float32 on GPUs and MPS,
      where it was not measured. JoIN's StyleGAN2 generators and discriminators ran 1.3–1.5×
      faster in bfloat16 with AVX-512 BF16 alone, solving as well (docs/join.md).

    An unknown ``precision`` or ``needs`` raises :class:`InputError`.
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if needs not in PRECISION_NEEDS:
        raise InputError(f"precision criterion must be one of {', '.join(PRECISION_NEEDS)}, not {needs!r}")
    if precision != "auto":
        return precision
    if needs == "amx":
        return "bfloat16" if bfloat16_pays(device) else "float32"
    return "bfloat16" if device.type == "cpu" and native_cpu_bf16() else "float32"


def autocast(precision: str, device: torch.device, *, needs: str) -> contextlib.AbstractContextManager:
    """A context in which convolutions and matrix products run at ``precision`` as
    :func:`resolve_precision` resolves it with criterion ``needs``; reductions stay float32
    (torch's autocast). float32: no autocast at all."""
    if resolve_precision(precision, device, needs=needs) == "bfloat16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# --- seeding -------------------------------------------------------------------------------------


@contextlib.contextmanager
def seeded(seed: int):
    """Seed torch's global generator inside the block and restore it afterwards."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
