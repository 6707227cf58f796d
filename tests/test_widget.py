"""The Deep Image Prior widget in a real napari viewer (under Xvfb)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from napari_genprior._napari.dip_widget import DipWidget, dip_inputs
from napari_genprior.engines.base import InputError

pytest.importorskip("napari")


@pytest.fixture
def widget_and_viewer(make_napari_viewer):
    viewer = make_napari_viewer()
    widget = DipWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.auto_stop.value = False  # the tests below set small iteration counts
    widget.method.value = "dip"  # they test the network; the filter's own tests set it back
    return widget, viewer


def test_defaults_are_fast_preset_with_auto_stop(make_napari_viewer):
    widget = DipWidget(make_napari_viewer())
    assert widget.preset.value == "fast" and widget.auto_stop.value
    assert widget.params()["iterations"] == "auto" and widget.params()["preset"] == "fast"


def _wait_idle(qtbot, widget, timeout=60_000):
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def test_denoise_run_to_completion(widget_and_viewer, qtbot):
    widget, viewer = widget_and_viewer
    rng = np.random.default_rng(0)
    data = (rng.random((40, 36)) * 1000).astype(np.uint16)
    layer = viewer.add_image(data, name="cells", scale=(0.5, 0.25), translate=(10.0, -3.0))
    before = layer.data.copy()
    widget.image.value = layer
    widget.task.value = "denoise"
    widget.iterations.value = 6
    widget.preview_every.value = 2
    widget.run_button.clicked()  # press Run
    assert widget.running
    assert widget.run_button.text == "Cancel"
    _wait_idle(qtbot, widget)
    assert widget.run_button.text == "Run"
    out = viewer.layers["cells_dip_denoise"]
    assert out.data.shape == data.shape and out.data.dtype == np.uint16
    assert tuple(out.scale) == (0.5, 0.25)
    assert tuple(out.translate) == (10.0, -3.0)
    assert out.metadata["engine"] == "dip" and out.metadata["config"]["iterations"] == 6
    assert out.metadata["source_layer"] == "cells"
    assert "cells_preview" not in viewer.layers  # the preview is gone when done
    np.testing.assert_array_equal(layer.data, before)  # input untouched
    assert [lay.name for lay in viewer.layers] == ["cells", "cells_dip_denoise"]


def test_sr_layer_sits_on_input(widget_and_viewer, qtbot):
    widget, viewer = widget_and_viewer
    layer = viewer.add_image(
        np.random.default_rng(1).random((16, 20)).astype(np.float32),
        name="img",
        scale=(2.0, 2.0),
        translate=(5.0, 7.0),
    )
    widget.image.value = layer
    widget.task.value = "sr"
    widget.scale.value = 4
    widget.iterations.value = 3
    widget.uncertainty.value = True
    assert widget.run()
    _wait_idle(qtbot, widget)
    out = viewer.layers["img_dip_sr4"]
    unc = viewer.layers["img_dip_uncertainty"]
    assert unc.data.shape == (64, 80) and tuple(unc.scale) == (0.5, 0.5) and unc.colormap.name == "magma"
    assert out.data.shape == (64, 80)
    assert tuple(out.scale) == (0.5, 0.5)
    # pixel centres line up: first HR pixel centre at input translate - s/2 + s/8
    np.testing.assert_allclose(out.translate, (5.0 - 0.75, 7.0 - 0.75))

    # the outer pixel edges coincide (extent.world runs from first to last pixel centre)
    def edges(lay):
        ext, half = np.asarray(lay.extent.world), np.asarray(lay.scale) / 2
        return ext[0] - half, ext[1] + half

    np.testing.assert_allclose(edges(out), edges(layer))


def test_inpaint_with_shapes_mask_returns_mask_layer(widget_and_viewer, qtbot):
    widget, viewer = widget_and_viewer
    img = viewer.add_image(np.random.default_rng(2).random((32, 32)).astype(np.float32), name="scene")
    shapes = viewer.add_shapes(
        [np.array([[4, 4], [4, 12], [12, 12], [12, 4]])], shape_type="rectangle", name="holes"
    )
    widget.image.value = img
    widget.task.value = "inpaint"
    widget.mask.value = shapes
    widget.iterations.value = 3
    assert widget.run()
    _wait_idle(qtbot, widget)
    mask = viewer.layers["scene_dip_mask"]
    assert mask.data.shape == (32, 32) and mask.data[8, 8] == 1 and mask.data[20, 20] == 0
    out = viewer.layers["scene_dip_inpaint"].data
    known = mask.data == 0
    np.testing.assert_array_equal(out[known], img.data[known])


def test_cancel_mid_run_leaves_viewer_as_it_was(widget_and_viewer, qtbot):
    widget, viewer = widget_and_viewer
    layer = viewer.add_image(np.random.default_rng(3).random((64, 64)).astype(np.float32), name="cells")
    widget.image.value = layer
    widget.iterations.value = 100_000
    widget.preview_every.value = 1
    assert widget.run()
    qtbot.waitUntil(lambda: "cells_preview" in viewer.layers, timeout=60_000)
    widget.run_button.clicked()  # the Run button is now Cancel
    _wait_idle(qtbot, widget)
    assert [lay.name for lay in viewer.layers] == ["cells"]
    assert widget.status.value.endswith("cancelled")


def test_second_run_is_refused(widget_and_viewer, qtbot):
    widget, viewer = widget_and_viewer
    layer = viewer.add_image(np.zeros((32, 32), np.float32) + np.eye(32, dtype=np.float32), name="a")
    widget.image.value = layer
    widget.iterations.value = 100_000
    assert widget.run()
    assert widget.run() is False  # refused while running
    widget.cancel()
    _wait_idle(qtbot, widget)
    assert [lay.name for lay in viewer.layers] == ["a"]


def test_bad_inputs_give_messages_and_change_nothing(widget_and_viewer, qtbot):
    widget, viewer = widget_and_viewer
    labels = viewer.add_labels(np.zeros((32, 32), np.uint8), name="lab")
    with pytest.raises(InputError, match="Labels layer"):
        dip_inputs(labels, "denoise")
    img = viewer.add_image(np.full((32, 32), np.nan, np.float32), name="nan")
    widget.image.value = img
    assert widget.run() is False
    assert "NaN" in widget.status.value
    widget.task.value = "inpaint"
    widget.mask.value = None
    assert widget.run() is False
    assert "mask" in widget.status.value
    # a mask placed beside the image in the viewer covers none of its pixels
    away = viewer.add_labels(np.ones((10, 10), np.uint8), name="away", translate=(100.0, 0.0))
    ok = viewer.add_image(np.ones((32, 32), np.float32), name="ok")
    widget.image.value = ok
    widget.mask.value = away
    assert widget.run() is False
    assert "does not overlap" in widget.status.value
    assert not widget.running
    assert [lay.name for lay in viewer.layers] == ["lab", "nan", "away", "ok"]


def test_multichannel_inpaint_mask_layer_matches_spatial_axes(widget_and_viewer, qtbot):
    widget, viewer = widget_and_viewer
    img = viewer.add_image(
        np.random.default_rng(4).random((2, 24, 20)).astype(np.float32), name="cyx", scale=(1.0, 0.5, 0.5)
    )
    holes = np.zeros((24, 20), np.uint8)
    holes[5:9, 5:9] = 1
    lab = viewer.add_labels(holes, name="holes", scale=(0.5, 0.5))
    widget.image.value = img
    widget.channels_first.value = True
    widget.task.value = "inpaint"
    widget.mask.value = lab
    widget.iterations.value = 2
    assert widget.run()
    _wait_idle(qtbot, widget)
    out = viewer.layers["cyx_dip_inpaint"]
    mask = viewer.layers["cyx_dip_mask"]
    assert out.data.shape == (2, 24, 20) and tuple(out.scale) == (1.0, 0.5, 0.5)
    assert mask.data.shape == (24, 20) and tuple(mask.scale) == (0.5, 0.5)
    assert out.metadata["channel_axis"] == 0


def test_auto_stop_checkbox_asks_for_auto_iterations(widget_and_viewer):
    widget, _ = widget_and_viewer
    widget.iterations.value = 200
    widget.auto_stop.value = True
    assert not widget.iterations.enabled
    assert widget.params()["iterations"] == "auto"
    widget.auto_stop.value = False
    assert widget.iterations.enabled and widget.params()["iterations"] == 200


def test_large_image_is_tiled_and_the_widget_says_so(widget_and_viewer, qtbot):
    widget, viewer = widget_and_viewer
    data = np.random.default_rng(5).random((560, 40)).astype(np.float32)  # taller than one 512 tile
    layer = viewer.add_image(data, name="tall")
    widget.image.value = layer
    widget.iterations.value = 2
    messages = []
    show = widget.runner.on_state
    widget.runner.on_state = lambda running, msg: (messages.append(msg), show(running, msg))
    assert widget.run()
    assert "in 2 tiles" in widget.status.value
    _wait_idle(qtbot, widget, timeout=180_000)
    out = viewer.layers["tall_dip_denoise"]
    assert out.data.shape == data.shape and out.metadata["tiles"] == 2
    assert any("tile 2/2" in m for m in messages)
    assert "2 tiles of 512 px" in widget.status.value


def test_long_status_wraps_and_the_dock_keeps_its_width(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    widget = DipWidget(viewer)
    dock = viewer.window.add_dock_widget(widget)
    qtbot.wait(50)
    width = dock.width()
    long = "Error: mask shape (256, 256) does not match the image (128, 128): " + "give a mask " * 30
    widget._set_state(False, long)
    qtbot.wait(50)
    assert widget.status.native.wordWrap()
    assert dock.width() <= width + 2  # the text wraps instead of pushing the canvas aside
    assert widget.status.tooltip == long  # the full text is also there on hover
    widget._set_state(False, "done")
    qtbot.wait(50)
    assert dock.width() <= width + 2


def test_result_is_on_top_of_its_auxiliary_layers_and_selected(widget_and_viewer, qtbot):
    widget, viewer = widget_and_viewer
    img = viewer.add_image(np.random.default_rng(2).random((32, 32)).astype(np.float32), name="scene")
    holes = np.zeros((32, 32), np.uint8)
    holes[4:12, 4:12] = 1
    viewer.add_labels(holes, name="holes")
    widget.image.value = img
    widget.task.value = "inpaint"
    widget.mask.value = viewer.layers["holes"]
    widget.uncertainty.value = True
    widget.iterations.value = 2
    assert widget.run()
    _wait_idle(qtbot, widget)
    names = [lay.name for lay in viewer.layers]
    assert names[-1] == "scene_dip_inpaint"  # on top: the view shows the repair, not the damage
    assert set(names[2:-1]) == {"scene_dip_mask", "scene_dip_uncertainty"}
    assert viewer.layers.selection.active is viewer.layers["scene_dip_inpaint"]


def test_full_frame_labels_mask_over_a_translated_crop_is_placed_in_world(widget_and_viewer, qtbot):
    widget, viewer = widget_and_viewer
    crop = viewer.add_image(
        np.random.default_rng(6).random((32, 32)).astype(np.float32), name="crop", translate=(16.0, 8.0)
    )
    frame = np.zeros((64, 64), np.uint8)
    frame[20:24, 10:14] = 1  # world rows 20-23, columns 10-13 = crop pixels (4..7, 2..5)
    viewer.add_labels(frame, name="frame")
    inputs = dip_inputs(crop, "inpaint", viewer.layers["frame"])
    expected = np.zeros((32, 32), bool)
    expected[4:8, 2:6] = True
    np.testing.assert_array_equal(inputs.mask != 0, expected)
    # a mask drawn at half the pixel size lands where it is shown too
    fine = np.zeros((64, 64), np.uint8)
    fine[8:16, 8:16] = 1  # world 4..7.5 at scale 0.5
    half = viewer.add_labels(fine, name="fine", scale=(0.5, 0.5))
    plain = viewer.add_image(np.zeros((32, 32), np.float32), name="plain")
    m = dip_inputs(plain, "inpaint", half).mask != 0
    assert m[4:8, 4:8].all() and m.sum() == 16


def test_auto_stop_shows_the_upper_bound_and_progress_says_at_most(widget_and_viewer, qtbot):
    widget, viewer = widget_and_viewer
    widget.auto_stop.value = True
    shown = lambda w: not w.native.isHidden()  # noqa: E731  (the viewer itself is not shown)
    assert shown(widget.iterations_auto) and not shown(widget.iterations)
    assert widget.iterations_auto.value == "auto (at most 1800)"
    widget.task.value = "sr"
    widget.scale.value = 8
    assert widget.iterations_auto.value == "auto (at most 3000)"
    widget.auto_stop.value = False
    assert shown(widget.iterations) and not shown(widget.iterations_auto)
    assert "3000" in widget.iterations.tooltip
    # a run with automatic stopping words its step count and time left as upper bounds
    widget.task.value = "denoise"
    widget.auto_stop.value = True
    layer = viewer.add_image(np.random.default_rng(7).random((32, 32)).astype(np.float32), name="a")
    widget.image.value = layer
    messages = []
    show = widget.runner.on_state
    widget.runner.on_state = lambda running, msg: (messages.append(msg), show(running, msg))
    assert widget.run()
    qtbot.waitUntil(lambda: any("of at most 1800" in m for m in messages), timeout=60_000)
    widget.cancel()
    _wait_idle(qtbot, widget)
    step_msgs = [m for m in messages if "step" in m]
    assert all("of at most 1800" in m for m in step_msgs), step_msgs
    assert any("at most" in m and "left" in m for m in step_msgs)


def test_stack_progress_names_the_plane(widget_and_viewer, qtbot):
    widget, viewer = widget_and_viewer
    stack = np.random.default_rng(8).random((3, 24, 24)).astype(np.float32)
    layer = viewer.add_image(stack, name="stack")
    widget.image.value = layer
    widget.iterations.value = 4
    widget.runner.preview_interval = 0.0
    messages = []
    show = widget.runner.on_state
    widget.runner.on_state = lambda running, msg: (messages.append(msg), show(running, msg))
    assert widget.run()
    _wait_idle(qtbot, widget)
    # the plane and the step within it (on a loaded machine the run can end while the last
    # preview is drawn, and then its step's status is skipped so as not to overwrite 'done')
    assert any(re.search(r"plane [123]/3, step [1-4]/4", m) for m in messages), messages
    assert not any("/12" in m for m in messages)  # never the step over the whole stack
    assert viewer.layers["stack_dip_denoise"].data.shape == stack.shape


def test_noise_model_follows_the_image(widget_and_viewer):
    from napari_genprior.data.samples import astronaut_noisy, fluorescence_sample

    widget, viewer = widget_and_viewer
    data, kwargs, _ = fluorescence_sample()[1]
    fluo = viewer.add_image(data, **kwargs)
    widget.image.value = fluo
    assert widget.noise.value == "poisson-gaussian"  # the sample says so; 16-bit counts would too
    data, kwargs, _ = astronaut_noisy()[1]
    astro = viewer.add_image(data, **kwargs)
    widget.image.value = astro
    assert widget.noise.value == "gaussian"
    widget.image.value = viewer.add_image(np.zeros((16, 16), np.uint16), name="counts")
    assert widget.noise.value == "poisson-gaussian"


def test_previews_are_limited_by_time(widget_and_viewer, qtbot):
    widget, viewer = widget_and_viewer
    layer = viewer.add_image(np.random.default_rng(9).random((32, 32)).astype(np.float32), name="p")
    widget.image.value = layer
    widget.iterations.value = 40
    widget.preview_every.value = 1  # the engine offers a preview at every step
    widget.runner.preview_interval = 3600.0  # …but the canvas is redrawn at most once an hour
    shown = []
    real = widget.runner._show_preview
    widget.runner._show_preview = lambda data: (shown.append(1), real(data))
    assert widget.run()
    _wait_idle(qtbot, widget)
    assert len(shown) == 1


def test_a_first_preview_at_the_last_step_still_ends_in_run_and_done(widget_and_viewer, qtbot):
    """Adding the preview layer processes pending events, the end of the run included: the last
    step's status must not be written over 'done' afterwards."""
    widget, viewer = widget_and_viewer
    layer = viewer.add_image(np.random.default_rng(10).random((32, 32)).astype(np.float32), name="z")
    widget.image.value = layer
    widget.iterations.value = 3  # preview every 10 steps: the only preview comes with the last step
    assert widget.run()
    _wait_idle(qtbot, widget)
    qtbot.wait(100)
    assert widget.run_button.text == "Run"
    assert "done in" in widget.status.value, widget.status.value
    # 3 steps are far from a converged fit: the status says so and what to do (issue 25)
    assert "not converged" in widget.status.value and "at least 300" in widget.status.value


def test_denoise_defaults_to_the_filter_and_hides_the_network_settings(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = DipWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.task.value == "denoise" and widget.method.value == "filter"
    assert widget.params()["method"] == "filter"

    def shown(w):  # set visible (the dock itself need not be on screen)
        return not w.native.isHidden()

    assert not any(shown(w) for w in (widget.preset, widget.iterations_auto, widget.seed, widget.uncertainty))
    widget.method.value = "dip"
    assert all(shown(w) for w in (widget.preset, widget.iterations_auto, widget.seed, widget.uncertainty))
    widget.method.value = "filter"
    widget.task.value = "sr"  # the filter only denoises: SR shows the network's settings, no method
    assert not shown(widget.method) and shown(widget.preset)
    widget.task.value = "denoise"

    rng = np.random.default_rng(1)
    clean = np.kron(rng.random((8, 8)), np.ones((8, 8))) * 150 + 50
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    layer = viewer.add_image(noisy, name="cells", scale=(0.5, 0.5))
    widget.image.value = layer
    widget.noise.value = "gaussian"
    widget.uncertainty.value = True  # hidden with the filter, so it must not reach the engine
    widget.run_button.clicked()
    _wait_idle(qtbot, widget)
    out = viewer.layers["cells_dip_denoise"]
    assert out.metadata["method"] == "filter" and out.data.dtype == np.uint8
    assert tuple(out.scale) == (0.5, 0.5)
    err_in = np.abs(noisy.astype(float) - clean).mean()
    assert np.abs(out.data.astype(float) - clean).mean() < 0.5 * err_in
    np.testing.assert_array_equal(layer.data, noisy)  # input untouched
    assert [lay.name for lay in viewer.layers] == ["cells", "cells_dip_denoise"]
