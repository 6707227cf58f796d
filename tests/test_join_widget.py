"""The JoIN widget ("Decompose (JoIN)" and "Flat-field correction (JoIN)") in a real napari viewer."""

from __future__ import annotations

import numpy as np
import pytest

from napari_genprior._napari.join_widget import JoinWidget, flatfield_widget

pytest.importorskip("napari")

TINY = {"steps": 4, "finetune": 2, "restarts": 1, "preview_every": 0}


def _setup(widget, **values):
    for k, v in {**TINY, **values}.items():
        getattr(widget, k).value = v


def _wait_idle(qtbot, widget, timeout=120_000):
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def test_intrinsic_outputs_are_layers_over_the_input(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = JoinWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.forward.value == "intrinsic"
    assert not widget.gamma.native.isHidden() and widget.darkfield.native.isHidden()
    assert widget.stack_weight.native.isHidden() and "stack_weight" not in widget.params()
    assert [b.value for b in widget.prior_boxes] == ["albedo", "shading"]
    rgb = (np.random.default_rng(0).random((64, 72, 3)) * 200 + 20).astype(np.uint8)
    layer = viewer.add_image(rgb, name="scene", scale=(0.5, 0.5), translate=(3.0, 4.0))
    before = rgb.copy()
    widget.image.value = layer
    _setup(widget)
    assert widget.run()
    _wait_idle(qtbot, widget)
    names = [lay.name for lay in viewer.layers]
    assert names[0] == "scene" and names[-1] == "scene_albedo"  # the primary result on top
    assert set(names[1:]) == {
        f"scene_{s}" for s in ("albedo", "shading", "reconstruction", "residual", "unexplained")
    }
    assert viewer.layers.selection.active.name == "scene_albedo"
    albedo, shading = viewer.layers["scene_albedo"], viewer.layers["scene_shading"]
    assert albedo.rgb and albedo.data.shape == rgb.shape and albedo.data.dtype == np.float32
    assert not shading.rgb and shading.data.shape == rgb.shape[:2]
    assert 0 < shading.data.min() and shading.data.max() <= 1.0 + 1e-6
    assert viewer.layers["scene_unexplained"].data.dtype == np.uint8
    for lay in viewer.layers[1:]:
        assert tuple(lay.scale[-2:]) == (0.5, 0.5) and tuple(lay.translate[-2:]) == (3.0, 4.0)
        assert lay.metadata["engine"] == "join" and lay.metadata["source_layer"] == "scene"
        assert lay.metadata["steps"] == 4 and lay.metadata["finetune_steps"] == 2
    # albedo × shading explains the image (the reconstruction is in the input's units)
    rec = viewer.layers["scene_reconstruction"].data
    np.testing.assert_allclose(albedo.data * shading.data[..., None] * 255, rgb, atol=1.0)
    assert rec.shape == rgb.shape
    np.testing.assert_array_equal(layer.data, before)  # input untouched
    assert "done" in widget.status.value


def test_flatfield_entry_shares_one_field_over_a_stack(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = flatfield_widget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.forward.value == "flatfield"
    assert [b.value for b in widget.prior_boxes] == ["nuclei", "illumination"]
    assert not widget.darkfield.native.isHidden() and not widget.per_plane.native.isHidden()
    assert not widget.stack_weight.native.isHidden()
    assert widget.gamma.native.isHidden()
    widget.stack_weight.value = 0.5
    assert widget.params()["stack_weight"] == 0.5
    assert widget.params()["stack_method"] == "auto"
    widget.stack_method.value = "priors"  # this test is about the priors on a stack
    rng = np.random.default_rng(1)
    stack = (rng.random((2, 128, 128)) * 3000 + 200).astype(np.uint16)
    layer = viewer.add_image(stack, name="plate", scale=(1.0, 0.3, 0.3))
    widget.image.value = layer
    _setup(widget, finetune=0)
    assert widget.run()
    _wait_idle(qtbot, widget)
    assert viewer.layers[-1].name == "plate_corrected"
    corrected, field = viewer.layers["plate_corrected"], viewer.layers["plate_flatfield"]
    assert corrected.data.shape == stack.shape and tuple(corrected.scale) == (1.0, 0.3, 0.3)
    assert field.data.shape == (128, 128) and tuple(field.scale) == (0.3, 0.3)  # one shared field
    assert abs(float(field.data.mean()) - 1.0) < 1e-3
    assert viewer.layers["plate_darkfield"].data.shape == (128, 128)
    assert viewer.layers["plate_reconstruction"].data.shape == stack.shape
    assert viewer.layers["plate_unexplained"].data.shape == stack.shape
    assert corrected.metadata["forward"] == "flatfield" and corrected.metadata["shared_field"]


def test_cancel_leaves_the_viewer_as_it_was(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = JoinWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.runner.preview_interval = 0.0
    layer = viewer.add_image(np.random.default_rng(2).random((64, 64)).astype(np.float32), name="cells")
    widget.image.value = layer
    _setup(widget, steps=100_000, preview_every=1)
    assert widget.run()
    assert widget.run() is False  # a second Run is refused while one is going
    qtbot.waitUntil(lambda: "cells_preview" in viewer.layers, timeout=60_000)
    widget.run_button.clicked()  # the Run button is now Cancel
    _wait_idle(qtbot, widget)
    assert [lay.name for lay in viewer.layers] == ["cells"]
    assert widget.status.value.endswith("cancelled")


def test_bad_inputs_give_messages_and_change_nothing(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = flatfield_widget(viewer)
    viewer.window.add_dock_widget(widget)
    rgb = viewer.add_image(np.zeros((128, 128, 3), np.uint8), name="photo")
    widget.image.value = rgb
    n = len(viewer.layers)
    assert not widget.run()
    assert "one channel" in widget.status.value and len(viewer.layers) == n
    small = viewer.add_image(np.ones((40, 40), np.float32), name="small")
    widget.image.value = small
    assert not widget.run()
    assert "smaller than" in widget.status.value
    nan = viewer.add_image(np.full((128, 128), np.nan, np.float32), name="nan")
    widget.image.value = nan
    assert not widget.run()
    assert "NaN" in widget.status.value
    ok = viewer.add_image(np.ones((128, 128), np.float32), name="ok")
    widget.image.value = ok
    widget.prior_files[0].value = __file__  # not a generator checkpoint
    assert not widget.run()
    assert "not a generator" in widget.status.value
    assert [lay.name for lay in viewer.layers] == ["photo", "small", "nan", "ok"]
    assert not widget.running


def test_a_stack_is_corrected_by_its_statistics_by_default(make_napari_viewer, qtbot):
    """auto: a stack sharing one field is solved in closed form (seconds): corrected planes, one
    field of mean 1 and the dark offset, no reconstruction; the status said so before Run."""
    viewer = make_napari_viewer()
    widget = flatfield_widget(viewer)
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    field = 0.5 + 0.5 * np.exp(-((yy - 0.3) ** 2 + (xx - 0.6) ** 2) / 0.2)
    rng = np.random.default_rng(2)
    stack = ((rng.random((6, 128, 128)) * 2000 + 500) * field + 300).astype(np.uint16)
    layer = viewer.add_image(stack, name="tiles")
    widget.image.value = layer
    assert "stack statistics of 6 planes" in widget.status.value
    assert widget.run()
    _wait_idle(qtbot, widget)
    names = {lay.name for lay in viewer.layers}
    assert names == {"tiles", "tiles_corrected", "tiles_flatfield", "tiles_darkfield"}
    f = viewer.layers["tiles_flatfield"].data
    assert abs(float(f.mean()) - 1.0) < 1e-3
    assert np.corrcoef(f.ravel(), field.ravel())[0, 1] > 0.95
    assert viewer.layers["tiles_corrected"].metadata["stack_method_used"] == "statistics"
