"""The "skip" hourglass network of Deep Image Prior (Ulyanov et al., CVPR 2018).

An encoder-decoder with one optional skip branch per level. With the defaults
(5 levels, 128 channels down and up, 4 skip channels, 32 input channels, 3 outputs)
it has about 2.22 M parameters, as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["SkipNet"]


PADDINGS = ("reflect", "zeros")


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, padding: str = "reflect") -> nn.Conv2d:
    # A 1×1 convolution pads nothing, but a non-"zeros" padding_mode still makes torch copy its
    # input through F.pad (forward and backward): 6–7 % of a step for no change in the result
    # (studies/dip_conv_pad_probe.py).
    mode = padding if k > 1 else "zeros"
    return nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2, padding_mode=mode)


def _conv_bn_act(c_in: int, c_out: int, k: int, stride: int = 1, padding: str = "reflect") -> list[nn.Module]:
    return [_conv(c_in, c_out, k, stride, padding), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]


class _Level(nn.Module):
    """One level: skip branch ‖ (down → deeper level → ×2 up), then fuse."""

    def __init__(
        self,
        c_in: int,
        c_down: int,
        c_up: int,
        c_skip: int,
        deeper: nn.Module | None,
        c_deeper_out: int,
        upsample: str,
        padding: str,
    ) -> None:
        super().__init__()
        self.skip = nn.Sequential(*_conv_bn_act(c_in, c_skip, 1)) if c_skip > 0 else None
        self.down = nn.Sequential(
            *_conv_bn_act(c_in, c_down, 3, 2, padding), *_conv_bn_act(c_down, c_down, 3, 1, padding)
        )
        self.deeper = deeper
        self.up = nn.Upsample(
            scale_factor=2, mode=upsample, **({"align_corners": False} if upsample == "bilinear" else {})
        )
        c_cat = c_skip + (c_deeper_out if deeper is not None else c_down)
        self.fuse = nn.Sequential(
            nn.BatchNorm2d(c_cat), *_conv_bn_act(c_cat, c_up, 3, 1, padding), *_conv_bn_act(c_up, c_up, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.down(x)
        if self.deeper is not None:
            d = self.deeper(d)
        d = self.up(d)
        if self.skip is not None:
            d = torch.cat([self.skip(x), d], dim=1)
        return self.fuse(d)


class SkipNet(nn.Module):
    """DIP hourglass: ``(B, in_channels, H, W) → (B, out_channels, H, W)`` in ``[0, 1]``.

    ``H`` and ``W`` must be multiples of ``2**levels`` and at least ``2**(levels+1)``
    (reflection padding at the deepest level needs two pixels). ``padding``: how the 3×3
    convolutions pad, ``reflect`` (the paper) or ``zeros`` (cheaper on a CPU).
    ``channels_*`` take one number for every level or a list, outermost level first.
    """

    def __init__(
        self,
        in_channels: int = 32,
        out_channels: int = 3,
        channels_down: int | list[int] = 128,
        channels_up: int | list[int] = 128,
        channels_skip: int | list[int] = 4,
        levels: int = 5,
        upsample: str = "bilinear",
        padding: str = "reflect",
    ) -> None:
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, not {padding!r}")

        def per_level(v: int | list[int]) -> list[int]:
            return [v] * levels if isinstance(v, int) else list(v)

        down, up, skip = per_level(channels_down), per_level(channels_up), per_level(channels_skip)
        if not len(down) == len(up) == len(skip) == levels:
            raise ValueError("channel lists must have one entry per level")
        self.levels = levels
        deeper: nn.Module | None = None
        # Build from the deepest level outwards.
        for i in reversed(range(levels)):
            c_in = in_channels if i == 0 else down[i - 1]
            c_deeper_out = up[i + 1] if i + 1 < levels else down[i]
            deeper = _Level(c_in, down[i], up[i], skip[i], deeper, c_deeper_out, upsample, padding)
        self.body = deeper
        self.head = nn.Sequential(_conv(up[0], out_channels, 1), nn.Sigmoid())

    @property
    def multiple(self) -> int:
        """Spatial sizes must be a multiple of this."""
        return 2**self.levels

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(z))
