"""All dock widgets: opened as napari opens them, every control explained, device choices, and the
JoIN widget's prior boxes and time estimate (in a real viewer, under Xvfb)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from npe2 import PluginManifest

import napari_genprior
from napari_genprior._napari.dip_widget import DipWidget
from napari_genprior._napari.glean_widget import GleanWidget
from napari_genprior._napari.irn_widget import IrnWidget
from napari_genprior._napari.join_widget import FlatfieldWidget, JoinWidget

pytest.importorskip("napari")

MANIFEST = PluginManifest.from_file(Path(napari_genprior.__file__).parent / "napari.yaml")
WIDGETS = [w.display_name for w in MANIFEST.contributions.widgets]


def test_every_manifest_widget_opens_through_the_plugin_menu(make_napari_viewer):
    """What Plugins ▸ GenPrior ▸ … does: napari finds the viewer parameter on ``__init__``."""
    viewer = make_napari_viewer()
    assert len(WIDGETS) == 5
    opened = {}
    for name in WIDGETS:
        dock, widget = viewer.window.add_plugin_dock_widget("napari-genprior", name)
        assert dock is not None and widget.viewer is not None, name
        opened[name] = widget
    assert isinstance(opened["Flat-field correction (JoIN)"], FlatfieldWidget)
    assert opened["Flat-field correction (JoIN)"].forward.value == "flatfield"
    assert opened["Decompose (JoIN)"].forward.value == "intrinsic"
    # each widget sees the viewer's layers (napari hands plugins a proxy of the viewer)
    viewer.add_image(np.zeros((8, 8), np.float32), name="cells")
    for name, widget in opened.items():
        assert widget.image.value is not None and widget.image.value.name == "cells", name
    # a run's preview layer is never offered as an input, though the proxy's layers are not identical
    dip = opened["Deep Image Prior"]
    dip.runner._preview = dip.viewer.add_image(np.zeros((8, 8), np.float32), name="cells_preview")
    assert [name for name, _ in dip._image_choices()] == ["cells"]


def test_a_run_from_the_plugin_menu_adds_its_result_and_removes_its_preview(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-genprior", "Deep Image Prior")
    viewer.add_image(np.random.default_rng(0).random((32, 32)).astype(np.float32), name="cells")
    widget.auto_stop.value = False
    widget.iterations.value, widget.preview_every.value = 3, 1
    widget.runner.preview_interval = 0.0
    assert widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    assert [lay.name for lay in viewer.layers] == ["cells", "cells_dip_denoise"]


@pytest.mark.parametrize("cls", [DipWidget, IrnWidget, GleanWidget, JoinWidget, FlatfieldWidget])
def test_every_control_has_a_tooltip(make_napari_viewer, cls):
    viewer = make_napari_viewer()
    widget = cls(viewer)
    controls = list(widget)
    assert len(controls) >= 8
    missing = [w.name or w.label or type(w).__name__ for w in controls if not (w.tooltip or "").strip()]
    assert not missing, f"{cls.__name__}: no tooltip on {missing}"
    # the Qt widget carries it too (what the user sees on hover)
    assert all(w.native.toolTip() for w in controls)
    if cls in (JoinWidget, FlatfieldWidget):  # hidden controls are explained as well
        widget.forward.value = "intrinsic" if cls is FlatfieldWidget else "flatfield"
        assert all((w.tooltip or "").strip() for w in widget)


def test_jargon_is_in_tooltips_not_labels(make_napari_viewer):
    viewer = make_napari_viewer()
    join, irn = JoinWidget(viewer), IrnWidget(viewer)
    labels = {w.label for w in (*join, *irn)}
    for jargon in ("forward model", "stage-1 steps", "stack term", "tau"):
        assert jargon not in labels
    assert "forward model" in join.forward.tooltip and "stage-1" in join.steps.tooltip
    assert "stack term" in join.stack_weight.tooltip and "tau" in irn.tau.tooltip
    # the choices read as words, the values stay the engine's
    assert join.forward.value == "intrinsic" and "albedo × shading" in join.forward.native.currentText()


def test_join_prior_boxes_offer_only_priors_of_their_part(make_napari_viewer, tmp_path):
    from napari_genprior.engines.prior import bundled_priors

    assert {"albedo", "shading", "nuclei", "illumination"} <= set(bundled_priors())
    viewer = make_napari_viewer()
    widget = JoinWidget(viewer)
    viewer.window.add_dock_widget(widget)  # docking resets every combo box's choices
    boxes = widget.prior_boxes
    assert [list(b.choices) for b in boxes] == [["albedo"], ["shading"]]
    assert [b.value for b in boxes] == ["albedo", "shading"]
    assert [b.label for b in boxes] == ["albedo prior", "shading prior"]
    widget.forward.value = "flatfield"
    assert [list(b.choices) for b in boxes] == [["nuclei"], ["illumination"]]
    assert "albedo" not in boxes[0].choices and "shading" not in boxes[1].choices
    assert [b.label for b in boxes] == ["specimen prior", "flatfield prior"]
    assert widget.params()["priors"] == {"specimen": "nuclei", "flatfield": "illumination"}
    widget.reset_choices()
    assert [b.value for b in boxes] == ["nuclei", "illumination"]
    # a prior of one's own is still chosen by its file
    own = tmp_path / "my_specimen.pt"
    own.write_bytes(b"")
    widget.prior_files[0].value = str(own)
    assert widget.params()["priors"]["specimen"] == str(own)
    widget.forward.value = "intrinsic"
    assert [b.value for b in boxes] == ["albedo", "shading"]


def test_join_priors_for_follows_the_cards():
    from napari_genprior.engines.prior import priors_for

    assert priors_for("flatfield", "specimen") == ["nuclei"]
    assert priors_for("flatfield", "flatfield") == ["illumination"]
    assert priors_for("intrinsic", "albedo") == ["albedo"]
    with pytest.raises(ValueError, match="no component 'nuclei'"):
        priors_for("flatfield", "nuclei")


def test_join_status_gives_a_time_estimate_before_and_while_running(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = FlatfieldWidget(viewer)
    assert widget.status.value == ""  # no image, no estimate
    layer = viewer.add_image(np.random.default_rng(0).random((256, 256)).astype(np.float32), name="plate")
    widget.image.value = layer
    widget.device.value = "cpu"
    text = widget.status.value
    assert text.startswith("before Run: 4 tiles of 128 px, 300 + 50 steps") and "(an estimate)" in text
    widget.steps.value, widget.finetune.value = 4, 0  # fewer steps: a shorter estimate
    assert "4 + 0 steps" in widget.status.value
    widget.restarts.value, widget.preview_every.value = 1, 0
    messages = []
    widget.runner.on_state = lambda running, msg: (messages.append(msg), widget._set_state(running, msg))
    assert widget.run()
    assert "starting…" in widget.status.value and "(an estimate)" in widget.status.value
    qtbot.waitUntil(lambda: not widget.running, timeout=120_000)
    assert "done" in widget.status.value
    # while running: the time left, extrapolated from the steps so far, said as "about"
    assert any(re.search(r"step \d/4 .* about \d+ s left", m) for m in messages), messages
    assert widget.runner.last_result.metadata["tiles"] == 4  # the estimate counted the tiles solved


def test_join_estimate_grows_with_tiles_and_steps():
    from napari_genprior.engines import join

    small = join.tiles_for(np.zeros((128, 128), np.float32), {"forward": "flatfield"})
    big = join.tiles_for(np.zeros((512, 512), np.float32), {"forward": "flatfield"})
    assert small == (1, 128) and big == (8, 128)  # a shared field: at most max_tiles tiles
    assert join.tiles_for(np.zeros((3, 64, 64, 3), np.float32), {"channel_axis": -1}) == (3, 64)
    t_small, t_big = join.rough_seconds(*small, {}), join.rough_seconds(*big, {})
    assert 0 < t_small < t_big
    assert join.rough_seconds(*big, {"steps": 30, "finetune_steps": 0}) < t_big / 5


def test_every_widget_offers_the_devices_of_this_machine(make_napari_viewer):
    from napari_genprior.engines.base import available_devices

    here = available_devices()
    assert here[:2] == ["auto", "cpu"] and all(d in ("mps",) or d.startswith("cuda:") for d in here[2:])
    viewer = make_napari_viewer()
    for cls in (DipWidget, IrnWidget, GleanWidget, JoinWidget):
        widget = cls(viewer)
        assert list(widget.device.choices) == here and widget.device.value == "auto"
        assert "cuda:N" in widget.device.tooltip


def test_irn_widget_opens_in_mode_down(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = IrnWidget(viewer)
    assert widget.mode.value == "down"
    assert widget.samples.native.isHidden() and widget.tau.native.isHidden()  # down draws nothing
