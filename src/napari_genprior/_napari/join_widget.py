"""The "Decompose (JoIN)" dock widget, also opened as "Flat-field correction (JoIN)"."""

from __future__ import annotations

from typing import Any

import napari
import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, FileEdit, FloatSpinBox, Label, SpinBox
from napari.utils.notifications import show_error, show_warning

from ..engines import join
from ..engines.base import EngineRun, InputError, resolve_device
from ..engines.planewise import is_lazy
from ..engines.prior import priors_for
from ..physics.composition import FORWARD_MODELS
from .runner import (
    STATUS_TOOLTIP,
    EngineRunner,
    ImageChoices,
    RunControls,
    _duration,
    device_box,
    engine_run,
    full_resolution,
    image_layer,
    layer_array,
    run_button,
    status_label,
)

__all__ = ["FlatfieldWidget", "JoinWidget", "flatfield_widget", "join_inputs"]

#: the decomposition box's words for the forward models
FORWARD_LABELS = {"intrinsic": "albedo × shading (intrinsic)", "flatfield": "flat-field correction"}
#: the stack-method box's words for the engine's choices
STACK_LABELS = {"auto": "auto", "statistics": "stack statistics (fast)", "priors": "GAN priors (slow)"}
#: the dark-offset box's words for the engine's dark-field choices
DARK_LABELS = {"scalar": "one value", "field": "smooth map", "none": "none"}
#: what each component is, for its prior box's tooltip
PART_WORDS = {
    "albedo": "the surface colour without lighting",
    "shading": "the lighting (grey, smooth)",
    "specimen": "the specimen as it would look under even light",
    "flatfield": "the microscope's uneven illumination (grey, smooth)",
}

EXPLAIN = {
    "intrinsic": "intrinsic: image = albedo × shading (the image is taken as linear; gamma 2.2 for sRGB photos). "
    "Outputs: albedo, shading, reconstruction, residual and the pixels the model cannot explain.",
    "flatfield": "flatfield: image = flat-field × specimen + dark-field. A stack shares one field (per-plane "
    "turns that off), found from the stack's statistics in seconds. Outputs: corrected specimen, flat-field "
    "(mean 1), dark-field; solved with the priors (single images), also the reconstruction, residual and "
    "the pixels the model cannot explain.",
}


def join_inputs(layer: Any, **params: Any) -> tuple[np.ndarray, dict[str, Any]]:
    """Check the widget's layer choice; ``(data, engine params)``. Raises :class:`InputError`."""
    layer = image_layer(layer)
    return layer_array(layer), {"channel_axis": -1 if layer.rgb else None, **params}


def join_run(data: Any, params: dict[str, Any], **kw: Any) -> EngineRun:
    """The JoIN run for a layer's data: whole for numpy; for a lazy stack (dask, zarr), one field
    solved on a sample of planes and every plane corrected in turn when flat-field shares a field,
    else plane by plane."""
    shape = tuple(data.shape)
    stack = len(shape) - (params.get("channel_axis") is not None) > 2
    if is_lazy(data) and stack and params.get("forward") == "flatfield" and not params.get("per_plane"):
        return join.run_lazy_stack(data, params, **kw)
    return engine_run(lambda plane, _pos, _rng: join.run(plane, params, **kw), data, params["channel_axis"])


class JoinWidget(RunControls, ImageChoices, Container):
    """Decompose the selected image into its components with JoIN (joint GAN inversion)."""

    def __init__(self, napari_viewer: napari.viewer.Viewer, forward: str = "intrinsic") -> None:
        super().__init__(labels=True)
        self.viewer = napari_viewer
        self.runner = EngineRunner(napari_viewer, self._set_state)
        d = join.JoinParams()
        self.about = Label(
            value="",
            tooltip="JoIN (joint GAN inversion) explains the image as a composition of parts, each "
            "drawn from a generative model (a prior) trained on images of that part",
        )
        self.about.native.setWordWrap(True)
        self.image = ComboBox(
            label="image",
            choices=self._image_choices,
            nullable=True,
            tooltip="the Image layer to decompose: a 2-D image, an RGB photo (albedo × shading) or a "
            "stack of planes (flat-field: one field for all of them). The parts are added as new layers "
            "over it; the input is not changed",
        )
        self.forward = ComboBox(
            label="decomposition",
            choices=[(FORWARD_LABELS.get(m, m), m) for m in FORWARD_MODELS],
            value=forward,
            tooltip="how the image is put together from its parts (the forward model). albedo × "
            "shading (intrinsic): surface colour times lighting. flat-field: the specimen times the "
            "microscope's uneven illumination, plus a dark offset",
        )
        # callables: napari resets every combo box's choices when the widget is docked
        self.prior_boxes = [
            ComboBox(label=f"prior {i + 1}", choices=lambda _w, i=i: self._prior_choices(i)) for i in range(2)
        ]
        self.prior_files = [
            FileEdit(
                label="  or a file",
                mode="r",
                filter="*.pt *.pth",
                value="",
                tooltip="a prior of your own for the part above: a checkpoint of `napari-genprior train "
                "gan` (trained on images like that part) or a stylegan2-pytorch generator. When set, it "
                "is used instead of the choice above",
            )
            for _ in range(2)
        ]
        self.steps = SpinBox(
            label="fitting steps",
            min=1,
            max=100_000,
            value=d.steps,
            tooltip=f"stage-1 steps, 1 to 100000 (default {d.steps}): how long each prior's latent "
            "code is moved until the parts explain the image. More steps fit better and take longer",
        )
        self.finetune = SpinBox(
            label="refining steps",
            min=0,
            max=100_000,
            value=d.finetune_steps,
            tooltip=f"stage-2 steps, 0 to 100000 (default {d.finetune_steps}): the generators "
            "themselves are then fine-tuned a little, kept close to their priors, to fit details the "
            "priors lack. 0 turns this stage off (faster)",
        )
        self.restarts = SpinBox(
            label="restarts",
            min=1,
            max=16,
            value=d.restarts,
            tooltip=f"1 to 16 (default {d.restarts}): starting points tried side by side for the "
            "first fifth of the fitting steps; the best one goes on. More restarts avoid a poor start "
            "at the cost of time",
        )
        self.gamma = FloatSpinBox(
            label="brightness curve",
            min=0.1,
            max=5.0,
            step=0.1,
            value=d.gamma,
            tooltip="gamma, 0.1 to 5: the image is raised to this power to make it linear in light "
            "before it is split. 1 for linear data (microscopes, raw camera data); 2.2 for ordinary "
            "(sRGB) photographs",
        )
        self.darkfield = ComboBox(
            label="dark offset",
            choices=[(DARK_LABELS[k], k) for k in ("scalar", "field", "none")],
            value=d.darkfield,
            tooltip="the dark-field: the signal the camera gives with no light. one value (scalar, the "
            "default); a smooth map over the image (field) when the offset varies across it; none when "
            "the dark level was already subtracted",
        )
        self.per_plane = CheckBox(
            label="one field per plane",
            value=False,
            tooltip="stacks only: give every plane its own illumination field (per-plane), e.g. planes "
            "taken with different settings. Off: one field shared by all planes, which is how a "
            "microscope's illumination behaves and constrains it better",
        )
        self.stack_weight = FloatSpinBox(
            label="whole-image guidance",
            min=0.0,
            max=10.0,
            step=0.1,
            value=d.stack_weight,
            tooltip=f"the stack term, 0 to 10 (default {d.stack_weight}): how much the blurred mean of "
            "all planes (of one plane: the blurred plane) steers the shared field. Used only when the "
            "tiles solved leave part of the input out (a 512² image, a stack of 8) and the planes show "
            "different content; 0 turns it off (e.g. a time-lapse of one field of view)",
        )
        self.stack_method = ComboBox(
            label="stack method",
            choices=[(STACK_LABELS[k], k) for k in ("auto", "statistics", "priors")],
            value=d.stack_method,
            tooltip="stacks sharing one field: statistics (BaSiC-style, the stack's trimmed mean and "
            "background, in a second or two; measured better than the priors on real specimens), "
            "priors (the joint GAN inversion, minutes), or auto (statistics). Single images always use "
            "the priors",
        )
        self.device = device_box()
        self.seed = SpinBox(
            label="random seed",
            min=0,
            max=2**31 - 1,
            value=d.seed,
            tooltip="the seed of the restarts' starting points (0 to 2147483647): the same seed on the "
            "same device gives the same result",
        )
        self.preview_every = SpinBox(
            label="preview every",
            min=0,
            max=10_000,
            value=d.preview_every,
            tooltip="steps between preview images of the current reconstruction (0: no preview); the "
            "canvas is redrawn at most once a second",
        )
        self.run_button = run_button()
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
                self.stack_method,
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
        for w in (self.image, self.steps, self.finetune, self.restarts, self.per_plane, self.device):
            w.changed.connect(self._show_estimate)
        for w in (*self.prior_boxes, *self.prior_files):
            w.changed.connect(self._show_estimate)
        self._on_forward()
        self._watch_layers()

    def components(self) -> tuple[str, ...]:
        """The names of the current forward model's components, in the order of the prior boxes."""
        return tuple(c.name for c in FORWARD_MODELS[self.forward.value].components)

    def _prior_choices(self, i: int) -> list[str]:
        """The bundled priors of the kind of the current model's ``i``-th component."""
        comps = self.components()
        return priors_for(self.forward.value, comps[i]) if i < len(comps) else []

    def _on_forward(self, _v: Any = None) -> None:
        model = FORWARD_MODELS[self.forward.value]
        self.about.value = EXPLAIN[model.name]
        for box, comp in zip(self.prior_boxes, model.components):
            box.label = f"{comp.name} prior"
            # only priors of this component's kind: an albedo prior cannot stand for a specimen
            box.reset_choices()
            if comp.prior in box.choices:
                box.value = comp.prior
            box.tooltip = (
                f"the prior for the {comp.name}, {PART_WORDS.get(comp.name, 'this part')}: a generative "
                f"model (StyleGAN2) trained on such images, whose outputs the {comp.name} is made of. Only "
                "bundled priors of this kind are listed; choose a file below for one of your own"
            )
        self.gamma.visible = model.name == "intrinsic"
        self.darkfield.visible = self.per_plane.visible = model.name == "flatfield"
        self.stack_weight.visible = self.stack_method.visible = model.name == "flatfield"
        self._show_estimate()

    def estimate(self) -> str:
        """A rough time estimate for the current image and settings (empty when there is none)."""
        layer = self.image.value
        if layer is None:
            return ""
        params = {**self.params(), "channel_axis": -1 if layer.rgb else None}
        shape = tuple(full_resolution(layer).shape)
        planes = int(np.prod(shape[: -3 if layer.rgb else -2], dtype=int))
        if params["forward"] == "flatfield" and planes > 1 and not params.get("per_plane"):
            if params.get("stack_method") != "priors":  # closed form: no steps to time
                return f"stack statistics of {planes} planes: seconds"
        try:
            n_tiles, tile = join.tiles_for(full_resolution(layer), params)
        except (InputError, ValueError, KeyError):  # the run will say what is wrong
            return ""
        if n_tiles == 0:
            return ""
        steps = f"{params['steps']} + {params['finetune_steps']} steps"
        where = f"{n_tiles} tile{'s' * (n_tiles > 1)} of {tile} px, {steps}"
        try:
            on_cpu = resolve_device(self.device.value).type == "cpu"
        except InputError:
            return ""
        if not on_cpu:  # the model below was measured on a CPU; a GPU's time is measured as it runs
            return f"{where}: the time left is shown once the first steps are timed"
        seconds = join.rough_seconds(n_tiles, tile, params)
        return f"{where}: roughly {_duration(seconds)} on 2 CPU threads (an estimate)"

    def _show_estimate(self, _v: Any = None) -> None:
        if not self.runner.running:
            text = self.estimate()
            self.status.value = f"before Run: {text}" if text else ""
            self.status.tooltip = self.status.value or STATUS_TOOLTIP

    def params(self) -> dict[str, Any]:
        """The engine parameters the widget's current values stand for."""
        priors = {}
        for comp, box, f in zip(self.components(), self.prior_boxes, self.prior_files):
            path = str(f.value) if f.value else ""
            chosen = path if path not in ("", ".") else box.value
            if chosen:  # none: the engine's default (and its message when that is missing)
                priors[comp] = chosen
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
            p["stack_method"] = self.stack_method.value
        return p

    def run(self) -> bool:
        """Start a run with the current values. Returns False (with a message) if it cannot start."""
        if self.runner.running:
            show_warning("JoIN is already running: press Cancel or wait for it to finish")
            return False
        try:
            data, params = join_inputs(self.image.value, **self.params())
            gen = join_run(data, params, device=self.device.value, cancel=self.runner.cancel_requested)
        except InputError as err:
            show_error(str(err))
            self.status.value = f"Error: {err}"
            return False
        estimate = self.estimate()
        title = f"JoIN {self.forward.value}"
        self.runner.start(gen, source=self.image.value, title=title)
        if estimate:  # until the first steps are timed, the rough estimate is all there is
            self._set_state(True, f"{title}: starting… ({estimate})")
        return True


class FlatfieldWidget(JoinWidget):
    """The JoIN widget with the flat-field model selected (Layers ▸ Filter ▸ Flat-field correction).

    A class, not a function: napari passes the viewer to a dock widget only when the callable's
    ``__init__`` names a ``napari_viewer`` parameter.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer, forward="flatfield")


#: the old name of :class:`FlatfieldWidget`, for scripts that call it
flatfield_widget = FlatfieldWidget
