"""The "Decompose (JoIN)" dock widget, also opened as "Flat-field correction (JoIN)"."""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, PushButton, SpinBox
from napari.utils.notifications import show_error, show_warning

from ..engines import join
from ..engines.base import DEVICES, InputError
from ..engines.prior import bundled_priors
from ..physics.composition import FORWARD_MODELS
from .runner import EngineRunner, ImageChoices, RunControls, image_layer, status_label

__all__ = ["JoinWidget", "flatfield_widget", "join_inputs"]

EXPLAIN = {
    "intrinsic": "intrinsic: image = albedo × shading (the image is taken as linear; gamma 2.2 for sRGB photos). "
    "Outputs: albedo, shading, reconstruction, residual and the pixels the model cannot explain.",
    "flatfield": "flatfield: image = flat-field × specimen + dark-field. A stack shares one field (per-plane "
    "turns that off). Outputs: corrected specimen, flat-field (mean 1), dark-field, reconstruction, residual "
    "and the pixels the model cannot explain.",
}


def join_inputs(layer: Any, **params: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Check the widget's layer choice; ``(data, engine params)``. Raises :class:`InputError`."""
    layer = image_layer(layer)
    return np.asarray(layer.data), {"channel_axis": -1 if layer.rgb else None, **params}


class JoinWidget(RunControls, ImageChoices, Container):
    """Decompose the selected image into its components with JoIN (joint GAN inversion)."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, forward: str = "intrinsic") -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.runner = EngineRunner(napari_viewer, self._set_state)
        d = join.JoinParams()
        self.about = Label(value="")
        self.about.native.setWordWrap(True)
        self.image = ComboBox(label="image", choices=self._image_choices, nullable=True)
        self.forward = ComboBox(label="forward model", choices=list(FORWARD_MODELS), value=forward)
        names = bundled_priors()
        self.prior_boxes = [ComboBox(label=f"prior {i + 1}", choices=names) for i in range(2)]
        self.prior_files = [
            FileEdit(
                label="  or file",
                mode="r",
                filter="*.pt *.pth",
                value="",
                tooltip="a checkpoint of "
                "`napari-genprior train gan` or a stylegan2-pytorch generator; overrides the choice above",
            )
            for _ in range(2)
        ]
        self.steps = SpinBox(label="stage-1 steps", min=1, max=100_000, value=d.steps)
        self.finetune = SpinBox(
            label="fine-tune steps",
            min=0,
            max=100_000,
            value=d.finetune_steps,
            tooltip="stage 2; 0 turns it off",
        )
        self.restarts = SpinBox(label="restarts", min=1, max=16, value=d.restarts)
        self.gamma = FloatSpinBox(
            label="gamma",
            min=0.1,
            max=5.0,
            step=0.1,
            value=d.gamma,
            tooltip="1: linear data; 2.2: sRGB photographs",
        )
        self.darkfield = ComboBox(label="dark-field", choices=["scalar", "field", "none"], value=d.darkfield)
        self.per_plane = CheckBox(label="per-plane field", value=False, tooltip="stacks: one field per plane")
        self.stack_weight = FloatSpinBox(
            label="stack term",
            min=0.0,
            max=10.0,
            step=0.1,
            value=d.stack_weight,
            tooltip="shared field: how much the blurred mean of all planes (of one plane: the "
            "blurred plane) steers the field; used when the tiles leave part of the input out "
            "(a 512² image, a stack of 8); 0: off",
        )
        self.device = ComboBox(label="device", choices=list(DEVICES), value="auto")
        self.seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=d.seed)
        self.preview_every = SpinBox(label="preview every", min=0, max=10_000, value=d.preview_every)
        self.run_button = PushButton(text="Run")
        self.status = status_label()
        self.extend(
            [
                self.about,
                self.image,
                self.forward,
                self.prior_boxes[0],
                self.prior_files[0],
                self.prior_boxes[1],
                self.prior_files[1],
                self.steps,
                self.finetune,
                self.restarts,
                self.gamma,
                self.darkfield,
                self.per_plane,
                self.stack_weight,
                self.device,
                self.seed,
                self.preview_every,
                self.run_button,
                self.status,
            ]
        )
        self.run_button.changed.connect(self._on_button)
        self.forward.changed.connect(self._on_forward)
        self._on_forward()
        self._watch_layers()

    def components(self) -> tuple[str, ...]:
        return tuple(c.name for c in FORWARD_MODELS[self.forward.value].components)

    def _on_forward(self, _v: Any = None) -> None:
        model = FORWARD_MODELS[self.forward.value]
        self.about.value = EXPLAIN[model.name]
        for box, comp in zip(self.prior_boxes, model.components):
            box.label = f"{comp.name} prior"
            if comp.prior in box.choices:
                box.value = comp.prior
        self.gamma.visible = model.name == "intrinsic"
        self.darkfield.visible = self.per_plane.visible = model.name == "flatfield"
        self.stack_weight.visible = model.name == "flatfield"

    def params(self) -> dict[str, Any]:
        """The engine parameters the widget's current values stand for."""
        priors = {}
        for comp, box, f in zip(self.components(), self.prior_boxes, self.prior_files):
            path = str(f.value) if f.value else ""
            priors[comp] = path if path not in ("", ".") else box.value
        p: dict[str, Any] = {
            "forward": self.forward.value,
            "priors": priors,
            "steps": int(self.steps.value),
            "finetune_steps": int(self.finetune.value),
            "restarts": int(self.restarts.value),
            "seed": int(self.seed.value),
            "preview_every": int(self.preview_every.value),
        }
        if self.forward.value == "intrinsic":
            p["gamma"] = float(self.gamma.value)
        else:
            p["darkfield"] = self.darkfield.value
            p["per_plane"] = bool(self.per_plane.value)
            p["stack_weight"] = float(self.stack_weight.value)
        return p

    def run(self) -> bool:
        """Start a run with the current values. Returns False (with a message) if it cannot start."""
        if self.runner.running:
            show_warning("JoIN is already running: press Cancel or wait for it to finish")
            return False
        try:
            data, params = join_inputs(self.image.value, **self.params())
            gen = join.run(data, params, device=self.device.value, cancel=self.runner.cancel_requested)
        except InputError as err:
            show_error(str(err))
            self.status.value = f"Error: {err}"
            return False
        self.runner.start(gen, source=self.image.value, title=f"JoIN {self.forward.value}")
        return True


def flatfield_widget(napari_viewer: napari.viewer.Viewer) -> JoinWidget:
    """The JoIN widget with the flat-field model selected (Layers ▸ Filter ▸ Flat-field correction)."""
    return JoinWidget(napari_viewer, forward="flatfield")
