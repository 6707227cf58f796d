"""StyleGAN2 (Karras et al., CVPR 2020) as plain torch modules, no custom CUDA/C++ ops.

Configurable resolution, channel widths and latent size so that a small model trains on a CPU;
per-layer latents (W+) and per-block features for GLEAN. Module and parameter names follow the
common ``stylegan2-pytorch`` layout (``style.*``, ``input.input``, ``conv1.*``, ``to_rgb1.*``,
``convs.*``, ``to_rgbs.*``, ``noises.noise_*``), so checkpoints in that layout load as they are.
"""

from __future__ import annotations

import math
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Discriminator", "Generator", "default_channels", "tapered_channels", "upfirdn2d"]

SQRT2 = math.sqrt(2.0)


def upfirdn2d(
    x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)
) -> torch.Tensor:
    """Upsample (zero insertion), pad, FIR-filter and downsample ``(B, C, H, W)`` with torch ops.

    ``kernel`` is a 2-D FIR filter applied as a true convolution (flipped), as in StyleGAN2.
    """
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(b, c, h * up, w * up)
    p0, p1 = pad
    x = F.pad(x, (max(p0, 0), max(p1, 0), max(p0, 0), max(p1, 0)))
    if p0 < 0 or p1 < 0:
        x = x[:, :, max(-p0, 0) : x.shape[2] - max(-p1, 0), max(-p0, 0) : x.shape[3] - max(-p1, 0)]
    k = torch.flip(kernel, [0, 1]).to(x.dtype)[None, None].repeat(c, 1, 1, 1)
    x = F.conv2d(x, k, groups=c)
    return x[:, :, ::down, ::down]


def make_kernel(k: list[int] | tuple[int, ...]) -> torch.Tensor:
    """Separable FIR kernel from 1-D taps, normalised to sum 1."""
    t = torch.tensor(k, dtype=torch.float32)
    t = t[None, :] * t[:, None]
    return t / t.sum()


class Blur(nn.Module):
    def __init__(self, kernel: list[int], pad: tuple[int, int], upsample_factor: int = 1) -> None:
        super().__init__()
        self.register_buffer("kernel", make_kernel(kernel) * upsample_factor**2)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    def __init__(self, kernel: list[int], factor: int = 2) -> None:
        super().__init__()
        self.factor = factor
        self.register_buffer("kernel", make_kernel(kernel) * factor**2)
        p = self.kernel.shape[0] - factor
        self.pad = ((p + 1) // 2 + factor - 1, p // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return upfirdn2d(x, self.kernel, up=self.factor, pad=self.pad)


class FusedLeakyReLU(nn.Module):
    """Bias + LeakyReLU(0.2) × √2 (the gain keeps activations at unit variance)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, -1) + (1,) * (x.ndim - 2)
        return F.leaky_relu(x + self.bias.view(shape), 0.2) * SQRT2


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (weights scaled at run time)."""

    def __init__(
        self, c_in: int, c_out: int, bias_init: float = 0.0, lr_mul: float = 1.0, activation: bool = False
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((c_out,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(c_in)
        self.lr_mul = lr_mul
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.linear(x, self.weight * self.scale)
        out = out + self.bias * self.lr_mul
        return F.leaky_relu(out, 0.2) * SQRT2 if self.activation else out


class EqualConv2d(nn.Module):
    def __init__(
        self, c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0, bias: bool = True
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, k, k))
        self.scale = 1 / math.sqrt(c_in * k * k)
        self.stride, self.padding = stride, padding
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class ModulatedConv2d(nn.Module):
    """Convolution whose weights are scaled per input channel by a style, then demodulated."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        k: int,
        style_dim: int,
        demodulate: bool = True,
        upsample: bool = False,
        blur_kernel: tuple[int, ...] = (1, 3, 3, 1),
    ) -> None:
        super().__init__()
        self.c_in, self.c_out, self.k = c_in, c_out, k
        self.upsample, self.demodulate = upsample, demodulate
        if upsample:
            p = (len(blur_kernel) - 2) - (k - 1)
            self.blur = Blur(list(blur_kernel), pad=((p + 1) // 2 + 1, p // 2 + 1), upsample_factor=2)
        self.scale = 1 / math.sqrt(c_in * k * k)
        self.padding = k // 2
        self.weight = nn.Parameter(torch.randn(1, c_out, c_in, k, k))
        self.modulation = EqualLinear(style_dim, c_in, bias_init=1.0)

    def forward(self, x: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        s = self.modulation(style).view(b, 1, c, 1, 1)
        weight = self.scale * self.weight * s
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4], keepdim=True) + 1e-8)
        weight = weight.view(b * self.c_out, c, self.k, self.k)
        x = x.reshape(1, b * c, h, w)
        if self.upsample:
            weight = weight.view(b, self.c_out, c, self.k, self.k).transpose(1, 2)
            weight = weight.reshape(b * c, self.c_out, self.k, self.k)
            out = F.conv_transpose2d(x, weight, stride=2, groups=b)
            out = self.blur(out.view(b, self.c_out, *out.shape[2:]))
            return out
        out = F.conv2d(x, weight, padding=self.padding, groups=b)
        return out.view(b, self.c_out, *out.shape[2:])


class NoiseInjection(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if noise is None:
            noise = x.new_empty(x.shape[0], 1, x.shape[2], x.shape[3]).normal_()
        return x + self.weight * noise


class ConstantInput(nn.Module):
    def __init__(self, channels: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))

    def forward(self, batch: int) -> torch.Tensor:
        return self.input.repeat(batch, 1, 1, 1)


class LatentInput(nn.Module):
    """A 4×4 input map set by the latent: learned constant + affine(w) reshaped to ``(C, 4, 4)``.

    Not in StyleGAN2 (whose input is constant): it lets the latent place the coarse layout directly,
    which small models trained briefly otherwise fail to vary (every sample shares one layout).
    """

    def __init__(self, channels: int, style_dim: int, size: int = 4) -> None:
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, size, size))
        self.affine = EqualLinear(style_dim, channels * size * size)
        self.shape = (channels, size, size)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return self.input + self.affine(w).view(w.shape[0], *self.shape)


class StyledConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, style_dim: int, upsample: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(c_in, c_out, k, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(c_out)

    def forward(
        self, x: torch.Tensor, style: torch.Tensor, noise: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.activate(self.noise(self.conv(x, style), noise))


class ToRGB(nn.Module):
    def __init__(self, c_in: int, style_dim: int, channels: int = 3, upsample: bool = True) -> None:
        super().__init__()
        if upsample:
            self.upsample = Upsample([1, 3, 3, 1])
        self.conv = ModulatedConv2d(c_in, channels, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor, style: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


def tapered_channels(
    size: int, channel_base: int, max_channels: int, min_channels: int = 8
) -> dict[int, int]:
    """Channels halving with each doubling of resolution: ``min(max, channel_base // res)`` (at least
    ``min_channels``), so every resolution costs about the same compute (cheap high-res layers)."""
    return {
        2**i: max(min_channels, min(max_channels, channel_base // 2**i))
        for i in range(2, int(math.log2(size)) + 1)
    }


def default_channels(size: int, channel_multiplier: int = 2, max_channels: int = 512) -> dict[int, int]:
    """Channels per resolution as in StyleGAN2, capped at ``max_channels`` (small models: 64–128)."""
    base = {
        4: 512,
        8: 512,
        16: 512,
        32: 512,
        64: 256 * channel_multiplier,
        128: 128 * channel_multiplier,
        256: 64 * channel_multiplier,
        512: 32 * channel_multiplier,
        1024: 16 * channel_multiplier,
    }
    return {r: min(c, max_channels) for r, c in base.items() if r <= size}


class Generator(nn.Module):
    """StyleGAN2 generator: latents → ``(B, image_channels, size, size)`` (roughly in ``[-1, 1]``).

    ``forward(z)`` maps ``z`` ``(B, style_dim)`` through the mapping network; pass ``w_plus``
    ``(B, n_latent, style_dim)`` to give one latent per layer (W+). ``return_features=True`` also
    returns the feature map after each resolution block (4×4 first). ``latent_input=True``
    replaces the constant 4×4 input by :class:`LatentInput` (fed the first layer's latent).
    """

    def __init__(
        self,
        size: int = 64,
        style_dim: int = 512,
        n_mlp: int = 8,
        channel_multiplier: int = 2,
        max_channels: int = 512,
        image_channels: int = 3,
        lr_mlp: float = 0.01,
        channels: dict[int, int] | None = None,
        latent_input: bool = False,
    ) -> None:
        super().__init__()
        if size < 4 or size & (size - 1):
            raise ValueError("size must be a power of two >= 4")
        self.size, self.style_dim, self.image_channels = size, style_dim, image_channels
        self.channels = (
            dict(channels) if channels else default_channels(size, channel_multiplier, max_channels)
        )
        self.style = nn.Sequential(
            PixelNorm(),
            *[EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activation=True) for _ in range(n_mlp)],
        )
        c4 = self.channels[4]
        self.input = LatentInput(c4, style_dim) if latent_input else ConstantInput(c4)
        self.conv1 = StyledConv(c4, c4, 3, style_dim)
        self.to_rgb1 = ToRGB(c4, style_dim, image_channels, upsample=False)
        self.log_size = int(math.log2(size))
        self.num_layers = (self.log_size - 2) * 2 + 1
        self.n_latent = self.log_size * 2 - 2
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        self.noises = nn.Module()
        for i in range(self.num_layers):
            res = 2 ** ((i + 5) // 2)
            self.noises.register_buffer(f"noise_{i}", torch.randn(1, 1, res, res))
        c_in = c4
        for i in range(3, self.log_size + 1):
            c_out = self.channels[2**i]
            self.convs.append(StyledConv(c_in, c_out, 3, style_dim, upsample=True))
            self.convs.append(StyledConv(c_out, c_out, 3, style_dim))
            self.to_rgbs.append(ToRGB(c_out, style_dim, image_channels))
            c_in = c_out

    @property
    def latent_input(self) -> bool:
        """Whether the 4×4 input is set by the latent (:class:`LatentInput`) rather than constant."""
        return isinstance(self.input, LatentInput)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor]) -> Generator:
        """Build a generator whose shape matches ``state`` (our layout, or ``stylegan2-pytorch``'s:
        a checkpoint dict with ``g_ema``, optionally ``module.``-prefixed) and load it strictly."""
        if "g_ema" in state:
            state = state["g_ema"]
        state = {k.removeprefix("module."): v for k, v in state.items()}
        n_mlp = len([k for k in state if k.startswith("style.") and k.endswith(".weight")])
        style_dim = state["style.1.weight"].shape[1]
        n_rgbs = len([k for k in state if re.fullmatch(r"to_rgbs\.\d+\.bias", k)])
        size = 2 ** (2 + n_rgbs)
        channels = {4: state["conv1.conv.weight"].shape[1]}
        for i in range(n_rgbs):
            channels[2 ** (3 + i)] = state[f"convs.{2 * i}.conv.weight"].shape[1]
        net = cls(
            size=size,
            style_dim=style_dim,
            n_mlp=n_mlp,
            image_channels=state["to_rgb1.bias"].shape[1],
            channels=channels,
            latent_input="input.affine.weight" in state,
        )
        net.load_state_dict(state, strict=True)
        return net

    def mapping(self, z: torch.Tensor) -> torch.Tensor:
        """``z`` ``(B, style_dim)`` → ``w`` ``(B, style_dim)``."""
        return self.style(z)

    @torch.no_grad()
    def mean_latent(self, n: int = 4096) -> torch.Tensor:
        """Average ``w`` over ``n`` random ``z`` — the centre for truncation; ``(1, style_dim)``."""
        z = torch.randn(n, self.style_dim, device=self.input.input.device)
        return self.mapping(z).mean(0, keepdim=True)

    def noise_buffers(self) -> list[torch.Tensor]:
        return [getattr(self.noises, f"noise_{i}") for i in range(self.num_layers)]

    def forward(
        self,
        z: torch.Tensor | None = None,
        *,
        w: torch.Tensor | None = None,
        w_plus: torch.Tensor | None = None,
        truncation: float = 1.0,
        truncation_latent: torch.Tensor | None = None,
        noise: list[torch.Tensor | None] | str = "fixed",
        return_features: bool = False,
    ):
        """Give exactly one of ``z`` (B, D), ``w`` (B, D) or ``w_plus`` (B, n_latent, D).

        ``noise``: ``"fixed"`` (the stored buffers), ``"random"`` or a list of tensors.
        Returns the image, or ``(image, features)`` with ``return_features``.
        """
        if sum(v is not None for v in (z, w, w_plus)) != 1:
            raise ValueError("give exactly one of z, w or w_plus")
        if w_plus is None:
            if w is None:
                w = self.mapping(z)
            if truncation != 1.0:
                center = truncation_latent if truncation_latent is not None else self.mean_latent()
                w = center + truncation * (w - center)
            w_plus = w[:, None].repeat(1, self.n_latent, 1)
        if noise == "fixed":
            noise = self.noise_buffers()
        elif noise == "random":
            noise = [None] * self.num_layers
        batch = w_plus.shape[0]
        x = self.input(w_plus[:, 0]) if self.latent_input else self.input(batch)
        out = self.conv1(x, w_plus[:, 0], noise[0])
        skip = self.to_rgb1(out, w_plus[:, 1])
        feats = [out]
        i = 1
        for conv_a, conv_b, n_a, n_b, to_rgb in zip(
            self.convs[::2], self.convs[1::2], noise[1::2], noise[2::2], self.to_rgbs
        ):
            out = conv_a(out, w_plus[:, i], n_a)
            out = conv_b(out, w_plus[:, i + 1], n_b)
            skip = to_rgb(out, w_plus[:, i + 2], skip)
            feats.append(out)
            i += 2
        return (skip, feats) if return_features else skip


class ConvLayer(nn.Sequential):
    def __init__(
        self, c_in: int, c_out: int, k: int, downsample: bool = False, activate: bool = True
    ) -> None:
        layers: list[nn.Module] = []
        stride, padding = 1, k // 2
        if downsample:
            p = (4 - 2) + (k - 1)
            layers.append(Blur([1, 3, 3, 1], pad=((p + 1) // 2, p // 2)))
            stride, padding = 2, 0
        layers.append(EqualConv2d(c_in, c_out, k, stride=stride, padding=padding, bias=not activate))
        if activate:
            layers.append(FusedLeakyReLU(c_out))
        super().__init__(*layers)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = ConvLayer(c_in, c_in, 3)
        self.conv2 = ConvLayer(c_in, c_out, 3, downsample=True)
        self.skip = ConvLayer(c_in, c_out, 1, downsample=True, activate=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.conv2(self.conv1(x)) + self.skip(x)) / SQRT2


class Discriminator(nn.Module):
    """Residual StyleGAN2 discriminator with minibatch standard deviation: ``(B, C, S, S) → (B, 1)``."""

    def __init__(
        self,
        size: int = 64,
        channel_multiplier: int = 2,
        max_channels: int = 512,
        image_channels: int = 3,
        channels: dict[int, int] | None = None,
    ) -> None:
        super().__init__()
        ch = dict(channels) if channels else default_channels(size, channel_multiplier, max_channels)
        log_size = int(math.log2(size))
        convs: list[nn.Module] = [ConvLayer(image_channels, ch[size], 1)]
        c_in = ch[size]
        for i in range(log_size, 2, -1):
            c_out = ch[2 ** (i - 1)]
            convs.append(ResBlock(c_in, c_out))
            c_in = c_out
        self.convs = nn.Sequential(*convs)
        self.stddev_group, self.stddev_feat = 4, 1
        self.final_conv = ConvLayer(c_in + 1, ch[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(ch[4] * 16, ch[4], activation=True), EqualLinear(ch[4], 1)
        )

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activations after the input layer and after each residual block (highest resolution
        first), e.g. for a feature-matching loss: ``forward(x) == head(features(x)[-1])``."""
        feats = []
        for layer in self.convs:
            x = layer(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.convs(x))

    def head(self, out: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, 1)`` from the last block's activations (the last of :meth:`features`)."""
        b, c, h, w = out.shape
        group = min(b, self.stddev_group)
        while b % group:
            group -= 1
        std = out.view(group, -1, self.stddev_feat, c // self.stddev_feat, h, w)
        std = torch.sqrt(std.var(0, unbiased=False) + 1e-8).mean([2, 3, 4], keepdim=True).squeeze(2)
        std = std.repeat(group, 1, h, w)
        out = self.final_conv(torch.cat([out, std], 1))
        return self.final_linear(out.view(b, -1))


def discriminator_config(bundle_config: dict[str, Any], channels: int) -> dict[str, Any]:
    """The discriminator architecture of a prior: the same size and widths as its training run."""
    size = int(bundle_config["size"])
    maxc = int(bundle_config.get("max_channels", 128))
    base = int(bundle_config.get("channel_base", 0))
    ch = tapered_channels(size, base, maxc) if base > 0 else None
    cfg: dict[str, Any] = {"size": size, "max_channels": maxc, "image_channels": channels}
    if ch:
        cfg["channels"] = {str(k): v for k, v in ch.items()}
    return cfg


def build_discriminator(cfg: dict[str, Any]) -> Discriminator:
    ch = cfg.get("channels")
    return Discriminator(
        size=int(cfg["size"]),
        max_channels=int(cfg["max_channels"]),
        image_channels=int(cfg["image_channels"]),
        channels={int(k): int(v) for k, v in ch.items()} if ch else None,
    )
