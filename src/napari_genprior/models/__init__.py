"""Bundled model weights and their model cards.

Each model ``NAME`` is a weights file ``NAME.pt`` (a dict with ``model``, the state dict, and
``config``; load with ``torch.load(weights_only=True)``) and a card ``NAME.json`` (data, command,
steps, wall time, held-out metrics). Models are trained by the project's own training commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["MODEL_DIR", "card", "list_models", "weights_path"]

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
