"""Reading and writing images for the command line: TIFF (tifffile, dtype preserved; OME-TIFF and
ImageJ TIFF pixel sizes read and written back), PNG, JPEG; OME-Zarr and the other formats bioio
has a reader plugin for (the ``files`` extra: ``pip install "napari-genprior[files]"``)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .errors import InputError
from .imaging import check_image

__all__ = [
    "atomic_path",
    "check_parent",
    "check_writable",
    "list_images",
    "read_image",
    "output_pixel_size",
    "read_metadata",
    "read_pixel_size",
    "write_image",
    "write_text",
]

TIFF = (".tif", ".tiff")
RASTER = (".png", ".jpg", ".jpeg")
#: read through bioio (the ``files`` extra): OME-Zarr, and microscope formats whose bioio reader
#: plugin is installed (bioio-czi, bioio-nd2, bioio-lif, …)
BIOIO = (".zarr", ".czi", ".nd2", ".lif", ".dv", ".sldy")
#: the one line said when a bioio format is read without bioio
NEEDS_BIOIO = '{name}: reading {kind} needs bioio: pip install "napari-genprior[files]"'


def _suffix(path: Path, write: bool = False) -> str:
    s = path.suffix.lower()
    known = TIFF + RASTER if write else TIFF + RASTER + BIOIO
    if s not in known:
        also = "" if write else ", or .zarr (OME-Zarr) and other microscope formats through bioio"
        raise InputError(
            f"{path.name}: unsupported file type {s or '(none)'!r}; use .tif, .tiff, .png or .jpg{also}"
        )
    return s


def list_images(folder: str | Path) -> list[Path]:
    """The image files of ``folder`` (TIFF/PNG/JPEG, and .zarr folders), sorted; ``ValueError``
    if there are none."""
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in TIFF + RASTER + (".zarr",))
    if not files:
        raise ValueError(f"no .tif/.png/.jpg/.zarr images in {folder}")
    return files


def read_image(path: str | Path, check: bool = True) -> np.ndarray:
    """Read a TIFF, PNG or JPEG file into a numpy array with the file's own dtype.

    With ``check`` (every engine command's input, mask and reference), an array no engine can use
    (not numeric, empty, over 4-D, NaN or infinite values) is refused here, in one line naming the
    file, before any work starts (:func:`napari_genprior.imaging.check_image`).
    """
    data = _read(Path(path))
    return check_image(data, Path(path).name) if check else data


def _read(path: Path) -> np.ndarray:
    suffix = _suffix(path)
    if suffix in BIOIO:
        return _read_bioio(path, suffix)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    kind = "TIFF" if suffix in TIFF else suffix.lstrip(".").upper().replace("JPEG", "JPG")
    unreadable = f"{path}: not a readable {kind} file (corrupt, or not an image)"
    try:
        if suffix in TIFF:
            return _read_tiff(path, unreadable)
        import imageio.v3 as iio

        return np.asarray(iio.imread(path))
    except InputError:
        raise
    except Exception:  # corrupt, truncated, or another kind of file with this name
        # One line: the readers' own messages run to several, with advice that does not apply.
        raise InputError(unreadable) from None


def _bioimage(path: Path, suffix: str):  # noqa: ANN202 - bioio.BioImage, an optional import
    kind = "OME-Zarr" if suffix == ".zarr" else f"{suffix} files"
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    try:
        from bioio import BioImage
    except ImportError:
        raise InputError(NEEDS_BIOIO.format(name=path.name, kind=kind)) from None
    log = logging.getLogger("bioio")  # it logs each reader it tried: the one line below says it
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        return BioImage(path)
    except Exception:  # not a readable file of its kind, or no reader plugin for it
        why = (
            "no OME-Zarr image found in it"
            if suffix == ".zarr"
            else f"corrupt, or bioio's reader plugin for {suffix} is not installed (pip install bioio-{suffix[1:]})"
        )
        raise InputError(f"{path}: not a readable {kind} ({why})") from None
    finally:
        log.setLevel(level)


def _read_bioio(path: Path, suffix: str) -> np.ndarray:
    """The first scene at full resolution, as ``(T, C, Z, Y, X)`` with the axes of length 1 left
    out: channels come before the planes as a leading axis, each restored on its own (fluorescence
    channels); RGB(A) samples stay last, as the engines expect."""
    img = _bioimage(path, suffix)
    try:
        dims = img.dims.order
        data = np.asarray(img.data)
    except Exception as err:  # noqa: BLE001 - a broken store: one line, as for TIFF
        raise InputError(f"{path}: not a readable image ({type(err).__name__})") from None
    keep = [i for i, d in enumerate(dims) if data.shape[i] > 1 or d in "YX"]
    return data.squeeze(tuple(i for i in range(data.ndim) if i not in keep))


class _HeldRecords(logging.Filter):
    """Holds back the log records of a logger while attached (kept in ``records``)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False


def _read_tiff(path: Path, unreadable: str) -> np.ndarray:
    """A TIFF's pixels; :class:`InputError` ``unreadable`` for a file tifffile cannot make sense of.

    For a corrupt file tifffile logs a warning and returns an empty array, which would be reported
    later, and wrongly, as an empty image: its warnings are held back and said as one line instead.
    """
    import tifffile

    log = logging.getLogger("tifffile")
    held = _HeldRecords()
    log.addFilter(held)
    try:
        data = np.asarray(tifffile.imread(path))
    finally:
        log.removeFilter(held)
    if data.size == 0 and held.records:
        raise InputError(unreadable)
    for record in held.records:  # a readable file's warnings still reach the log
        log.handle(record)
    return data


#: micrometres per unit, for the units OME-XML and TIFF resolution tags use
_UM = {
    "µm": 1.0,
    "um": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "nm": 1e-3,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
    "\\u00b5m": 1.0,
}


def read_pixel_size(path: str | Path) -> tuple[float, float] | None:
    """The ``(y, x)`` pixel size in micrometres of a TIFF: OME-XML ``PhysicalSizeY/X`` (with their
    units), else the resolution tags (ImageJ's ``unit`` or the TIFF resolution unit); ``None`` for
    other files and TIFFs that say nothing or something unreadable."""
    path = Path(path)
    if path.suffix.lower() in BIOIO:
        return _bioio_pixel_size(path)
    if path.suffix.lower() not in TIFF or not path.is_file():
        return None
    import tifffile

    try:
        with tifffile.TiffFile(path) as tf:
            if tf.ome_metadata:
                return _ome_pixel_size(tf.ome_metadata)
            page = tf.pages[0]
            xres, yres = page.tags.get("XResolution"), page.tags.get("YResolution")
            if xres is None or yres is None:
                return None
            unit = page.tags.get("ResolutionUnit")
            code = int(unit.value) if unit is not None else 1
            if code == 2:
                per = 25400.0  # inch
            elif code == 3:
                per = 1e4  # centimetre
            else:  # no unit in the TIFF: ImageJ writes its own
                name = str((tf.imagej_metadata or {}).get("unit", "")).strip().lower()
                if name not in _UM:
                    return None
                per = _UM[name]
            (xn, xd), (yn, yd) = xres.value, yres.value
            if not (xn and yn):
                return None
            size = (per * yd / yn, per * xd / xn)
    except Exception:  # noqa: BLE001 - a pixel size is a nicety: never fail a run over it
        return None
    # the TIFF default of 1 pixel per unit with no unit means "not set"
    return size if all(0 < v < 1e5 for v in size) else None


def _bioio_pixel_size(path: Path) -> tuple[float, float] | None:
    try:
        sizes = _bioimage(path, path.suffix.lower()).physical_pixel_sizes
        y, x = float(sizes.Y), float(sizes.X)
    except Exception:  # noqa: BLE001 - no size recorded (None), or no reader: never fail a run over it
        return None
    return (y, x) if all(0 < v < 1e5 for v in (y, x)) else None


def _ome_pixel_size(xml: str) -> tuple[float, float] | None:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    pixels = next((e for e in root.iter() if e.tag.endswith("Pixels")), None)
    if pixels is None or "PhysicalSizeX" not in pixels.attrib or "PhysicalSizeY" not in pixels.attrib:
        return None
    out = []
    for ax in ("Y", "X"):
        unit = pixels.attrib.get(f"PhysicalSize{ax}Unit", "µm")
        out.append(float(pixels.attrib[f"PhysicalSize{ax}"]) * _UM.get(unit, 1.0))
    return out[0], out[1]


def output_pixel_size(pixel_size: tuple[float, float] | None, zoom: float) -> tuple[float, float] | None:
    """The pixel size of an output ``zoom`` times larger than its input (SR: zoom > 1)."""
    return None if pixel_size is None else (pixel_size[0] / zoom, pixel_size[1] / zoom)


def check_parent(path: str | Path) -> Path:
    """Raise :class:`InputError` unless ``path``'s folder exists or can be created (missing folders
    are created when writing), and can be written to."""
    path = Path(path)
    parent = path.parent
    while not parent.exists():  # the nearest folder that exists must be a writable folder
        if parent.parent == parent:
            break
        parent = parent.parent
    if parent.exists() and not parent.is_dir():
        raise InputError(f"cannot write {path}: {parent} is a file, not a folder")
    if parent.exists() and not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {path}: no permission to write in {parent}")
    if parent.is_dir():
        # os.access says yes to root everywhere, also in /proc or on a read-only disk: try it
        try:
            fd, probe = tempfile.mkstemp(dir=parent, prefix=".napari-genprior-probe-")
        except OSError as err:
            raise InputError(
                f"cannot write {path}: new files cannot be made in {parent} ({err.strerror or err}); "
                "choose another output folder"
            ) from None
        os.close(fd)
        os.unlink(probe)
    return path


def check_writable(path: str | Path, dtype: np.dtype) -> Path:
    """Raise :class:`InputError` now if ``path`` cannot hold ``dtype`` data (before any long run)."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder: give a file name such as {path / 'result.tif'}")
    suffix = _suffix(path, write=True)
    dtype = np.dtype(dtype)
    if suffix in (".jpg", ".jpeg") and dtype != np.uint8:
        raise InputError(f"{path.name}: JPEG holds only 8-bit data, this is {dtype}; write a .tif instead")
    if suffix == ".png" and dtype not in (np.uint8, np.uint16):
        raise InputError(f"{path.name}: PNG holds only 8/16-bit integers, this is {dtype}; write a .tif")
    return check_parent(path)


def write_image(
    path: str | Path,
    data: np.ndarray,
    metadata: dict | None = None,
    pixel_size: tuple[float, float] | None = None,
) -> Path:
    """Write ``data`` to TIFF (any dtype), PNG (uint8/uint16) or JPEG (uint8). Creates folders.

    ``metadata`` (JSON-serialisable) goes into a TIFF's description, or for other formats into a
    sidecar file ``<path>.json``; :func:`read_metadata` reads it back. ``pixel_size`` (``(y, x)``
    µm) goes into a TIFF's resolution tags (centimetre unit, which Fiji and tifffile read) and into
    its description as ``pixel_size_um``.
    """
    data = np.asarray(data)
    path = check_writable(path, data.dtype)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in TIFF:
        import tifffile

        # explicit, so that a stack of three planes (3, Y, X) is not taken for planar RGB
        photometric = "rgb" if data.ndim >= 3 and data.shape[-1] == 3 else "minisblack"
        kw: dict = {}
        meta = dict(metadata or {})
        if pixel_size is not None:
            kw = {"resolution": (1e4 / pixel_size[1], 1e4 / pixel_size[0]), "resolutionunit": "CENTIMETER"}
            meta["pixel_size_um"] = [float(pixel_size[0]), float(pixel_size[1])]
        with atomic_path(path) as tmp:
            tifffile.imwrite(tmp, data, photometric=photometric, metadata=meta, **kw)
    else:
        import imageio.v3 as iio

        if metadata:  # the sidecar first: an image that exists always has its record
            write_text(Path(f"{path}.json"), json.dumps(metadata))
        with atomic_path(path) as tmp:
            iio.imwrite(tmp, data, extension=suffix)
    return path


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to; renamed to ``path`` when the block succeeds,
    removed when it fails. A killed process leaves only a hidden ``.…partial`` file, never a
    truncated ``path`` (a batch rerun then redoes that image)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (see :func:`atomic_path`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def read_metadata(path: str | Path) -> dict:
    """The metadata :func:`write_image` stored with an image (``{}`` if none)."""
    path = Path(path)
    side = Path(f"{path}.json")
    if side.exists():
        return json.loads(side.read_text())
    if _suffix(path) in TIFF:
        import tifffile

        with tifffile.TiffFile(path) as tf:
            meta = tf.shaped_metadata
        if meta:
            return {k: v for k, v in meta[0].items() if k != "shape"}
    return {}
