"""The "Deep Image Prior" dock widget."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, SpinBox
from napari.layers import Image, Labels, Shapes
from napari.utils.notifications import show_error, show_warning

from ..engines import dip
from ..engines.base import InputError
from .runner import (
    EngineRunner,
    ImageChoices,
    RunControls,
    device_box,
    engine_run,
    full_resolution,
    image_layer,
    layer_array,
    run_button,
    status_label,
)

__all__ = ["DipWidget", "dip_inputs"]

#: the task box's words for the engine's tasks
TASK_LABELS = {
    "denoise": "remove noise",
    "inpaint": "fill in missing pixels",
    "sr": "enlarge (super-resolution)",
}


@dataclass
class DipInputs:
    image: np.ndarray
    mask: np.ndarray | None
    params: dict[str, Any]


def _labels_on_image(layer: Labels, image: Image, spatial: tuple[int, int]) -> np.ndarray:
    """A Labels layer's data on the image's ``(Y, X)`` pixel grid, placed through world coordinates.

    A mask with the image's shape and placement is used as it is. Otherwise each image pixel takes
    the label under its centre in the viewer (nearest neighbour), so a full-frame mask works for a
    translated crop, and a mask drawn at another pixel size lands where it is shown; image pixels
    the mask does not cover are kept (not missing). Leading (plane) axes are kept as they are.
    """
    data = np.asarray(layer.data)
    l_scale, l_trans = np.asarray(layer.scale[-2:], float), np.asarray(layer.translate[-2:], float)
    i_scale, i_trans = np.asarray(image.scale[-2:], float), np.asarray(image.translate[-2:], float)
    same_place = np.allclose(l_scale, i_scale) and np.allclose(l_trans, i_trans)
    if data.ndim < 2 or (same_place and data.shape[-2:] == tuple(spatial)):
        return data
    idx = []
    for ax in range(2):
        world = np.arange(spatial[ax]) * i_scale[ax] + i_trans[ax]
        idx.append(np.floor((world - l_trans[ax]) / l_scale[ax] + 0.5).astype(np.int64))
    inside_y = (idx[0] >= 0) & (idx[0] < data.shape[-2])
    inside_x = (idx[1] >= 0) & (idx[1] < data.shape[-1])
    if not inside_y.any() or not inside_x.any():
        raise InputError(
            f"mask {layer.name!r} does not overlap image {image.name!r} in the viewer: move it over "
            "the image (its scale and translate place it), or give it the image's shape"
        )
    iy = idx[0].clip(0, data.shape[-2] - 1)
    ix = idx[1].clip(0, data.shape[-1] - 1)
    out = data[..., iy[:, None], ix[None, :]]
    return np.where(inside_y[:, None] & inside_x[None, :], out, 0).astype(data.dtype)


def rasterize_mask(layer: Labels | Shapes, image: Image, spatial: tuple[int, int]) -> np.ndarray:
    """A Labels layer's data, or a Shapes layer drawn, on the image's ``(Y, X)`` pixel grid.

    Both are placed through world coordinates (their scale and translate against the image's).
    """
    if isinstance(layer, Labels):
        return _labels_on_image(layer, image, spatial)
    if len(layer.data) == 0:
        raise InputError(f"Shapes layer {layer.name!r} has no shapes: draw the regions to fill in first")
    # Shapes live in their own data coordinates: map them through world into the image's pixels.
    s_scale, s_trans = np.asarray(layer.scale[-2:]), np.asarray(layer.translate[-2:])
    i_scale, i_trans = np.asarray(image.scale[-2:]), np.asarray(image.translate[-2:])
    data = [((np.asarray(d)[:, -2:] * s_scale + s_trans) - i_trans) / i_scale for d in layer.data]
    drawn = Shapes(data, shape_type=layer.shape_type).to_labels(labels_shape=spatial)
    return (np.asarray(drawn) > 0).astype(np.uint8)


def dip_inputs(
    image: Any,
    task: str,
    mask: Any = None,
    *,
    channels_first: bool = False,
    **params: Any,
) -> DipInputs:
    """Check the widget's choices and turn layers into engine inputs. Raises :class:`InputError`."""
    image = image_layer(image)
    data = layer_array(image)
    if image.rgb:
        channel_axis: int | None = -1
    elif channels_first:
        if data.ndim < 3:
            raise InputError("'axis 0 is channels' needs a 3-D or 4-D image")
        channel_axis = 0
    else:
        channel_axis = None
    m = None
    if task == "inpaint":
        if mask is None:
            raise InputError(
                "inpainting needs a mask: add a Labels or Shapes layer marking the missing pixels"
            )
        spatial = data.shape[-3:-1] if image.rgb else data.shape[-2:]
        m = rasterize_mask(mask, image, spatial)
    return DipInputs(data, m, {"task": task, "channel_axis": channel_axis, **params})


def _plane_mask(mask: np.ndarray | None, pos: tuple[int, ...]) -> np.ndarray | None:
    """The mask of the plane at ``pos`` (a lazy stack's leading index): a ``(Y, X)`` mask serves
    every plane; one with the stack's leading axes gives each plane its own."""
    if mask is None or not pos or mask.ndim <= 2:
        return mask
    return mask[pos]


class DipWidget(RunControls, ImageChoices, Container):
    """Deep Image Prior: denoise, inpaint or super-resolve the selected image layer."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.runner = EngineRunner(napari_viewer, self._set_state)
        self.image = ComboBox(
            label="image",
            choices=self._image_choices,
            nullable=True,
            tooltip="the Image layer to restore: a 2-D image, an RGB image or a stack of planes (each "
            "restored on its own). The result is added as a new layer over it; the input is not changed",
        )
        self.task = ComboBox(
            label="task",
            choices=[(TASK_LABELS[t], t) for t in dip.TASKS],
            value="denoise",
            tooltip="what to do. Deep Image Prior fits a fresh network to this one image: no training "
            "data, no downloaded weights. Remove noise; fill in the pixels a mask marks as missing "
            "(inpainting); or enlarge ×2, ×4 or ×8 (super-resolution)",
        )
        self.mask = ComboBox(
            label="missing pixels",
            choices=self._mask_choices,
            nullable=True,
            tooltip="the mask: a Labels layer (non-zero = missing) or a Shapes layer (inside a shape = "
            "missing) marking the pixels to fill in. It is placed over the image as the viewer shows it, "
            "so a mask drawn at another pixel size still lands where it is drawn",
        )
        self.scale = ComboBox(
            label="enlarge by",
            choices=list(dip.SCALES),
            value=4,
            tooltip="how many times more pixels per side the result has (2, 4 or 8). Larger factors "
            "take longer and invent more of the detail",
        )
        self.noise = ComboBox(
            label="noise type",
            choices=list(dip.NOISE_MODELS),
            value="gaussian",
            tooltip="the noise model the fit assumes. gaussian: the same spread everywhere (8-bit, "
            "colour and float images); poisson-gaussian: noise that grows with brightness (photon "
            "counts: integer data of more than 8 bits). Picked from the image when it is selected; "
            "change it when you know how your camera's noise behaves",
        )
        self.method = ComboBox(
            label="method",
            choices=[("block-matching filter (seconds)", "filter"), ("DIP network (minutes)", "dip")],
            value="filter",
            tooltip="how to denoise. The block-matching filter (default) groups similar patches "
            "and shrinks their noise together: seconds per image, and on the tuning images the "
            "network's result added nothing to it. The DIP network fits a fresh network to the image "
            "(minutes); its settings below apply to it only",
        )
        self.channels_first = CheckBox(
            text="first axis is channels",
            value=False,
            tooltip="tick for a (C, Y, X) or (C, Z, Y, X) layer whose first axis holds channels: they "
            "are restored together. Leave it off for a stack of planes (Z or T), restored one by one. "
            "RGB layers are recognised without it",
        )
        self.preset = ComboBox(
            label="preset",
            choices=list(dip.PRESETS),
            value="fast",
            tooltip="fast (default): a 32-channel network, fewer steps and bfloat16 where the CPU "
            "computes it natively: minutes on a CPU. paper: the paper's 128-channel network and step "
            "counts: slower, for comparisons with the publication",
        )
        self.iterations = SpinBox(
            label="steps",
            min=0,
            max=100_000,
            step=100,
            value=0,
            tooltip="the number of optimisation steps (iterations), 0 to 100000 (0: the preset's)",
        )
        # Shown instead of the box while stopping automatically: the preset's steps, an upper bound.
        # (magicgui's spin box cannot show a special text in its place.)
        self.iterations_auto = Label(
            label="steps",
            tooltip="stopping automatically: at most the preset's steps. Untick 'stop automatically' "
            "to run an exact number of steps",
        )
        self.auto_stop = CheckBox(
            text="stop automatically",
            value=True,
            tooltip=(
                "stop near the best step, at most the preset's steps: the network fits the image "
                "first and its noise last, so running on makes the result noisier again (denoising: "
                "stops once the residual is white noise; enlarging, filling in: once the output stops "
                "changing, ES-WMV). The chosen step is reported. Untick to set the steps yourself"
            ),
        )
        self.uncertainty = CheckBox(
            text="uncertainty layer",
            value=False,
            tooltip="also add a layer with the per-pixel spread of the last steps' results: where it "
            "is large, the restoration is less certain",
        )
        self.device = device_box()
        self.seed = SpinBox(
            label="random seed",
            min=0,
            max=2**31 - 1,
            value=0,
            tooltip="the seed of the network's random start (0 to 2147483647): the same seed on the "
            "same device gives the same result; change it to see how much the result owes to chance",
        )
        self.preview_every = SpinBox(
            label="preview every",
            min=0,
            max=10_000,
            value=10,
            tooltip="steps between preview images of the current result (0: no preview, a little "
            "faster); the canvas is redrawn at most once a second",
        )
        self.run_button = run_button()
        self.status = status_label()
        self.extend(
            [
                self.image,
                self.task,
                self.mask,
                self.scale,
                self.noise,
                self.method,
                self.channels_first,
                self.preset,
                self.iterations,
                self.iterations_auto,
                self.auto_stop,
                self.uncertainty,
                self.device,
                self.seed,
                self.preview_every,
                self.run_button,
                self.status,
            ]
        )
        self.task.changed.connect(self._update_visibility)
        self.method.changed.connect(self._update_visibility)
        self.auto_stop.changed.connect(self._update_visibility)
        for w in (self.scale, self.preset):
            w.changed.connect(self._update_iterations_text)
        self.image.changed.connect(self._on_image)
        self.run_button.changed.connect(self._on_button)
        self._update_visibility()
        self._watch_layers()

    # -- choices ---------------------------------------------------------------------------------

    def _mask_choices(self, _w: Any = None) -> list[tuple[str, Labels | Shapes]]:
        return [(lay.name, lay) for lay in self.viewer.layers if isinstance(lay, Labels | Shapes)]

    def _refresh_choices(self, _event: Any = None) -> None:
        self.mask.reset_choices()
        super()._refresh_choices()

    def _on_image(self, _v: Any = None) -> None:
        """Pick the noise model that fits the newly selected image (the user can still change it)."""
        layer = self.image.value
        if isinstance(layer, Image):
            model, _why = dip.guess_noise_model(full_resolution(layer), layer.metadata)
            self.noise.value = model

    def _update_iterations_text(self, _v: Any = None) -> None:
        n = dip.preset_iterations(self.task.value, self.preset.value, int(self.scale.value))
        self.iterations_auto.value = f"auto (at most {n})"
        self.iterations.tooltip = (
            f"the number of optimisation steps (iterations), 0 to 100000 (0: the preset's, {n}). More "
            "steps fit more detail, and in the end the noise too"
        )

    def _update_visibility(self, _v: Any = None) -> None:
        task = self.task.value
        self.mask.visible = task == "inpaint"
        self.scale.visible = task == "sr"
        self.noise.visible = task == "denoise"
        self.method.visible = task == "denoise"
        network = not self._filtering()
        for w in (self.preset, self.auto_stop, self.uncertainty, self.seed, self.preview_every):
            w.visible = network
        auto = bool(self.auto_stop.value)
        self.iterations.enabled = not auto
        self.iterations.visible, self.iterations_auto.visible = network and not auto, network and auto
        self._update_iterations_text()

    def _filtering(self) -> bool:
        """Whether a run now would denoise with the block-matching filter (no network)."""
        return self.task.value == "denoise" and self.method.value == "filter"

    # -- running ---------------------------------------------------------------------------------

    def params(self) -> dict[str, Any]:
        """The engine parameters the widget's current values stand for."""
        p: dict[str, Any] = {
            "preset": self.preset.value,
            "seed": int(self.seed.value),
            "preview_every": int(self.preview_every.value),
        }
        if self.auto_stop.value:
            p["iterations"] = "auto"
        elif self.iterations.value > 0:
            p["iterations"] = int(self.iterations.value)
        if self.uncertainty.value:
            p["uncertainty"] = True
        if self.task.value == "sr":
            p["scale"] = int(self.scale.value)
        if self.task.value == "denoise":
            p["noise_model"] = self.noise.value
            p["method"] = self.method.value
            if self.method.value == "filter":
                p.pop("uncertainty", None)  # a network-only layer; its box is hidden
        return p

    def run(self) -> bool:
        """Start a run with the current values. Returns False (with a message) if it cannot start."""
        if self.runner.running:
            show_warning("Deep Image Prior is already running: press Cancel or wait for it to finish")
            return False
        try:
            inputs = dip_inputs(
                self.image.value,
                self.task.value,
                self.mask.value,
                channels_first=self.channels_first.value,
                **self.params(),
            )
            gen = engine_run(
                lambda plane, pos, _rng: dip.run(
                    plane,
                    inputs.params,
                    mask=_plane_mask(inputs.mask, pos),
                    device=self.device.value,
                    cancel=self.runner.cancel_requested,
                ),
                inputs.image,
                inputs.params["channel_axis"],
            )
        except InputError as err:
            show_error(str(err))
            self.status.value = f"Error: {err}"
            return False
        layer = self.image.value
        zoom = float(inputs.params["scale"]) if self.task.value == "sr" else 1.0
        title = f"DIP {self.task.value}" + (f" ×{int(zoom)}" if zoom > 1 else "")
        if self._filtering():
            title = "denoise (block-matching filter)"
        n_tiles = 1 if self._filtering() else dip.tiles_for(inputs.image, inputs.params)
        if n_tiles > 1:  # large planes are fitted tile by tile; say so before the long run starts
            title += f" in {n_tiles} tiles"
        self.runner.start(gen, source=layer, title=title, zoom=zoom)
        if inputs.params.get("iterations") == "auto" and not self._filtering():
            n = dip.preset_iterations(self.task.value, self.preset.value, int(self.scale.value))
            self._set_state(True, f"{title}: starting… (automatic stop, at most {n} steps)")
        return True
