"""The GLEAN widget in a real napari viewer, and the `glean` command line (tiny trained models)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_genprior._napari.glean_widget import GleanWidget
from napari_genprior.cli import main
from napari_genprior.train.glean import GleanConfig, train_glean

pytest.importorskip("napari")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A ×8 GLEAN on the nuclei bank trained for 1 step (rrdb 1, width 8)."""
    out = tmp_path_factory.mktemp("gleanw") / "tiny.pt"
    train_glean(GleanConfig(out=str(out), steps=1, batch=2, rrdb_blocks=1, width=8), log=lambda s: None)
    return out


def test_result_sits_over_the_input_at_eight_times_the_pixels(make_napari_viewer, qtbot, tiny):
    viewer = make_napari_viewer()
    widget = GleanWidget(viewer)
    viewer.window.add_dock_widget(widget)
    data = (np.random.default_rng(0).random((20, 24)) * 4000).astype(np.uint16)
    layer = viewer.add_image(data, name="cells", scale=(0.8, 0.8), translate=(5.0, 7.0))
    before = data.copy()
    widget.image.value = layer
    widget.model_file.value = str(tiny)
    assert "file" in widget.model_info.value
    assert widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    out = viewer.layers["cells_glean_x8"]
    assert out.data.shape == (160, 192) and out.data.dtype == np.uint16
    assert tuple(out.scale) == (0.1, 0.1)
    # pixel edges coincide: the first output pixel's edge is the input's (translate − scale/2)
    assert np.allclose(np.array(out.translate) - np.array(out.scale) / 2, (5.0 - 0.4, 7.0 - 0.4))
    assert out.metadata["engine"] == "glean" and out.metadata["scale"] == 8
    assert viewer.layers.selection.active is out
    np.testing.assert_array_equal(layer.data, before)


def test_wrong_scale_and_bad_layers_are_refused(make_napari_viewer, tiny):
    viewer = make_napari_viewer()
    widget = GleanWidget(viewer)
    layer = viewer.add_image(np.ones((16, 16), np.float32), name="a")
    widget.image.value = layer
    widget.model_file.value = str(tiny)
    widget.scale.value = 16  # the model is ×8
    assert not widget.run()
    assert "×8" in widget.status.value
    widget.scale.value = 8
    rgb = viewer.add_image(np.zeros((16, 16, 3), np.uint8), name="rgb", rgb=True)
    widget.image.value = rgb
    assert not widget.run()
    assert "grey" in widget.status.value
    assert [lay.name for lay in viewer.layers] == ["a", "rgb"] and not widget.running


def test_cancel_leaves_the_viewer_as_it_was(make_napari_viewer, qtbot, tiny):
    viewer = make_napari_viewer()
    widget = GleanWidget(viewer)
    viewer.window.add_dock_widget(widget)
    layer = viewer.add_image(np.random.default_rng(1).random((400, 400)).astype(np.float32), name="big")
    widget.image.value = layer
    widget.model_file.value = str(tiny)
    assert widget.run()
    widget.run_button.clicked()  # Cancel
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    assert [lay.name for lay in viewer.layers] == ["big"]
    assert widget.status.value.endswith("cancelled")


def test_cli_writes_the_dtype_and_compares_to_a_reference(tmp_path, tiny, capsys):
    import tifffile

    hr = (np.random.default_rng(2).random((64, 48)) * 60000).astype(np.uint16)
    lr = hr[::8, ::8]
    tifffile.imwrite(tmp_path / "lr.tif", lr)
    tifffile.imwrite(tmp_path / "hr.tif", hr)
    rc = main(
        [
            "glean",
            str(tmp_path / "lr.tif"),
            "-o",
            str(tmp_path / "out" / "sr.tif"),
            "--model",
            str(tiny),
            "--reference",
            str(tmp_path / "hr.tif"),
            "--metadata",
            str(tmp_path / "run.json"),
            "-q",
        ]
    )
    assert rc == 0
    sr = tifffile.imread(tmp_path / "out" / "sr.tif")
    assert sr.shape == (64, 48) and sr.dtype == np.uint16
    assert "PSNR" in capsys.readouterr().out
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["engine"] == "glean" and "psnr" in meta["metrics"]
    # bad input: one line, exit 2, nothing written
    assert main(["glean", str(tmp_path / "lr.tif"), "-o", str(tmp_path / "x.tif"), "--model", "nope"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert not (tmp_path / "x.tif").exists()
    assert (
        main(
            [
                "glean",
                str(tmp_path / "lr.tif"),
                "-o",
                str(tmp_path / "y.tif"),
                "--model",
                str(tiny),
                "--scale",
                "16",
            ]
        )
        == 2
    )
    assert "×8" in capsys.readouterr().err


def test_cli_batch_over_a_folder(tmp_path, tiny):
    import tifffile

    src = tmp_path / "in"
    src.mkdir()
    for i in range(2):
        tifffile.imwrite(src / f"p{i}.tif", np.random.default_rng(i).random((16, 16)).astype(np.float32))
    rc = main(["glean", str(src), "-o", str(tmp_path / "out"), "--model", str(tiny), "-q"])
    assert rc == 0
    for i in range(2):
        assert tifffile.imread(tmp_path / "out" / f"p{i}.tif").shape == (128, 128)
    record = json.loads((tmp_path / "out" / "batch.json").read_text())
    assert [j["status"] for j in record["images"]] == ["done", "done"]
