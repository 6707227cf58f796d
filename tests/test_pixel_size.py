"""Pixel sizes survive the command line: an OME-TIFF's (or an ImageJ TIFF's) pixel size is read and
written to the outputs, scaled where the output is larger or smaller than the input."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from napari_genprior.cli import main
from napari_genprior.io import output_pixel_size, read_pixel_size, write_image


def _ome(path, data, py=0.325, px=0.25, unit="µm"):
    tifffile.imwrite(
        path,
        data,
        ome=True,
        metadata={
            "axes": "YX",
            "PhysicalSizeX": px,
            "PhysicalSizeY": py,
            "PhysicalSizeXUnit": unit,
            "PhysicalSizeYUnit": unit,
        },
    )


def test_read_pixel_size_from_ome_imagej_and_plain_tiffs(tmp_path):
    img = np.zeros((16, 16), np.uint16)
    _ome(tmp_path / "a.ome.tif", img)
    assert read_pixel_size(tmp_path / "a.ome.tif") == pytest.approx((0.325, 0.25))
    _ome(tmp_path / "nm.ome.tif", img, 325.0, 250.0, "nm")
    assert read_pixel_size(tmp_path / "nm.ome.tif") == pytest.approx((0.325, 0.25))
    tifffile.imwrite(
        tmp_path / "ij.tif", img, imagej=True, resolution=(1 / 0.5, 1 / 0.4), metadata={"unit": "um"}
    )
    assert read_pixel_size(tmp_path / "ij.tif") == pytest.approx((0.4, 0.5))
    tifffile.imwrite(tmp_path / "plain.tif", img)
    assert read_pixel_size(tmp_path / "plain.tif") is None
    assert read_pixel_size(tmp_path / "missing.tif") is None
    write_image(tmp_path / "w.tif", img, {"x": 1}, pixel_size=(0.1, 0.2))
    assert read_pixel_size(tmp_path / "w.tif") == pytest.approx((0.1, 0.2))
    assert output_pixel_size((0.4, 0.2), 2) == (0.2, 0.1) and output_pixel_size(None, 2) is None


def test_cli_keeps_the_pixel_size_and_scales_it_for_sr(tmp_path):
    rng = np.random.default_rng(0)
    img = (rng.random((32, 32)) * 4000 + 200).astype(np.uint16)
    _ome(tmp_path / "in.ome.tif", img)
    assert (
        main(
            [
                "dip",
                "denoise",
                str(tmp_path / "in.ome.tif"),
                "-o",
                str(tmp_path / "d.tif"),
                "--iterations",
                "2",
                "-q",
            ]
        )
        == 0
    )
    assert read_pixel_size(tmp_path / "d.tif") == pytest.approx((0.325, 0.25))
    assert (
        main(
            [
                "dip",
                "sr",
                str(tmp_path / "in.ome.tif"),
                "-o",
                str(tmp_path / "s.tif"),
                "--scale",
                "2",
                "--iterations",
                "2",
                "-q",
            ]
        )
        == 0
    )
    assert read_pixel_size(tmp_path / "s.tif") == pytest.approx((0.1625, 0.125))
    assert (
        main(
            [
                "irn",
                "down",
                str(tmp_path / "in.ome.tif"),
                "-o",
                str(tmp_path / "lr.tif"),
                "--scale",
                "2",
                "-q",
            ]
        )
        == 0
    )
    assert read_pixel_size(tmp_path / "lr.tif") == pytest.approx((0.65, 0.5))
    assert (
        main(["irn", "up", str(tmp_path / "lr.tif"), "-o", str(tmp_path / "hr.tif"), "--scale", "2", "-q"])
        == 0
    )
    assert read_pixel_size(tmp_path / "hr.tif") == pytest.approx((0.325, 0.25))
