"""The "Invertible Rescaling" dock widget (IRN: learned downscale that can be inverted)."""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Label, SpinBox
from napari.utils.notifications import show_error, show_warning

from ..engines import irn
from ..engines.base import InputError
from ..models import card, weights_path
from .runner import (
    EngineRunner,
    ImageChoices,
    RunControls,
    device_box,
    engine_run,
    image_layer,
    layer_array,
    run_button,
    status_label,
    wrapping_label,
)

__all__ = ["IrnWidget", "irn_inputs"]

EXPLAIN = (
    "down shrinks an image so that up can restore it. up restores images that down produced; "
    "it is not a general super-resolver for other small images."
)
#: the mode box's words for the engine's modes
MODE_LABELS = {"down": "shrink (down)", "up": "restore (up)", "roundtrip": "round trip (down, then up)"}


def irn_inputs(layer: Any, mode: str, **params: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Check the widget's choices; ``(data, engine params)``. Raises :class:`InputError`.

    For ``up``, the value range and full-resolution shape that ``down`` stored in the layer's
    metadata (``irn``) are passed on, and the scale must match the one ``down`` used.
    """
    layer = image_layer(layer)
    data = layer_array(layer)
    p: dict[str, Any] = {"mode": mode, "channel_axis": -1 if layer.rgb else None, **params}
    if mode == "up":
        spatial = data.shape[-3:-1] if layer.rgb else data.shape[-2:]
        stored = irn.up_record((layer.metadata or {}).get("irn"), spatial)
        if not stored:
            show_warning(
                irn.NO_RECORD.format(
                    name=repr(layer.name), hint="use up on the *_irn_lr layer that down produced."
                )
            )
        if stored:
            if int(stored["scale"]) != int(p["scale"]):
                raise InputError(
                    f"{layer.name!r} was made by down at ×{stored['scale']}: set scale to {stored['scale']}"
                )
            p["value_range"] = tuple(stored["value_range"])
            p["hr_shape"] = tuple(stored["hr_shape"])
    return data, p


class IrnWidget(RunControls, ImageChoices, Container):
    """Invertible Image Rescaling: down (HR → LR), up (LR → HR) or a round trip of the selected layer."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.runner = EngineRunner(napari_viewer, self._set_state)
        self.about = Label(
            value=EXPLAIN,
            tooltip="IRN (Invertible Image Rescaling) learns a downscaling that keeps what it drops in "
            "a random code, so that up can undo it; it restores its own LR images only",
        )
        self.about.native.setWordWrap(True)
        self.image = ComboBox(
            label="image",
            choices=self._image_choices,
            nullable=True,
            tooltip="the Image layer to work on: for restore (up), the *_irn_lr layer that shrink "
            "(down) made. Results are added as new layers over it; the input is not changed",
        )
        self.mode = ComboBox(
            label="mode",
            choices=[(MODE_LABELS[m], m) for m in irn.MODES],
            value="down",
            tooltip="shrink (down): a smaller image, for storage or display, that restore can undo. "
            "restore (up): the full-size image back from a layer that shrink made. round trip: both, "
            "to see what is lost",
        )
        self.scale = ComboBox(
            label="scale",
            choices=list(irn.SCALES),
            value=2,
            tooltip="how many times fewer pixels per side the small image has (2 or 4); restore must "
            "use the scale its layer was shrunk with",
        )
        self.weights = FileEdit(
            label="model file",
            mode="r",
            filter="*.pt *.pth",
            value="",
            tooltip="empty: the bundled model for the scale (irn-x2 or irn-x4). Or a network file "
            "(weights) made by `napari-genprior train irn`, or one in the official IRN layout",
        )
        self.model_info = wrapping_label(
            "which model runs, and what its model card measured on held-out images"
        )
        self.samples = SpinBox(
            label="draws",
            min=1,
            max=64,
            value=1,
            tooltip="restore, round trip: how many versions to draw (samples of the random code z), 1 "
            "to 64; 2 or more add an uncertainty layer, their per-pixel spread. Needs randomness above "
            "0 (at 0 every draw is the same)",
        )
        self.tau = FloatSpinBox(
            label="randomness",
            min=0.0,
            max=2.0,
            step=0.1,
            value=1.0,
            tooltip="tau, the spread of the random code z drawn when restoring, 0 to 2: 1 as in the "
            "paper, 0 the average code (one answer, no spread). Set from the model card when the "
            "model changes; change it only to study the draws",
        )
        self.device = device_box()
        self.seed = SpinBox(
            label="random seed",
            min=0,
            max=2**31 - 1,
            value=0,
            tooltip="the seed of the draws (0 to 2147483647): the same seed on the same device gives "
            "the same result",
        )
        self.run_button = run_button()
        self.status = status_label()
        self.extend(
            [
                self.about,
                self.image,
                self.mode,
                self.scale,
                self.weights,
                self.model_info,
                self.samples,
                self.tau,
                self.device,
                self.seed,
                self.run_button,
                self.status,
            ]
        )
        self.run_button.changed.connect(self._on_button)
        self.mode.changed.connect(self._update_visibility)
        self.scale.changed.connect(self._show_model)
        self.weights.changed.connect(self._show_model)
        self._show_model()
        self._update_visibility()
        self._watch_layers()

    def _show_model(self, _v: Any = None) -> None:
        """Say which model will run and what its card measured; set τ to the card's recommendation."""
        w = self.params()["weights"]
        if w:
            self.model_info.value = "model: the checkpoint above"
            self.tau.value = irn.recommended_tau(w)
            return
        name = f"irn-x{self.scale.value}"
        path = weights_path(name)
        if path is None:
            self.model_info.value = f"no bundled {name}: choose a checkpoint (weights)"
            return
        tau = irn.recommended_tau(path)
        self.tau.value = tau
        try:
            info = card(name)
        except KeyError:  # weights without a model card
            info = {}
        mean = info.get("metrics", {}).get("mean", {})
        real = info.get("real_held_out", {})
        key = "irn_psnr_tau0" if tau == 0 else "irn_psnr_tau1"
        if key in mean:
            # the number for data like a microscopist's first: real held-out images, then the card's
            # own held-out set (photographs and synthetic fluorescence)
            text = f"{name}: round trip at tau={tau:g}"
            if "irn_psnr" in real:
                text += f", real held-out microscopy {real['irn_psnr']:.1f} dB (bicubic {real['bicubic_psnr']:.1f})"
            text += f"; photographs + synthetic {mean[key]:.1f} dB (bicubic {mean['bicubic_psnr']:.1f})"
            self.model_info.value = text
        else:
            self.model_info.value = name

    def _update_visibility(self, _v: Any = None) -> None:
        # down draws nothing: samples and tau only mean something when restoring
        restoring = self.mode.value != "down"
        self.samples.visible = self.tau.visible = restoring

    def params(self) -> dict[str, Any]:
        """The engine parameters the widget's current values stand for."""
        w = str(self.weights.value) if self.weights.value else ""
        restoring = self.mode.value != "down"
        return {
            "scale": int(self.scale.value),
            "weights": w if w not in ("", ".") else None,
            "samples": int(self.samples.value) if restoring else 1,
            "tau": float(self.tau.value),
            "seed": int(self.seed.value),
        }

    def run(self) -> bool:
        """Start a run with the current values. Returns False (with a message) if it cannot start."""
        if self.runner.running:
            show_warning("IRN is already running: press Cancel or wait for it to finish")
            return False
        try:
            data, params = irn_inputs(self.image.value, self.mode.value, **self.params())
            gen = engine_run(
                lambda plane, _pos, rng: irn.run(
                    plane,
                    params if rng is None else {**params, "value_range": rng},
                    device=self.device.value,
                    cancel=self.runner.cancel_requested,
                ),
                data,
                params["channel_axis"],
                # every plane of a lazy stack shares one intensity scale, so one record restores all
                shared_range=params["mode"] != "up" or "value_range" not in params,
            )
        except InputError as err:
            show_error(str(err))
            self.status.value = f"Error: {err}"
            return False
        s = int(params["scale"])
        zoom = {"down": 1.0 / s, "up": float(s), "roundtrip": 1.0}[self.mode.value]
        self.runner.start(gen, source=self.image.value, title=f"IRN {self.mode.value} ×{s}", zoom=zoom)
        return True
