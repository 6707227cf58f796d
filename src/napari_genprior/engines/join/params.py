"""JoIN's parameters (:class:`JoinParams`), their validation, and the constants the stages share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ...physics.composition import FORWARD_MODELS, ForwardModel, forward_model
from ..base import PRECISIONS, InputError, params_from

DISTANCES = ("l1+lap", "mse+lap", "mse")
#: latent spaces: W+ (one latent per layer), W (one for all layers), or each component's own default
LATENTS = ("auto", "w+", "w")
#: truncation of the restarts' starting latents (the JoIN code's ψ for w̄)
RESTART_PSI = 0.7
#: restarts run side by side for this fraction of the stage-1 steps; the best continues
PROBE_FRACTION = 0.2
#: a shared flat-field is solved on tiles covering at least 1/COVERAGE of the plane at the prior's
#: scale (max_tiles of them); planes with more tile positions are downscaled first
COVERAGE = 2
#: what stage 2 does to a smooth component: fine-tune its weights, move its latent, or leave it
STAGE2_SMOOTH = ("auto", "weights", "latent", "frozen")
#: residuals beyond this many robust standard deviations are marked unexplained
UNEXPLAINED_K = 4.0
METRICS = ("auto", "euclidean", "mahalanobis")
#: JoIN's criterion for ``auto`` precision (``runtime.resolve_precision``'s ``needs``): bfloat16 on
#: any CPU with native bfloat16 (AVX-512 BF16 or AMX), where its generators ran 1.3–1.5× faster
#: (docs/join.md); float32 elsewhere
PRECISION_NEEDS = "bf16"
#: how a flat-field stack sharing one field is solved (see ``JoinParams.stack_method``)
STACK_METHODS = ("auto", "statistics", "priors")


@dataclass
class JoinParams:
    """Parameters of one JoIN run. Shapes are ``(…, Y, X[, C])`` as for every engine.

    - ``forward``: ``intrinsic`` (I = A·S) or ``flatfield`` (I = F·X + D).
    - ``priors``: ``{component: bundled name or checkpoint path}``; missing ones use the model's
      defaults (albedo/shading; nuclei/illumination).
    - ``steps``: stage-1 steps; ``finetune_steps``: stage-2 steps (0: stage 2 off); ``restarts``.
    - ``lr`` (stage 1, Adam on the latents, with the projector's ramp), ``finetune_lr`` (stage 2).
    - ``distance``: ``mse+lap`` (pixel MSE + Laplacian-pyramid L1) or ``mse``.
    - ``in_domain``: weight of ‖w − w̄‖², one for all components or ``{component: weight}``
      (``None``, or a component left out: the forward model's measured default); ``adversarial``: weight of each discriminator term in
      stage 2 (0: plain fine-tuning); ``support``: support latents per prior in stage 2.
    - ``gamma``: intrinsic only, I_lin = I^gamma (2.2 for sRGB photographs, 1 for linear data).
    - ``darkfield``: flat-field only, ``scalar`` | ``field`` | ``none``.
    - ``per_plane``: flat-field stacks get one field per plane instead of one shared field.
    - ``max_tiles``: flat-field, the most specimen tiles solved at once. A shared field is solved
      on that many tiles spread over the planes and positions (the rest are "not fitted", label 3
      of ``unexplained``); ``per_plane`` downscales the planes until all their tiles fit. The
      field and the corrected specimen always come out at full resolution for every plane.
    - ``stack_weight``: flat-field with a shared field, weight of the stack term: the field must
      also explain the blurred mean of all the planes (of a single plane: the blurred plane). It
      applies only when the tiles leave part of the input unsolved (more tile positions than
      ``max_tiles``: a 512² plane, a stack of 8 × 256²) and the planes show different content
      (not a time-lapse of one field of view); 0 turns it off. ``per_plane`` has no such term.
    - ``stack_method``: flat-field stacks sharing one field: ``statistics`` (BaSiC-style statistics
      of the stack in closed form, :mod:`napari_genprior.engines.flatstack`: a trimmed mean plane,
      smoothed, and the dark offset from how the background follows the field; seconds, no prior),
      ``priors`` (the joint GAN inversion below), or ``auto``: statistics, unless the planes show
      the same content (a time-lapse of one field of view), whose mean holds the specimen.
      Single images always use the priors.
    - ``stage2_smooth``: what stage 2 does to the smooth components (shading, field): ``weights``
      (fine-tune their generators too), ``latent`` (keep the prior's weights and go on moving the
      latent, with stage 1's learning rate and ramp and its in-domain penalty) or ``frozen``;
      ``auto``: the forward model's choice (intrinsic ``latent``, flat-field ``frozen``).
    - ``in_domain_metric``: how the in-domain penalty measures w − w̄: ``euclidean`` (‖w − w̄‖²),
      ``mahalanobis`` (under the covariance of the prior's mapped latents, rescaled so a typical
      sample scores the same: free along the directions the prior varies in, firm across them), or
      ``auto``: each component's choice (the flat-field's field mahalanobis, the rest euclidean).
    - ``precision``: of the generators in stages 1 and 2: ``auto`` (bfloat16 on a CPU that has
      it natively, else float32), ``float32`` or ``bfloat16``; losses and the final decode are
      float32.
    """

    forward: str = "intrinsic"
    priors: dict[str, str] = field(default_factory=dict)
    steps: int = 300
    finetune_steps: int = 50
    restarts: int = 3
    lr: float = 0.1
    finetune_lr: float = 3e-4
    distance: str = "l1+lap"
    latent: str = "auto"
    probe: float = PROBE_FRACTION
    in_domain: float | dict[str, float] | None = None
    adversarial: float = 1e-3
    support: int = 4
    gamma: float = 1.0
    darkfield: str = "scalar"
    per_plane: bool = False
    max_tiles: int = 8
    stack_weight: float = 0.3
    stack_method: str = "auto"
    stage2_smooth: str = "auto"
    in_domain_metric: str = "auto"
    precision: str = "auto"
    seed: int = 0
    preview_every: int = 10
    channel_axis: int | str | None = "auto"

    @classmethod
    def from_any(cls, params: JoinParams | dict[str, Any] | None) -> JoinParams:
        return params_from(cls, params, "JoIN")

    def validate(self) -> None:
        if self.forward not in FORWARD_MODELS:
            raise InputError(
                f"unknown forward model {self.forward!r}: choose one of {', '.join(FORWARD_MODELS)}"
            )
        comps = {c.name for c in FORWARD_MODELS[self.forward].components}
        unknown = set(self.priors or {}) - comps
        if unknown:
            raise InputError(
                f"the {self.forward} model has no component(s) {', '.join(sorted(unknown))}: "
                f"its components are {', '.join(sorted(comps))}"
            )
        if int(self.steps) < 1 or int(self.finetune_steps) < 0:
            raise InputError("steps must be >= 1 and finetune_steps >= 0 (0 turns stage 2 off)")
        if not 1 <= int(self.restarts) <= 16:
            raise InputError(f"restarts must be 1–16, not {self.restarts}")
        if self.latent not in LATENTS:
            raise InputError(f"latent must be one of {', '.join(LATENTS)}, not {self.latent!r}")
        if not 0 < self.probe <= 1:
            raise InputError("probe must be in (0, 1]: the fraction of stage 1 that all restarts run")
        if self.distance not in DISTANCES:
            raise InputError(f"distance must be one of {', '.join(DISTANCES)}, not {self.distance!r}")
        for name in ("lr", "finetune_lr"):
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be > 0")
        if any(v < 0 for v in self._in_domain_values()) or self.adversarial < 0 or int(self.support) < 0:
            raise InputError("in_domain, adversarial and support must be >= 0")
        if not (self.gamma > 0 and math.isfinite(self.gamma)):
            raise InputError(
                f"gamma must be a positive number (2.2 for sRGB, 1 for linear data), not {self.gamma}"
            )
        if self.darkfield not in ("scalar", "field", "none"):
            raise InputError(f"darkfield must be scalar, field or none, not {self.darkfield!r}")
        if int(self.max_tiles) < 1:
            raise InputError("max_tiles must be >= 1")
        if not (self.stack_weight >= 0 and math.isfinite(self.stack_weight)):
            raise InputError(
                f"stack_weight must be a number >= 0 (0: no stack term), not {self.stack_weight}"
            )
        if self.stack_method not in STACK_METHODS:
            raise InputError(
                f"stack_method must be one of {', '.join(STACK_METHODS)}, not {self.stack_method!r}"
            )
        if int(self.preview_every) < 0:
            raise InputError("preview_every must be >= 0 (0: no preview)")
        if self.stage2_smooth not in STAGE2_SMOOTH:
            raise InputError(
                f"stage2_smooth must be one of {', '.join(STAGE2_SMOOTH)}, not {self.stage2_smooth!r}"
            )
        if self.in_domain_metric not in METRICS:
            raise InputError(
                f"in_domain_metric must be one of {', '.join(METRICS)}, not {self.in_domain_metric!r}"
            )
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")

    def _in_domain_values(self) -> list[float]:
        if self.in_domain is None:
            return []
        return list(self.in_domain.values()) if isinstance(self.in_domain, dict) else [self.in_domain]

    def in_domain_of(self, model: ForwardModel, stacked: bool = False) -> dict[str, float]:
        """The in-domain weight of each of ``model``'s components (``stacked``: the stack term of
        :meth:`ForwardModel.group_loss` is in use, which has its own defaults)."""
        if self.in_domain is not None and not isinstance(self.in_domain, dict):
            return {c.name: float(self.in_domain) for c in model.components}  # one weight for all
        defaults = {c.name: model.in_domain if c.in_domain is None else c.in_domain for c in model.components}
        if stacked:
            defaults.update(model.stack_in_domain)
        return {k: float((self.in_domain or {}).get(k, v)) for k, v in defaults.items()}

    def metric_of(self, model: ForwardModel) -> dict[str, str]:
        """The in-domain metric of each of ``model``'s components: euclidean or mahalanobis."""
        if self.in_domain_metric != "auto":
            return {c.name: self.in_domain_metric for c in model.components}
        return {c.name: c.metric for c in model.components}

    def stage2_smooth_of(self, model: ForwardModel) -> str:
        """What stage 2 does to ``model``'s smooth components: weights, latent or frozen."""
        return model.stage2_smooth if self.stage2_smooth == "auto" else self.stage2_smooth

    def model(self) -> ForwardModel:
        """The forward model, built with its options (``gamma``, ``darkfield``) from these parameters."""
        # an unknown model gets no options, so forward_model's own error names the choices
        names = FORWARD_MODELS[self.forward].option_names if self.forward in FORWARD_MODELS else ()
        return forward_model(self.forward, **{name: getattr(self, name) for name in names})
