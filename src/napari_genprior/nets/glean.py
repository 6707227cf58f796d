"""GLEAN (Chan et al., CVPR 2021): super-resolution with a frozen StyleGAN2 as latent bank.

Written from the paper and the description of mmagic's ``GLEANStyleGANv2`` (no code taken):

- **encoder**: conv → RRDB blocks → conv on the LR input (global residual, as in ESRGAN), then
  stride-2 conv blocks down to 4×4, keeping the feature of each level; a linear head maps the
  flattened 4×4 feature to one latent per generator layer (W+, the mapping network is unused).
- **bank**: the generator's synthesis layers run from those latents with its fixed noise buffers;
  at each bank resolution ``r ≤ in_size`` the bank feature is fused with the encoder feature of
  the same size (3×3 conv on the concatenation) and the fused feature continues through the bank.
  Bank features above ``in_size`` go to the decoder.
- **decoder**: from the RRDB feature at ``in_size``, ×2 pixel-shuffle steps, each concatenated
  with the bank feature of that size (conv + LReLU), then conv → LReLU → conv to the image.

Deviations from mmagic, on purpose: the output adds a bicubic upsampling of the input (the net
learns a residual, which trains far faster on a CPU budget); the bank's ToRGB layers are not run
(mmagic fuses into their RGB skip path too but never uses that image: only features reach the
decoder). Images are in ``[-1, 1]`` inside the net.

``no_bank=True`` is the ablation: the generator is replaced by trainable plain convolutions
(:class:`ConvBank`) fed by the same latents, producing features of the same shapes, with widths
chosen so that its parameter count matches the generator's synthesis layers (the mapping network,
unused by GLEAN, is not counted): the whole ablation net has the same parameter count within 1 %
(``tests/test_glean.py`` checks 10 %).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .stylegan2 import Generator

__all__ = ["GLEAN", "RRDB", "ConvBank", "bank_geometry"]


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


def _conv(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, stride, 1)


class DenseBlock(nn.Module):
    """Five densely connected 3×3 convs (growth ``g``), output scaled by 0.2 and added to the input."""

    def __init__(self, c: int, g: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList([_conv(c + i * g, g) for i in range(4)] + [_conv(c + 4 * g, c)])
        for conv in self.convs:  # small initial residuals keep a deep RRDB stack stable (ESRGAN)
            nn.init.kaiming_normal_(conv.weight, a=0.2)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for conv in self.convs[:-1]:
            feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
        return x + 0.2 * self.convs[-1](torch.cat(feats, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three :class:`DenseBlock`, residual scaled by 0.2.
    ``(B, c, H, W) → (B, c, H, W)``."""

    def __init__(self, c: int, g: int) -> None:
        super().__init__()
        self.body = nn.Sequential(DenseBlock(c, g), DenseBlock(c, g), DenseBlock(c, g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.2 * self.body(x)


def bank_geometry(bank: Generator) -> dict[str, Any]:
    """What GLEAN needs to know of a generator: size, image channels, latents, channels per size."""
    return {
        "size": bank.size,
        "image_channels": bank.image_channels,
        "n_latent": bank.n_latent,
        "style_dim": bank.style_dim,
        "channels": {int(r): int(c) for r, c in bank.channels.items()},
    }


def _block_params(bank: Generator) -> list[int]:
    """Parameters of the generator's synthesis layers per resolution 4, 8, …, size (ToRGB included)."""

    def n(*mods: nn.Module) -> int:
        return sum(p.numel() for m in mods for p in m.parameters())

    out = [n(bank.input, bank.conv1, bank.to_rgb1)]
    for k, to_rgb in enumerate(bank.to_rgbs):
        out.append(n(bank.convs[2 * k], bank.convs[2 * k + 1], to_rgb))
    return out


@torch.no_grad()
def _mean_latent(bank: Generator, n: int = 4096) -> torch.Tensor:
    """The bank's mean latent w̄ ``(style_dim,)`` from ``n`` fixed-seed ``z`` (reproducible)."""
    z = torch.randn(n, bank.style_dim, generator=torch.Generator().manual_seed(0))
    return bank.mapping(z.to(bank.input.input.device)).mean(0).float().cpu()


class ConvBank(nn.Module):
    """The ablation's stand-in for the generator: plain trainable convolutions fed by the latents.

    Block 0 reads the W+ latents ``(B, n_latent, style_dim)`` reshaped to ``(B, n_latent·style_dim/16,
    4, 4)``; each later block upsamples ×2 (bilinear) and applies conv → LReLU → conv → LReLU. Output
    channels equal the generator's at each size; the hidden width of each block is chosen so that the
    block has (about) the parameters of the generator's block of that size (``targets``).
    """

    def __init__(self, geometry: dict[str, Any], targets: list[int]) -> None:
        super().__init__()
        n_in = geometry["n_latent"] * geometry["style_dim"]
        if n_in % 16:
            raise ValueError("the ablation needs n_latent·style_dim divisible by 16 (a 4×4 input map)")
        chans = [geometry["channels"][2**i] for i in range(2, int(math.log2(geometry["size"])) + 1)]
        self.blocks = nn.ModuleList()
        c_in = n_in // 16
        for c_out, target in zip(chans, targets):
            # params(h) = 9·h·c_in + h + 9·h·c_out + c_out  →  solve for the hidden width h
            h = max(1, round((target - c_out) / (9 * (c_in + c_out) + 1)))
            self.blocks.append(nn.Sequential(_conv(c_in, h), _lrelu(), _conv(h, c_out), _lrelu()))
            c_in = c_out

    def block(self, i: int, x: torch.Tensor | None, w_plus: torch.Tensor) -> torch.Tensor:
        """Feature at size ``4·2^i``: block 0 from the latents, later ones from the previous feature."""
        if i == 0:
            x = w_plus.reshape(w_plus.shape[0], -1, 4, 4)
        else:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return self.blocks[i](x)


class GLEAN(nn.Module):
    """GLEAN super-resolution ``(B, C, in_size, in_size) → (B, C, in_size·scale, in_size·scale)``.

    Images in ``[-1, 1]``. ``bank``: a StyleGAN2 :class:`Generator` (from ``load_prior``; grey or
    RGB, with or without a latent input) whose size is ``in_size·scale``. GLEAN takes it over: with
    ``bank_frozen`` its parameters get ``requires_grad=False`` (gradients still flow *through* it to
    the encoder). ``no_bank``: the ablation (:class:`ConvBank` instead of the generator; the
    generator only gives the shapes and is not kept).

    ``rrdb_blocks``/``width``: the encoder's RRDB trunk (growth ``width // 2``) and the decoder
    width. Encoder levels below ``in_size`` and the fusion convs use the generator's channels.

    ``centred_latents``: the encoder predicts offsets from the bank's mean latent w̄ (a buffer,
    ``(1, 1, style_dim)``), so the bank runs inside its own W space from the first step instead of
    at w ≈ 0, far from every latent its mapping network makes. ``residual_fusion``: each fusion
    adds a zero-initialised conv of (bank, encoder) features to the bank feature, so the bank's later
    layers see in-domain features at the start. Both are off for models saved before they existed.

    Checkpoints store :meth:`trainable_state_dict` (everything but a frozen bank) with
    :meth:`config`; the bank is reloaded from its name or file (see ``train.glean``).
    """

    def __init__(
        self,
        bank: Generator,
        in_size: int,
        scale: int,
        rrdb_blocks: int = 4,
        width: int = 32,
        bank_frozen: bool = True,
        no_bank: bool = False,
        centred_latents: bool = False,
        residual_fusion: bool = False,
    ) -> None:
        super().__init__()
        geo = bank_geometry(bank)
        if in_size < 4 or in_size & (in_size - 1):
            raise ValueError(f"in_size must be a power of two >= 4, not {in_size}")
        if scale < 2 or scale & (scale - 1):
            raise ValueError(f"scale must be a power of two >= 2, not {scale}")
        if in_size * scale != geo["size"]:
            raise ValueError(
                f"in_size·scale = {in_size * scale} must equal the bank's size {geo['size']}: "
                f"use in_size {geo['size'] // scale} for ×{scale}"
            )
        if rrdb_blocks < 0 or width < 2:
            raise ValueError("rrdb_blocks must be >= 0 and width >= 2")
        self.in_size, self.scale, self.out_size = in_size, scale, geo["size"]
        self.rrdb_blocks, self.width = rrdb_blocks, width
        self.no_bank, self.bank_frozen = no_bank, bank_frozen and not no_bank
        self.centred_latents, self.residual_fusion = centred_latents, residual_fusion
        self.geometry = geo
        c_img, ch = geo["image_channels"], geo["channels"]
        self.image_channels = c_img
        self.resolutions = [2**i for i in range(2, int(math.log2(self.out_size)) + 1)]
        # encoder
        self.first = _conv(c_img, width)
        self.rrdb = nn.Sequential(*[RRDB(width, max(1, width // 2)) for _ in range(rrdb_blocks)])
        self.trunk = _conv(width, width)
        self.enc_in = nn.Sequential(_conv(width, ch[in_size]), _lrelu())
        self.enc_down = nn.ModuleList()
        r = in_size
        while r > 4:
            self.enc_down.append(
                nn.Sequential(_conv(ch[r], ch[r // 2], 2), _lrelu(), _conv(ch[r // 2], ch[r // 2]), _lrelu())
            )
            r //= 2
        self.to_latent = nn.Linear(16 * ch[4], geo["n_latent"] * geo["style_dim"])
        if centred_latents:
            # saved with the model: the ablation gets the same input statistics as the bank
            self.register_buffer("w_mean", _mean_latent(bank).view(1, 1, -1))
        # bank and fusion
        if no_bank:
            self.bank: Generator | None = None
            self.conv_bank: ConvBank | None = ConvBank(geo, _block_params(bank))
        else:
            self.bank, self.conv_bank = bank, None
            # a loaded prior may come with its gradients off: say what is trained either way
            bank.requires_grad_(not self.bank_frozen)
            if self.bank_frozen:
                bank.eval()
        self.fusion = nn.ModuleList([_conv(2 * ch[r], ch[r]) for r in self.resolutions if r <= in_size])
        if residual_fusion:
            for conv in self.fusion:
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)
        # decoder
        self.dec_up = nn.ModuleList()
        self.dec_fuse = nn.ModuleList()
        for r in self.resolutions:
            if r > in_size:
                self.dec_up.append(nn.Sequential(_conv(width, 4 * width), nn.PixelShuffle(2), _lrelu()))
                self.dec_fuse.append(nn.Sequential(_conv(width + ch[r], width), _lrelu()))
        self.final = nn.Sequential(_conv(width, width), _lrelu(), _conv(width, c_img))

    def train(self, mode: bool = True) -> GLEAN:
        super().train(mode)
        if self.bank is not None and self.bank_frozen:
            self.bank.eval()  # a frozen bank stays in inference mode
        return self

    def config(self) -> dict[str, Any]:
        """The constructor's settings (and the bank's geometry) — stored with every checkpoint."""
        return {
            "in_size": self.in_size,
            "scale": self.scale,
            "rrdb_blocks": self.rrdb_blocks,
            "width": self.width,
            "bank_frozen": self.bank_frozen,
            "no_bank": self.no_bank,
            "centred_latents": self.centred_latents,
            "residual_fusion": self.residual_fusion,
            "bank_geometry": {
                **self.geometry,
                "channels": {str(k): v for k, v in self.geometry["channels"].items()},
            },
        }

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The state dict without a frozen bank's tensors (those come from the bank's own file)."""
        sd = self.state_dict()
        if self.bank_frozen:
            sd = {k: v for k, v in sd.items() if not k.startswith("bank.")}
        return sd

    def load_trainable_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Load what :meth:`trainable_state_dict` gave; anything else missing or extra raises."""
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not (self.bank_frozen and k.startswith("bank."))]
        if missing or unexpected:
            raise RuntimeError(
                f"GLEAN state does not match: missing {missing[:5]}, unexpected {unexpected[:5]}"
            )

    def num_parameters(self) -> dict[str, int]:
        """Parameter counts per part; the bank counts its synthesis layers only (the mapping network
        is unused by GLEAN). ``total`` sums the parts."""

        def n(*mods: nn.Module | None) -> int:
            return sum(p.numel() for m in mods if m is not None for p in m.parameters())

        bank = sum(_block_params(self.bank)) if self.bank is not None else n(self.conv_bank)
        parts = {
            "encoder": n(self.first, self.rrdb, self.trunk, self.enc_in, self.enc_down, self.to_latent),
            "bank": bank,
            "fusion": n(self.fusion),
            "decoder": n(self.dec_up, self.dec_fuse, self.final),
        }
        parts["total"] = sum(parts.values())
        parts["trainable"] = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return parts

    def encode(self, lr: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """``lr`` ``(B, C, in, in)`` → (RRDB feature ``(B, width, in, in)``, encoder features at
        sizes ``in, in/2, …, 4``, W+ latents ``(B, n_latent, style_dim)``)."""
        x = self.first(lr)
        trunk = x + self.trunk(self.rrdb(x))
        feats = [self.enc_in(trunk)]
        for down in self.enc_down:
            feats.append(down(feats[-1]))
        w = self.to_latent(feats[-1].flatten(1)).view(lr.shape[0], self.geometry["n_latent"], -1)
        if self.centred_latents:
            w = w + self.w_mean
        return trunk, feats, w

    def _bank_block(self, i: int, x: torch.Tensor | None, w: torch.Tensor) -> torch.Tensor:
        """The bank's feature at size ``4·2^i`` (the generator's own layers, mirrored from
        ``Generator.forward``: conv1 at 4×4, then one up-conv + conv pair per size)."""
        if self.conv_bank is not None:
            return self.conv_bank.block(i, x, w)
        bank = self.bank
        noise = bank.noise_buffers()  # "fixed" noise: GLEAN is deterministic
        if i == 0:
            x = bank.input(w[:, 0]) if bank.latent_input else bank.input(w.shape[0])
            return bank.conv1(x, w[:, 0], noise[0])
        x = bank.convs[2 * i - 2](x, w[:, 2 * i - 1], noise[2 * i - 1])
        return bank.convs[2 * i - 1](x, w[:, 2 * i], noise[2 * i])

    def bank_path(self, enc: list[torch.Tensor], w: torch.Tensor) -> list[torch.Tensor]:
        """The bank run from the latents ``w`` with the encoder features ``enc`` fused in at sizes up
        to ``in_size``: its features at the sizes above ``in_size`` (for the decoder), smallest first."""
        enc_by_size = {f.shape[-1]: f for f in enc}
        x, to_decoder = None, []
        for i, r in enumerate(self.resolutions):
            x = self._bank_block(i, x, w)
            if r <= self.in_size:
                fused = self.fusion[i](torch.cat([x, enc_by_size[r]], 1))
                x = x + fused if self.residual_fusion else fused
            else:
                to_decoder.append(x)
        return to_decoder

    def decode(self, lr: torch.Tensor, trunk: torch.Tensor, bank_feats: list[torch.Tensor]) -> torch.Tensor:
        """The output from the RRDB feature and the bank's features: a residual on bicubic ``lr``."""
        y = trunk
        for up, fuse, feat in zip(self.dec_up, self.dec_fuse, bank_feats):
            y = fuse(torch.cat([up(y), feat], 1))
        base = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return base + self.final(y)

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """``lr`` ``(B, C, in_size, in_size)`` in ``[-1, 1]`` → ``(B, C, in·scale, in·scale)`` (about
        ``[-1, 1]``, not clamped)."""
        if lr.shape[1:] != (self.image_channels, self.in_size, self.in_size):
            raise ValueError(
                f"GLEAN expects (B, {self.image_channels}, {self.in_size}, {self.in_size}), got {tuple(lr.shape)}"
            )
        trunk, enc, w = self.encode(lr)
        return self.decode(lr, trunk, self.bank_path(enc, w))
