"""TIFF files that keep a result's record through napari's Save and Open.

napari's own TIFF writer drops ``layer.metadata``, so an IRN low-resolution image saved from napari
loses the record ``up`` restores from (scale, value range, HR shape). This writer puts the layer's
metadata into the TIFF description (the way the command line writes its outputs,
:func:`napari_genprior.io.write_image`), and the reader gives it back, so ``up`` works on the
reopened file, in napari and from the command line alike. The reader only takes TIFFs that carry
such a record; any other TIFF is left to napari's own reader.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..io import TIFF, read_image, read_metadata, write_image

#: metadata keys that mark a record written by this plugin (a result's engine, IRN's down record)
RECORD_KEYS = ("engine", "irn")
#: what :func:`_json_safe` returns for a value JSON cannot hold (left out of the record)
_DROP = object()


def _json_safe(value: Any) -> Any:
    """``value`` with numpy scalars/arrays as plain numbers/lists; what JSON cannot hold is dropped."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _json_safe(v)
            if v is not _DROP:
                out[str(k)] = v
        return out
    if isinstance(value, list | tuple):
        return [v for v in (_json_safe(x) for x in value) if v is not _DROP]
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 4096 else _DROP
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return _DROP


def write_tiff(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer: an image layer ``data`` (any shape and dtype) to ``path`` (.tif),
    its ``metadata`` in the TIFF description. Returns the path written."""
    if Path(path).suffix.lower() not in TIFF:
        path = f"{path}.tif"
    meta = _json_safe(dict(attributes.get("metadata") or {}))
    json.dumps(meta)  # fail here, before the file exists, if anything slipped through
    return [str(write_image(path, np.asarray(data), metadata=meta))]


def get_reader(path: str | list[str]) -> Callable[[str], list[tuple]] | None:
    """npe2 reader: a function for a TIFF that carries this plugin's record, else ``None``."""
    if isinstance(path, list):
        return None
    p = Path(path)
    if p.suffix.lower() not in TIFF or not p.is_file():
        return None
    try:
        meta = read_metadata(p)
    except Exception:  # noqa: BLE001 - not ours to judge: napari's own reader tries it next
        return None
    return _read if any(k in meta for k in RECORD_KEYS) else None


def _read(path: str) -> list[tuple]:
    data = read_image(path, check=False)  # napari shows any array; the widgets check what they run on
    meta = read_metadata(path)
    rgb = data.ndim >= 3 and data.shape[-1] in (3, 4) and data.dtype == np.uint8
    return [(data, {"name": Path(path).stem, "metadata": meta, "rgb": rgb}, "image")]
