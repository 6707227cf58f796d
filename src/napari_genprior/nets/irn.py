"""Invertible Image Rescaling network (Xiao et al., ECCV 2020).

One level per factor 2: a fixed Haar wavelet transform (channels ×4, size ÷2) followed by
``blocks`` affine coupling blocks (``InvBlockExp``). The first ``out_channels`` channels of the
output are the low-resolution image, the rest are the latent ``z``. The module tree and parameter
names follow the paper's public ``InvRescaleNet`` (``operations.{i}.haar_weights``,
``operations.{i}.{F,G,H}.conv{1..5}``), so its checkpoints load as they are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["DenseBlock", "HaarDownsampling", "InvBlockExp", "InvRescaleNet"]


class DenseBlock(nn.Module):
    """Five 3×3 convolutions with dense connections, LeakyReLU(0.2); ``(B, c_in, H, W) → (B, c_out, H, W)``.

    The last convolution starts at zero, so a fresh coupling block is the identity.
    """

    def __init__(self, c_in: int, c_out: int, growth: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, growth, 3, 1, 1)
        self.conv2 = nn.Conv2d(c_in + growth, growth, 3, 1, 1)
        self.conv3 = nn.Conv2d(c_in + 2 * growth, growth, 3, 1, 1)
        self.conv4 = nn.Conv2d(c_in + 3 * growth, growth, 3, 1, 1)
        self.conv5 = nn.Conv2d(c_in + 4 * growth, c_out, 3, 1, 1)
        self.act = nn.LeakyReLU(0.2)
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            nn.init.xavier_normal_(conv.weight)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)
        nn.init.zeros_(self.conv5.weight)
        nn.init.zeros_(self.conv5.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            feats.append(self.act(conv(torch.cat(feats, 1))))
        return self.conv5(torch.cat(feats, 1))


class HaarDownsampling(nn.Module):
    """Orthogonal-up-to-scale Haar transform: ``(B, C, H, W) ↔ (B, 4C, H/2, W/2)``.

    Forward output channels are ordered ``[all C averages, all C horizontal, vertical, diagonal
    details]``; the averages are the 2×2 box mean, so the first ``C`` channels look like a
    downscaled image. ``inverse`` is exact.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        w = torch.ones(4, 1, 2, 2)
        w[1, 0, 0, 1] = w[1, 0, 1, 1] = -1
        w[2, 0, 1, 0] = w[2, 0, 1, 1] = -1
        w[3, 0, 1, 0] = w[3, 0, 0, 1] = -1
        self.haar_weights = nn.Parameter(w.repeat(channels, 1, 1, 1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        y = F.conv2d(x, self.haar_weights, stride=2, groups=c) / 4.0
        return y.reshape(b, c, 4, h // 2, w // 2).transpose(1, 2).reshape(b, 4 * c, h // 2, w // 2)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        b, c4, h, w = y.shape
        c = c4 // 4
        x = y.reshape(b, 4, c, h, w).transpose(1, 2).reshape(b, c4, h, w)
        return F.conv_transpose2d(x, self.haar_weights, stride=2, groups=c)


class InvBlockExp(nn.Module):
    """Affine coupling: ``y1 = x1 + F(x2)``, ``y2 = x2·exp(s) + G(y1)``, ``s = clamp·(2σ(H(y1)) − 1)``.

    ``x1`` is the first ``split`` channels (the low-resolution image), ``x2`` the rest.
    """

    def __init__(self, channels: int, split: int, clamp: float = 1.0, growth: int = 32) -> None:
        super().__init__()
        self.split = split
        self.clamp = clamp
        self.F = DenseBlock(channels - split, split, growth)
        self.G = DenseBlock(split, channels - split, growth)
        self.H = DenseBlock(split, channels - split, growth)

    def _scale(self, y1: torch.Tensor) -> torch.Tensor:
        return self.clamp * (torch.sigmoid(self.H(y1)) * 2 - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1, x2 = x[:, : self.split], x[:, self.split :]
        y1 = x1 + self.F(x2)
        y2 = x2 * torch.exp(self._scale(y1)) + self.G(y1)
        return torch.cat([y1, y2], 1)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        y1, y2 = y[:, : self.split], y[:, self.split :]
        x2 = (y2 - self.G(y1)) * torch.exp(-self._scale(y1))
        x1 = y1 - self.F(x2)
        return torch.cat([x1, x2], 1)


class InvRescaleNet(nn.Module):
    """``forward``: HR ``(B, C, H, W)`` → ``(B, C·4^L, H/2^L, W/2^L)`` = [LR (C channels), z].

    ``inverse`` maps [LR, z] back to HR exactly (up to float rounding). ``scale = 2**levels``;
    ``H`` and ``W`` must be multiples of ``scale``. ``blocks`` coupling blocks per level (8 in the
    paper) with dense subnets of growth ``growth`` (32 in the paper).
    """

    def __init__(self, channels: int = 3, levels: int = 1, blocks: int = 8, growth: int = 32) -> None:
        super().__init__()
        self.channels = channels
        self.levels = levels
        ops: list[nn.Module] = []
        c = channels
        for _ in range(levels):
            ops.append(HaarDownsampling(c))
            c *= 4
            ops.extend(InvBlockExp(c, channels, growth=growth) for _ in range(blocks))
        self.operations = nn.ModuleList(ops)

    @property
    def scale(self) -> int:
        return 2**self.levels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.operations:
            x = op(x)
        return x

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        for op in reversed(self.operations):
            y = op.inverse(y)
        return y
