"""The "GLEAN super-resolution" dock widget (×8 / ×16 with a StyleGAN2 latent bank)."""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
from magicgui.widgets import ComboBox, Container, FileEdit, FloatSpinBox, Label
from napari.utils.notifications import show_error, show_warning

from ..engines import glean
from ..engines.base import InputError
from ..models import card
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

__all__ = ["GleanWidget", "glean_inputs"]

EXPLAIN = (
    "×8 or ×16 in one pass: the detail comes from the latent bank's domain (bundled: fluorescence "
    "nuclei). A plausible picture, not a measurement; use it on images of that domain."
)


def glean_inputs(layer: Any, **params: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Check the widget's layer choice; ``(data, engine params)``. Raises :class:`InputError`."""
    layer = image_layer(layer)
    return layer_array(layer), {"channel_axis": -1 if layer.rgb else None, **params}


class GleanWidget(RunControls, ImageChoices, Container):
    """GLEAN super-resolution of the selected image: adds ``<name>_glean_x8`` (or ``_x16``) over it."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.runner = EngineRunner(napari_viewer, self._set_state)
        d = glean.GleanParams()
        self.about = Label(
            value=EXPLAIN,
            tooltip="GLEAN: an encoder reads the small image and steers a pretrained StyleGAN2 (the "
            "latent bank) that supplies the detail; a decoder blends the two",
        )
        self.about.native.setWordWrap(True)
        self.image = ComboBox(
            label="image",
            choices=self._image_choices,
            nullable=True,
            tooltip="the small Image layer to enlarge (a 2-D image, or a stack done plane by plane). The result "
            "is added as a new layer over it; the input is not changed",
        )
        self.scale = ComboBox(
            label="enlarge by",
            choices=list(glean.SCALES),
            value=d.scale,
            tooltip="how many times more pixels per side the result has: 8 or 16. Each factor has its "
            "own model; the chosen model file must be made for this factor",
        )
        self.model_file = FileEdit(
            label="model file",
            mode="r",
            filter="*.pt *.pth",
            value="",
            tooltip="empty: the bundled glean-nuclei-x8 or -x16 (fluorescence nuclei). Or a model made by "
            "`napari-genprior train glean` on images like yours: the detail comes from what it was "
            "trained on",
        )
        self.model_info = wrapping_label(
            "which model runs, and what its model card measured on held-out images"
        )
        self.overlap = FloatSpinBox(
            label="tile overlap",
            min=0.0,
            max=0.5,
            step=0.05,
            value=d.tile_overlap,
            tooltip="large images are enlarged in tiles of the model's input size; this is the fraction "
            "of a tile that neighbouring tiles share (0 to 0.5, at least 2 input pixels), blended so "
            "no seams show. Raise it if seams show; lower it for speed",
        )
        self.device = device_box()
        self.run_button = run_button()
        self.status = status_label()
        self.extend(
            [
                self.about,
                self.image,
                self.scale,
                self.model_file,
                self.model_info,
                self.overlap,
                self.device,
                self.run_button,
                self.status,
            ]
        )
        self.run_button.changed.connect(self._on_button)
        self.scale.changed.connect(self._show_model)
        self.model_file.changed.connect(self._show_model)
        self._show_model()
        self._watch_layers()

    def _show_model(self, _v: Any = None) -> None:
        """Say which model will run and what its card measured."""
        model = self.params()["model"]
        if model:
            self.model_info.value = "model: the file above"
            return
        name = glean.default_model(int(self.scale.value))
        try:
            m = card(name).get("metrics", {})
        except KeyError:
            self.model_info.value = f"no bundled {name}: choose a model file"
            return
        if "glean_psnr" in m:
            # say what data the number is on: the card's held-out set is made like its training data
            data = "synthetic" if "synthetic" in str(card(name).get("data", "")) else "real"
            self.model_info.value = (
                f"{name}: PSNR {m['glean_psnr']:.1f} dB (bicubic {m['bicubic_psnr']:.1f} dB) on held-out "
                f"{data} images{'; on real nuclei far less (docs/glean.md)' if data == 'synthetic' else ''}"
            )
        else:
            self.model_info.value = name

    def params(self) -> dict[str, Any]:
        """The engine parameters the widget's current values stand for."""
        f = str(self.model_file.value) if self.model_file.value else ""
        return {
            "model": f if f not in ("", ".") else None,
            "scale": int(self.scale.value),
            "tile_overlap": float(self.overlap.value),
        }

    def run(self) -> bool:
        """Start a run with the current values. Returns False (with a message) if it cannot start."""
        if self.runner.running:
            show_warning("GLEAN is already running: press Cancel or wait for it to finish")
            return False
        try:
            data, params = glean_inputs(self.image.value, **self.params())
            gen = engine_run(
                lambda plane, _pos, _rng: glean.run(
                    plane, params, device=self.device.value, cancel=self.runner.cancel_requested
                ),
                data,
                params["channel_axis"],
            )
        except InputError as err:
            show_error(str(err))
            self.status.value = f"Error: {err}"
            return False
        s = int(params["scale"])
        self.runner.start(gen, source=self.image.value, title=f"GLEAN ×{s}", zoom=float(s))
        return True
