"""Array plumbing shared by engines and shells: axis layout, checks, normalisation. Numpy only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError

__all__ = ["Normalizer", "PlaneLayout", "check_image", "guess_channel_axis"]

MIN_SIDE = 8
MAX_NDIM = 4


def guess_channel_axis(shape: tuple[int, ...]) -> int | None:
    """Channels-last when the last axis has 3 or 4 entries (RGB/RGBA), else no channel axis."""
    return -1 if len(shape) >= 3 and shape[-1] in (3, 4) else None


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Reject arrays no engine can use, with a message that says what to do."""
    arr = np.asarray(image)
    if arr.dtype == bool or arr.dtype.kind not in "uif":
        raise InputError(f"{what} has dtype {arr.dtype}; give a numeric (integer or float) image")
    if arr.size == 0:
        raise InputError(f"{what} is empty (shape {arr.shape}); load an image with pixels in it")
    if arr.ndim < 2:
        raise InputError(f"{what} has {arr.ndim} dimension(s); give at least a 2-D (Y, X) image")
    if arr.ndim > MAX_NDIM:
        raise InputError(
            f"{what} is {arr.ndim}-D {arr.shape}; at most 4-D is supported "
            "(e.g. T,Z,Y,X or T,Y,X,C): split it first, e.g. one time point at a time"
        )
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        n = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise InputError(
            f"{what} contains {n} NaN or infinite value(s); replace them first "
            "(e.g. numpy.nan_to_num), or mark them as missing and use the inpaint task"
        )
    return arr


@dataclass
class PlaneLayout:
    """How an array maps onto a stack of ``(C, Y, X)`` planes and back.

    ``channel_axis`` is the channel axis (``None``: single channel). Every other axis before
    the last two spatial axes is a leading axis (T, Z, …) processed plane by plane. ``min_side``:
    the smallest Y and X accepted (engines that pad small inputs take less than the default).
    """

    shape: tuple[int, ...]
    channel_axis: int | None
    min_side: int = MIN_SIDE

    def __post_init__(self) -> None:
        nd = len(self.shape)
        if self.channel_axis is not None:
            ax = self.channel_axis % nd
            spatial = [a for a in range(nd) if a != ax][-2:]
            if ax > spatial[0]:
                if ax != nd - 1:
                    raise InputError("the channel axis must be the last axis or come before Y and X")
            self.channel_axis = ax
            if nd < 3:
                raise InputError("a channel axis needs at least a 3-D array")
        sy, sx = self.spatial_shape
        if sy < self.min_side or sx < self.min_side:
            raise InputError(
                f"image is too small ({sy}×{sx} pixels); at least {self.min_side}×{self.min_side} is needed"
            )

    @property
    def _moved_shape(self) -> tuple[int, ...]:
        s = list(self.shape)
        c = s.pop(self.channel_axis) if self.channel_axis is not None else 1
        return (*s, c)

    @property
    def spatial_shape(self) -> tuple[int, int]:
        """``(Y, X)``."""
        m = self._moved_shape
        return m[-3], m[-2]

    @property
    def lead_shape(self) -> tuple[int, ...]:
        """Shape of the leading (plane) axes, ``()`` for a single plane."""
        return self._moved_shape[:-3]

    @property
    def n_channels(self) -> int:
        return self._moved_shape[-1]

    @property
    def n_planes(self) -> int:
        return int(np.prod(self.lead_shape, dtype=int))

    def scaled_shape(self, zoom: int) -> tuple[int, ...]:
        """The array shape with Y and X multiplied by ``zoom`` (the shape of a ×zoom result)."""
        nd = len(self.shape)
        spatial = [a for a in range(nd) if a != self.channel_axis][-2:]
        return tuple(s * zoom if a in spatial else s for a, s in enumerate(self.shape))

    def to_planes(self, image: np.ndarray) -> np.ndarray:
        """``image`` (the layout's shape) → ``(N, C, Y, X)``."""
        a = np.asarray(image)
        a = np.moveaxis(a, self.channel_axis, -1) if self.channel_axis is not None else a[..., None]
        y, x, c = a.shape[-3:]
        return a.reshape(-1, y, x, c).transpose(0, 3, 1, 2)

    def from_planes(self, planes: np.ndarray) -> np.ndarray:
        """``(N, C, Y', X')`` → the layout's axis order, with the new spatial size."""
        n, c, y, x = planes.shape
        a = planes.transpose(0, 2, 3, 1).reshape(*self.lead_shape, y, x, c)
        return np.moveaxis(a, -1, self.channel_axis) if self.channel_axis is not None else a[..., 0]

    def plane_shape(self, spatial: tuple[int, int] | None = None) -> tuple[int, ...]:
        """Shape of one plane in the layout's own axis order (for previews)."""
        y, x = spatial or self.spatial_shape
        if self.channel_axis is None:
            return (y, x)
        return (
            (y, x, self.n_channels) if self.channel_axis == len(self.shape) - 1 else (self.n_channels, y, x)
        )

    def plane_view(self, plane: np.ndarray) -> np.ndarray:
        """``(C, Y, X)`` → one plane in the layout's axis order (channels last if they were)."""
        if self.channel_axis is None:
            return plane[0]
        return np.moveaxis(plane, 0, -1) if self.channel_axis == len(self.shape) - 1 else plane


@dataclass
class Normalizer:
    """Maps an image to ``[0, 1]`` float32 and back to its own dtype and range.

    uint8 data use the full 0–255 range (as the DIP paper does); other data use their own
    minimum and maximum, so no value is clipped and the round trip restores the range.
    """

    lo: float
    hi: float
    dtype: np.dtype

    @classmethod
    def fit(cls, image: np.ndarray) -> Normalizer:
        a = np.asarray(image)
        if a.dtype == np.uint8:
            lo, hi = 0.0, 255.0
        else:
            lo, hi = float(a.min()), float(a.max())
        if hi <= lo:
            hi = lo + 1.0
        return cls(lo, hi, a.dtype)

    def forward(self, image: np.ndarray) -> np.ndarray:
        """Image in its own units → float32 in ``[0, 1]``."""
        return ((np.asarray(image, dtype=np.float64) - self.lo) / (self.hi - self.lo)).astype(np.float32)

    def inverse(self, x: np.ndarray, cast: bool = True) -> np.ndarray:
        """Float in ``[0, 1]`` → the image's units; with ``cast``, rounded/clipped to its dtype."""
        y = np.asarray(x, dtype=np.float64) * (self.hi - self.lo) + self.lo
        if not cast:
            return y.astype(np.float32)
        if np.issubdtype(self.dtype, np.integer):
            info = np.iinfo(self.dtype)
            return np.clip(np.rint(y), info.min, info.max).astype(self.dtype)
        return y.astype(self.dtype)
