"""Forward models that compose an image from components (JoIN's decompositions), in torch.

A forward model names its components, the prior each one uses by default and how they compose.
The JoIN solver knows nothing else about them: what differs between models (how a plane is
covered, which input a model accepts, extra parameters, how outputs become layers) is a hook on
:class:`ForwardModel` with a default, and a new model is a new subclass registered in
:data:`FORWARD_MODELS`.

Conventions: component tensors are ``(B, C, h, w)`` float32 in *linear* units; a GAN output in
``[-1, 1]`` becomes a component through :meth:`ForwardModel.component`. ``smooth`` components are
fields over a whole plane (one generator output, resized to the plane); the others are local, one
generator output per tile at the prior's own scale. Extra (non-GAN) parameters, such as a dark
offset, are tensors that the model creates and the solver optimises with the latents.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "FORWARD_MODELS",
    "Component",
    "FlatField",
    "ForwardModel",
    "Intrinsic",
    "Output",
    "forward_model",
]


@dataclass(frozen=True)
class Component:
    """One component of a decomposition.

    ``prior``: the bundled prior it uses by default. ``smooth``: a field over the whole plane
    (brought to full resolution by resizing), else a local image (recomputed at full resolution
    from the input and the smooth fields). ``floor``: the smallest value it may take (a component
    that others are divided by must stay away from 0). ``latent``: the latent space the solver
    optimises by default, ``"w+"`` (one latent per layer: more expressive) or ``"w"`` (one for all
    layers: stays closer to the prior's samples); chosen per model by measurement (docs/join.md).
    ``metric``: the in-domain penalty's distance from w̄, ``"euclidean"`` or ``"mahalanobis"`` (under
    the prior's latent covariance), also measured per model.
    """

    name: str
    prior: str
    smooth: bool
    floor: float = 0.0
    latent: str = "w+"
    in_domain: float | None = None  # this component's ‖w − w̄‖² weight (None: the model's)
    metric: str = "euclidean"  # how the in-domain penalty measures w − w̄ (or "mahalanobis")


@dataclass(frozen=True)
class Output:
    """One output of a decomposition, as :meth:`ForwardModel.full_resolution` names it.

    ``intensity``: an intensity, which the solver brings back to the input's units (the others are
    unitless factors, kept as they are). ``grey``: one channel whatever the input's. ``per_group``:
    one per group of planes (a field), so a stack that shares it gets a single 2-D one.
    """

    name: str
    intensity: bool = False
    grey: bool = False
    per_group: bool = False


class ForwardModel:
    """Base class. Subclasses set ``name``, ``components``, ``output_layers`` and ``outputs`` and
    implement :meth:`compose` and :meth:`full_resolution`; the other hooks have defaults."""

    name: ClassVar[str] = ""
    components: ClassVar[tuple[Component, ...]] = ()
    #: the outputs, in order (the first is the primary result)
    output_layers: ClassVar[tuple[Output, ...]] = ()
    #: output file / layer names, in order: those of :attr:`output_layers`
    outputs: ClassVar[tuple[str, ...]] = ()
    #: how many image channels the model accepts: 1, 3 or both
    image_channels: ClassVar[tuple[int, ...]] = (1, 3)
    #: default weight of the in-domain penalty ‖w − w̄‖² (measured per model, docs/join.md)
    in_domain: ClassVar[float] = 0.03
    #: in-domain weights that replace the defaults when :meth:`group_loss` is in use
    stack_in_domain: ClassVar[dict[str, float]] = {}
    #: what stage 2 does to the smooth fields: ``weights`` (fine-tune their generators too),
    #: ``latent`` (keep the prior's weights, go on moving the latent) or ``frozen``
    stage2_smooth: ClassVar[str] = "weights"
    #: the keyword options of the constructor, which the solver fills from its parameters of the
    #: same names
    option_names: ClassVar[tuple[str, ...]] = ()
    #: how the solve covers a plane: ``False`` resizes the whole plane to the local prior's size;
    #: ``True`` tiles it at the prior's own scale (downscaled only to fit the tile budget)
    tiled: ClassVar[bool] = False
    #: the planes of a stack share the smooth components and the extra parameters (one field,
    #: gain and offset, solved on tiles picked over the stack) unless the run asks for one per plane
    shared_across_planes: ClassVar[bool] = False

    def __init__(self, **options: object) -> None:
        if options:
            raise TypeError(f"{self.name}: unknown option(s) {', '.join(options)}")

    def channels_problem(self, channels: int) -> str:
        """Why an image of ``channels`` channels (not in :attr:`image_channels`) cannot be decomposed."""
        takes = " or ".join(map(str, self.image_channels))
        return f"the {self.name} model takes images of {takes} channels, not {channels}"

    def prior_problem(self, comp: Component, channels: int, label: str) -> str | None:
        """Why the prior ``label``, which makes ``channels``-channel images, cannot explain ``comp``
        (``None``: it can)."""
        if comp.smooth and channels != 1:
            return (
                f"the {comp.name} prior {label!r} makes {channels}-channel images; {comp.name} is a grey "
                f"field: choose a grey prior (e.g. the bundled {comp.prior!r})"
            )
        return None

    def adapt_input(
        self, image: torch.Tensor, prior_channels: dict[str, int]
    ) -> tuple[torch.Tensor, list[str]]:
        """The normalised input ``(N, C, H, W)`` as the model can explain it, and a warning for each
        change or approximation; ``prior_channels``: the channels each component's prior makes."""
        return image, []

    def component(self, comp: Component, g_out: torch.Tensor, image_channels: int) -> torch.Tensor:
        """A generator output ``(B, c, S, S)`` in ``[-1, 1]`` → the component in linear units,
        ``(B, 1 or image_channels, S, S)`` and at least ``comp.floor``."""
        x = ((g_out + 1) / 2).clamp(0, 1)
        return x.clamp_min(comp.floor) if comp.floor > 0 else x

    def init_extra(self, groups: int, image: torch.Tensor) -> dict[str, torch.Tensor]:
        """Non-GAN parameters, one per group (shared across the planes of a group); ``image`` is the
        working-scale input ``(N, C, h, w)`` in ``[0, 1]`` units."""
        return {}

    def linearise(self, image: torch.Tensor) -> torch.Tensor:
        """Input (normalised) → the linear image the composition explains."""
        return image

    def delinearise(self, image: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`linearise` for a linear image (any shape, ``[0, 1]`` units) that
        is shown in the input's terms (a reconstruction, a preview)."""
        return image

    def group_stats(self, planes: torch.Tensor, groups: list[int]) -> dict[str, torch.Tensor] | None:
        """Statistics of the full-resolution linear planes ``(N, C, H, W)`` that the smooth
        components of each group must explain as a whole (see :meth:`group_loss`), or ``None``
        when the model has no such term."""
        return None

    def group_loss(self, smooth: dict[str, torch.Tensor], stats: dict[str, torch.Tensor]) -> torch.Tensor:
        """``(R,)``: how badly the smooth components, ``{name: (R, groups, 1, s, s)}``, explain
        ``stats`` (from :meth:`group_stats`), for each of ``R`` restarts."""
        raise NotImplementedError

    def compose(
        self, parts: dict[str, torch.Tensor], extra: dict[str, torch.Tensor], group: torch.Tensor
    ) -> torch.Tensor:
        """Components (each ``(B, ·, h, w)``, smooth fields already cropped to the tiles) and extra
        parameters indexed by ``group`` ``(B,)`` → the linear image ``(B, C, h, w)``."""
        raise NotImplementedError

    def full_resolution(
        self, image: np.ndarray, smooth: dict[str, np.ndarray], extra: dict[str, float | np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The outputs at full resolution for one plane: ``image`` ``(C, H, W)`` linear in ``[0, 1]``
        units, ``smooth`` the smooth fields resized to ``(H, W)``, ``extra`` this plane's extra
        parameters. Returns ``{output name: (C', H, W)}`` in the same units."""
        raise NotImplementedError

    def full_resolution_extra(
        self, extra: dict[str, torch.Tensor], group: int, size: tuple[int, int]
    ) -> dict[str, float | np.ndarray]:
        """The extra parameters of ``group`` (``extra`` as :meth:`init_extra` made them) as
        :meth:`full_resolution` takes them for a plane of ``size`` (H, W)."""
        return {}

    def extra_metadata(self, extra: dict[str, torch.Tensor]) -> dict[str, Any]:
        """What a run's metadata reports of the solved extra parameters (``extra`` as
        :meth:`init_extra` made them)."""
        return {}


class Intrinsic(ForwardModel):
    """I = A · S: a colour (or grey) albedo A from the ``albedo`` prior times a grey shading S from
    the ``shading`` prior. The image is taken as linear; ``gamma`` > 1 linearises an sRGB-like
    photograph first (I_lin = I^gamma, 2.2 for sRGB). A grey image uses the albedo prior's grey
    (the mean of its colour channels)."""

    name = "intrinsic"
    components = (Component("albedo", "albedo", smooth=False), Component("shading", "shading", True, 0.01))
    output_layers = (Output("albedo"), Output("shading", grey=True, per_group=True))
    outputs = tuple(o.name for o in output_layers)
    option_names = ("gamma",)
    # the shading prior fits shading well, the albedo prior lacks texture: stage 2 frees the albedo
    # generator and lets the shading latent shed what it now explains (docs/join.md, stage 2)
    stage2_smooth = "latent"

    def __init__(self, gamma: float = 1.0) -> None:
        super().__init__()
        if not (gamma > 0 and np.isfinite(gamma)):
            raise ValueError(f"gamma must be a positive number, not {gamma}")
        self.gamma = float(gamma)

    def component(self, comp: Component, g_out: torch.Tensor, image_channels: int) -> torch.Tensor:
        x = super().component(comp, g_out, image_channels)
        if comp.name == "shading" or x.shape[1] == image_channels:
            return x[:, :1] if comp.name == "shading" else x
        if image_channels == 1:  # colour albedo prior, grey image: its luminance-free grey
            return x.mean(1, keepdim=True)
        return x.expand(-1, image_channels, -1, -1)  # grey albedo prior, colour image

    def channels_problem(self, channels: int) -> str:
        return (
            f"the intrinsic model takes grey or RGB images, not {channels} channels: drop the alpha channel"
        )

    def adapt_input(self, image, prior_channels):
        warnings = []
        if float(image.min()) < 0:
            warnings.append(
                "negative values were set to 0: a product of albedo and shading cannot be negative"
            )
            image = image.clamp_min(0)
        if image.shape[1] == 1 and prior_channels.get("albedo") == 3:
            warnings.append("grey image: the colour albedo prior's grey (the mean of its channels) is used")
        return image, warnings

    def linearise(self, image: torch.Tensor) -> torch.Tensor:
        return image.clamp_min(0) ** self.gamma if self.gamma != 1 else image

    def delinearise(self, image: np.ndarray) -> np.ndarray:
        return np.clip(image, 0, None) ** (1 / self.gamma) if self.gamma != 1 else image

    def compose(self, parts, extra, group):
        return parts["albedo"] * parts["shading"]

    def full_resolution(self, image, smooth, extra):
        s = np.maximum(smooth["shading"][:1], self.components[1].floor)
        return {"albedo": (image / s).astype(np.float32), "shading": s.astype(np.float32)}


def _detail_correlation(detail: torch.Tensor) -> float:
    """Mean correlation over pairs of planes ``(n, 1, k, k)``, ``n >= 2`` (0 for one plane)."""
    n = detail.shape[0]
    if n < 2:
        return 0.0
    h = detail.reshape(n, -1)
    h = h - h.mean(1, keepdim=True)
    h = h / h.norm(dim=1, keepdim=True).clamp_min(1e-12)
    c = h @ h.T
    return float((c.sum() - c.diagonal().sum()) / (n * (n - 1)))


class FlatField(ForwardModel):
    """I = g · F · X + D: a specimen X from the ``nuclei`` prior (or any grey prior), a smooth
    illumination field F from the ``illumination`` prior, a gain g and a dark offset D (``darkfield``
    ``"scalar"``, a smooth ``"field"`` — a 4×4 grid of offsets interpolated bicubically — or
    ``"none"``). Outputs follow BaSiC's convention: the flat-field normalised to mean 1, the dark-field
    in image units, and the corrected specimen (I − D) / F."""

    name = "flatfield"
    components = (
        Component("specimen", "nuclei", smooth=False, latent="w"),
        # mahalanobis: with ‖w − w̄‖² the field stayed near the prior's mean field, and fields far
        # from it were missed (docs/join.md, "The field's prior")
        Component("flatfield", "illumination", smooth=True, floor=0.02, latent="w", metric="mahalanobis"),
    )
    output_layers = (
        Output("corrected", intensity=True, grey=True),
        Output("flatfield", grey=True, per_group=True),
        Output("darkfield", intensity=True, grey=True, per_group=True),
    )
    outputs = tuple(o.name for o in output_layers)
    image_channels = (1,)
    # measured as 0.3 on 256² images (4 tiles) when the data term was summed over tiles; the same
    # balance with the per-tile mean the solver now uses
    in_domain = 0.075
    # with the stack term pulling the field towards the blurred mean plane (which keeps some
    # specimen), a firmer prior on the field measured better on the tuning stacks (docs/join.md)
    stack_in_domain = {"flatfield": 0.2}
    stage2_smooth = "frozen"
    option_names = ("darkfield",)
    # a specimen is local, at its prior's scale; the illumination is one field for the whole stack
    tiled = True
    shared_across_planes = True
    DARKFIELDS = ("scalar", "field", "none")

    def __init__(self, darkfield: str = "scalar") -> None:
        super().__init__()
        if darkfield not in self.DARKFIELDS:
            raise ValueError(f"darkfield must be one of {', '.join(self.DARKFIELDS)}, not {darkfield!r}")
        self.darkfield = darkfield

    def channels_problem(self, channels: int) -> str:
        return (
            f"flat-field correction works on one channel; this image has {channels}: split the channels "
            "(each channel has its own illumination) and correct them one by one"
        )

    def prior_problem(self, comp: Component, channels: int, label: str) -> str | None:
        problem = super().prior_problem(comp, channels, label)
        if problem is None and channels != 1:
            return (
                f"the {comp.name} prior {label!r} makes colour images; flat-field correction needs a grey prior "
                "(e.g. the bundled 'nuclei', or one trained with `train gan` on your images)"
            )
        return problem

    def init_extra(self, groups, image):
        # the dark offset starts at the darkest percentile: below it no pixel can be explained
        lo = float(torch.quantile(image.flatten()[:: max(1, image.numel() // 100_000)], 0.005))
        extra = {"log_gain": torch.zeros(groups)}
        if self.darkfield == "scalar":
            extra["dark"] = torch.full((groups, 1, 1, 1), 0.5 * lo)
        elif self.darkfield == "field":
            extra["dark"] = torch.full((groups, 1, 4, 4), 0.5 * lo)
        return extra

    def _dark(self, extra, group, size):
        if self.darkfield == "none":
            return 0.0
        d = extra["dark"][group]
        if d.shape[-1] > 1:
            d = F.interpolate(d, size=size, mode="bicubic", align_corners=True)
        return d

    def compose(self, parts, extra, group):
        x, f = parts["specimen"], parts["flatfield"]
        gain = extra["log_gain"][group].exp()[:, None, None, None]
        return gain * f * x + self._dark(extra, group, x.shape[-2:])

    #: side of the grid on which a stack's mean plane is compared with the field, and the blur
    #: (a fraction of the side) that both get first, as the blurred-image baseline does
    STACK_GRID = 64
    STACK_BLUR = 1 / 8

    def _blur(self, x: torch.Tensor) -> torch.Tensor:
        sigma = self.STACK_BLUR * x.shape[-1]
        r = int(min(3 * sigma, x.shape[-1] - 1))
        t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        k = k / k.sum()
        x = F.pad(x, (r, r, r, r), mode="reflect")
        x = F.conv2d(x, k.view(1, 1, 1, -1))
        return F.conv2d(x, k.view(1, 1, -1, 1))

    #: planes whose fine detail correlates more than this (mean over pairs) show the same content,
    #: a time-lapse or z-stack of one field of view: their mean keeps the specimen, not the field
    SHARED_CONTENT = 0.3

    def group_stats(self, planes, groups):
        # planes that share a field share its expectation: where the specimens vary from plane to
        # plane, their mean tends to a constant and the mean plane to gain·F + D (BaSiC's premise).
        # A group of one plane is its own blurred image, which holds the same premise over space:
        # the blur baseline's, for a specimen spread evenly at the scale of the field
        n_groups = max(groups) + 1
        k = self.STACK_GRID
        idx = np.asarray(groups)
        grids, corr = [], []
        for g in range(n_groups):
            small = F.adaptive_avg_pool2d(
                planes[torch.from_numpy(np.flatnonzero(idx == g))][:, :1].float(), k
            )
            grids.append(self._blur(small.mean(0, keepdim=True))[0])
            corr.append(_detail_correlation(small - self._blur(small)))
        content = torch.tensor(corr)
        valid = content < self.SHARED_CONTENT  # one plane: 0, no pairs to correlate
        return {"grid": torch.stack(grids), "valid": valid, "shared_content": content}

    def group_loss(self, smooth, stats):
        f = smooth["flatfield"]  # (R, G, 1, s, s)
        r, g = f.shape[:2]
        k = self.STACK_GRID
        fk = self._blur(F.adaptive_avg_pool2d(f.reshape(r * g, 1, *f.shape[-2:]), k)).view(r, g, -1)
        m = stats["grid"].to(f.device).view(1, g, -1).expand(r, -1, -1)
        # the best gain in closed form (least squares through 0: with the dark offset as a free
        # term too, the offset drifted and the field got worse); the misfit is relative to the mean
        # plane's own variation, 0 when the field explains it exactly and about 1 for a flat field
        a = (fk * m).sum(-1, keepdim=True) / fk.square().sum(-1, keepdim=True).clamp_min(1e-12)
        mc = m - m.mean(-1, keepdim=True)
        mis = (a * fk - m).square().sum(-1) / mc.square().sum(-1).clamp_min(1e-12)
        valid = stats["valid"].to(f.device).float()
        return (mis * valid).sum(1) / valid.sum().clamp_min(1)

    def dark_map(self, extra: dict[str, torch.Tensor], group: int, size: tuple[int, int]) -> np.ndarray:
        """The dark offset of ``group`` as a ``(1, H, W)`` map (0 with ``darkfield='none'``)."""
        if self.darkfield == "none":
            return np.zeros((1, *size), np.float32)
        d = self._dark(extra, torch.tensor([group]), size)
        return np.broadcast_to(d[0].detach().cpu().numpy(), (1, *size)).astype(np.float32)

    def full_resolution_extra(self, extra, group, size):
        return {"dark": self.dark_map(extra, group, size)}

    def extra_metadata(self, extra):
        return {"gain": [round(float(v), 5) for v in extra["log_gain"].exp()]}

    def full_resolution(self, image, smooth, extra):
        f = np.maximum(smooth["flatfield"][:1], self.components[1].floor)
        f = f / f.mean()
        dark = np.broadcast_to(np.asarray(extra["dark"], np.float32), f.shape)
        return {
            "corrected": ((image - dark) / f).astype(np.float32),
            "flatfield": f.astype(np.float32),
            "darkfield": np.array(dark, np.float32),
        }


FORWARD_MODELS: dict[str, type[ForwardModel]] = {m.name: m for m in (Intrinsic, FlatField)}


def forward_model(name: str, **options: object) -> ForwardModel:
    """An instance of the forward model ``name`` (``intrinsic`` or ``flatfield``)."""
    if name not in FORWARD_MODELS:
        raise ValueError(f"unknown forward model {name!r}: choose one of {', '.join(FORWARD_MODELS)}")
    return FORWARD_MODELS[name](**options)
