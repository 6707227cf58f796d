"""Bundled model weights and their model cards.

Each model ``NAME`` is a weights file ``NAME.pt`` (a dict with ``model``, the state dict, and
``config``; load with ``torch.load(weights_only=True)``) and a card ``NAME.json`` (data, command,
steps, wall time, held-out metrics). Models are trained by the project's own training commands.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

__all__ = ["MODEL_DIR", "card", "gan_use", "irn_use", "list_models", "portable_command", "weights_path"]

MODEL_DIR = Path(__file__).resolve().parent


def list_models() -> list[dict[str, Any]]:
    """The cards of the bundled models that have weights, sorted by name."""
    cards = []
    for f in sorted(MODEL_DIR.glob("*.json")):
        if (MODEL_DIR / f"{f.stem}.pt").exists():
            cards.append({"name": f.stem, **json.loads(f.read_text())})
    return cards


def card(name: str) -> dict[str, Any]:
    """The model card of a bundled model."""
    f = MODEL_DIR / f"{name}.json"
    if not f.exists():
        raise KeyError(name)
    return {"name": name, **json.loads(f.read_text())}


def weights_path(name: str) -> Path | None:
    """The weights file of a bundled model, or ``None`` when it is not bundled."""
    f = MODEL_DIR / f"{name}.pt"
    return f if f.exists() else None


def portable_command(command: str) -> str:
    """``command`` with absolute paths cut to their file names: a shipped card must not carry the
    training machine's folders."""
    words = shlex.split(command)
    return " ".join(shlex.quote(Path(w).name if Path(w).is_absolute() else w) for w in words)


def irn_use(scale: int, mean: dict[str, float], tau: float) -> str:
    """The first line of an IRN card: what the model is for and its measured quality, in words."""
    key = "irn_psnr_tau0" if tau == 0 else "irn_psnr_tau1"
    irn, bic = mean[key], mean["bicubic_psnr"]
    return (
        f"Shrink grey images ×{scale} (`irn down`) for storage or display, then restore the full "
        f"size (`irn up`): on held-out photographs and fluorescence images the round trip scores "
        f"{irn:.1f} dB PSNR, {irn - bic:+.1f} dB over bicubic down + up ({bic:.1f} dB). It restores "
        "its own LR images only: it is not a super-resolver for other small images."
    )


#: What each synthetic domain's prior is for (the first words of its card).
GAN_PURPOSE = {
    "albedo": "Prior over colour albedo (surface colour without lighting) of synthetic scenes: the albedo "
    "component of JoIN's intrinsic decomposition. Flat colour regions, no textures",
    "shading": "Prior over grey shading (smooth lighting of synthetic scenes): the shading component of "
    "JoIN's intrinsic decomposition",
    "nuclei": "Prior over grey fluorescence images of cell nuclei (synthetic): the specimen component of "
    "JoIN's flat-field correction and the latent bank of GLEAN",
    "illumination": "Prior over smooth illumination fields of a microscope (synthetic): the illumination "
    "component of JoIN's flat-field correction",
}


def gan_use(domain: str, size: int, mean: dict[str, float]) -> str:
    """The first line of a GAN prior's card: what it is for, its input domain and fidelity, in words."""
    purpose = GAN_PURPOSE.get(domain, f"Prior trained on the images in {Path(domain).name}")
    fid = mean["prior"]
    text = f"{purpose}; {size}×{size} pixels. Its samples are {mean['baseline_blurred_noise'] / fid:.0f}× closer "
    text += "to held-out images of the domain than blurred noise is"
    if "real_vs_real" in mean:
        text += f", and {fid / mean['real_vs_real']:.0f}× further from them than other images of the domain"
    return text + " (SWD, details below)."
