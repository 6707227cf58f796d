"""The Invertible Rescaling widget in a real napari viewer (under Xvfb)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_genprior._napari.irn_widget import IrnWidget
from napari_genprior.nets.irn import InvRescaleNet

pytest.importorskip("napari")


@pytest.fixture
def ckpt(tmp_path):
    path = tmp_path / "x2.pt"
    torch.save({"model": InvRescaleNet(1, 1, 2, 8).state_dict(), "config": {"scale": 2}}, path)
    return path


def test_roundtrip_then_up_in_the_viewer(make_napari_viewer, qtbot, ckpt):
    viewer = make_napari_viewer()
    widget = IrnWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert "not a general super-resolver" in widget.about.value
    data = (np.random.default_rng(0).random((40, 30)) * 3000).astype(np.uint16)
    layer = viewer.add_image(data, name="cells", scale=(0.5, 0.5), translate=(2.0, 3.0))
    before = data.copy()
    widget.image.value = layer
    widget.weights.value = str(ckpt)
    assert "checkpoint" in widget.model_info.value
    widget.mode.value = "roundtrip"  # the widget opens in down
    widget.samples.value = 2
    assert widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    lr, hr = viewer.layers["cells_irn_lr"], viewer.layers["cells_irn_hr"]
    assert lr.data.shape == (20, 15) and lr.data.dtype == np.uint16
    assert tuple(lr.scale) == (1.0, 1.0) and tuple(lr.translate) == (2.25, 3.25)  # overlays the input
    assert hr.data.shape == data.shape and tuple(hr.scale) == (0.5, 0.5)
    assert viewer.layers["cells_irn_uncertainty"].data.shape == data.shape
    assert lr.metadata["irn"]["hr_shape"] == [40, 30]
    np.testing.assert_array_equal(layer.data, before)  # input untouched

    # up on the LR layer uses what down stored, and is placed over the original
    widget.image.value = lr
    widget.mode.value = "up"
    widget.samples.value = 1
    widget.tau.value = 0.0
    assert widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    up = viewer.layers[-1]
    assert up.name.startswith("cells_irn_hr") and up.data.shape == data.shape
    assert tuple(up.scale) == (0.5, 0.5) and tuple(up.translate) == (2.0, 3.0)

    widget.scale.value = 4  # wrong scale for this LR: refused, viewer unchanged
    n = len(viewer.layers)
    assert not widget.run()
    assert "×2" in widget.status.value and len(viewer.layers) == n


def test_up_uses_the_record_of_down_only_on_the_lr_it_describes():
    from napari.layers import Image

    from napari_genprior._napari.irn_widget import irn_inputs

    record = {"irn": {"scale": 2, "value_range": [100.0, 4000.0], "hr_shape": [41, 30]}}
    lr = Image(np.zeros((21, 15), np.uint16), name="c_irn_lr", metadata=record)
    _, p = irn_inputs(lr, "up", scale=2)
    assert p["value_range"] == (100.0, 4000.0) and p["hr_shape"] == (41, 30)
    hr = Image(np.zeros((41, 30), np.uint16), name="c_irn_hr", metadata=record)  # an HR result
    _, p = irn_inputs(hr, "up", scale=2)
    assert "value_range" not in p and "hr_shape" not in p


def test_bundled_model_by_default(make_napari_viewer, qtbot):
    """No checkpoint chosen: the bundled irn-x2/irn-x4 run, with the τ their cards recommend."""
    from napari_genprior.models import card

    viewer = make_napari_viewer()
    widget = IrnWidget(viewer)
    assert "irn-x2" in widget.model_info.value and "bicubic" in widget.model_info.value
    assert widget.tau.value == card("irn-x2")["recommended_tau"]
    widget.scale.value = 4
    assert "irn-x4" in widget.model_info.value
    widget.scale.value = 2
    widget.mode.value = "roundtrip"
    data = (np.random.default_rng(1).random((32, 32)) * 255).astype(np.uint8)
    widget.image.value = viewer.add_image(data, name="img")
    assert widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    hr = viewer.layers["img_irn_hr"]
    assert hr.data.shape == (32, 32) and hr.metadata["network"]["model"] == "irn-x2"


def test_uncertainty_at_tau_0_is_refused_not_a_black_layer(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = IrnWidget(viewer)
    data = (np.random.default_rng(2).random((32, 32)) * 255).astype(np.uint8)
    widget.image.value = viewer.add_image(data, name="img")
    assert widget.tau.value == 0.0  # the bundled model's card recommends τ = 0
    widget.mode.value = "roundtrip"
    widget.samples.value = 3
    assert not widget.run()
    assert "all zeros" in widget.status.value and "trained for tau 0 only" in widget.status.value
    assert [lay.name for lay in viewer.layers] == ["img"]
    widget.tau.value = 0.05  # draws that differ (for this τ = 0 model they mean little: docs/irn.md)
    assert widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    unc = viewer.layers["img_irn_uncertainty"].data
    assert unc.max() > 0
    # the round trip's HR is on top of the LR and the uncertainty, and selected
    names = [lay.name for lay in viewer.layers]
    assert names[-1] == "img_irn_hr" and set(names[1:-1]) == {"img_irn_lr", "img_irn_uncertainty"}
    assert viewer.layers.selection.active is viewer.layers["img_irn_hr"]


def test_down_hides_and_ignores_samples(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = IrnWidget(viewer)
    assert widget.mode.value == "down"  # the first step of the workflow: shrink, then restore
    assert widget.samples.native.isHidden() and widget.tau.native.isHidden()
    widget.samples.value = 4
    assert widget.params()["samples"] == 1  # down draws nothing
    widget.mode.value = "up"
    assert not widget.samples.native.isHidden() and widget.params()["samples"] == 4
    widget.mode.value = "down"
    assert widget.samples.native.isHidden() and widget.params()["samples"] == 1


def test_down_by_default_adds_the_lr_over_the_input(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    widget = IrnWidget(viewer)
    data = (np.random.default_rng(3).random((32, 32)) * 255).astype(np.uint8)
    widget.image.value = viewer.add_image(data, name="img")
    assert widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    assert [lay.name for lay in viewer.layers] == ["img", "img_irn_lr"]
    assert viewer.layers["img_irn_lr"].data.shape == (16, 16)


def test_an_lr_saved_from_napari_keeps_its_record_for_up(make_napari_viewer, qtbot, ckpt, tmp_path):
    """napari's own TIFF writer drops layer.metadata; the plugin's writer keeps IRN's record in the
    TIFF description, its reader gives it back, and ``up`` (widget and CLI) restores from it."""
    from napari_genprior._napari.files import get_reader
    from napari_genprior._napari.irn_widget import irn_inputs
    from napari_genprior.io import read_metadata, write_image

    viewer = make_napari_viewer()
    widget = IrnWidget(viewer)
    data = (np.random.default_rng(0).random((40, 30)) * 3000 + 100).astype(np.uint16)
    widget.image.value = viewer.add_image(data, name="cells")
    widget.weights.value = str(ckpt)
    assert widget.mode.value == "down" and widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    lr = viewer.layers["cells_irn_lr"]
    record = dict(lr.metadata["irn"])

    path = tmp_path / "cells_lr.tif"
    viewer.layers.selection = {lr}
    saved = viewer.layers.save(str(path), selected=True, plugin="napari-genprior")
    assert saved == [str(path)] and read_metadata(path)["irn"] == record
    (reopened,) = viewer.open(str(path), plugin="napari-genprior")
    np.testing.assert_array_equal(reopened.data, lr.data)
    assert reopened.metadata["irn"] == record
    _, p = irn_inputs(reopened, "up", scale=2)
    assert p["hr_shape"] == (40, 30) and p["value_range"] == tuple(record["value_range"])

    plain = tmp_path / "plain.tif"
    write_image(plain, data)
    assert get_reader(str(plain)) is None  # a TIFF without a record is left to napari's reader
    assert get_reader(str(path)) is not None


def test_a_multiscale_layer_runs_on_its_full_resolution_level(make_napari_viewer, qtbot, ckpt, monkeypatch):
    """A pyramid layer (dask levels, as pyramids are) is restored at level 0 (the level its scale
    describes), placed over it; a level-0 plane too large to load is refused in one line before
    anything is loaded or added."""
    import dask.array as da

    from napari_genprior.engines import planewise

    viewer = make_napari_viewer()
    widget = IrnWidget(viewer)
    full = (np.random.default_rng(1).random((64, 48)) * 3000 + 100).astype(np.uint16)
    pyramid = [da.from_array(full, chunks=32), da.from_array(full[::2, ::2].copy(), chunks=32)]
    layer = viewer.add_image(pyramid, multiscale=True, name="big", scale=(0.5, 0.5))
    assert layer.multiscale
    widget.image.value = layer
    widget.weights.value = str(ckpt)
    assert widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    lr = viewer.layers["big_irn_lr"]
    assert lr.data.shape == (32, 24) and tuple(lr.scale) == (1.0, 1.0)
    assert lr.metadata["irn"]["hr_shape"] == [64, 48]

    monkeypatch.setattr(planewise, "MAX_PLANE_PIXELS", 1000)
    n = len(viewer.layers)
    assert not widget.run()
    assert "Mpixel" in widget.status.value and "add a region" in widget.status.value
    assert len(viewer.layers) == n
