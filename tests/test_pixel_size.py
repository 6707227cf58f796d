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


def _ome_zarr(path, data, py=0.3, px=0.25):
    from bioio_ome_zarr.writers import OMEZarrWriter

    axes = ["c", "y", "x"][-data.ndim :]
    writer = OMEZarrWriter(
        str(path),
        level_shapes=[data.shape],
        dtype=data.dtype,
        axes_names=axes,
        axes_types=["channel", "space", "space"][-data.ndim :],
        axes_units=[None, "micrometer", "micrometer"][-data.ndim :],
        physical_pixel_size=[1.0, py, px][-data.ndim :],
    )
    writer.write_full_volume(data)


def test_an_ome_zarr_is_read_through_bioio_and_its_pixel_size_reaches_the_output(tmp_path):
    pytest.importorskip("bioio_ome_zarr")
    from napari_genprior.io import read_image

    img = (np.random.default_rng(5).random((2, 32, 32)) * 3000 + 100).astype(np.uint16)
    _ome_zarr(tmp_path / "cells.ome.zarr", img)
    np.testing.assert_array_equal(read_image(tmp_path / "cells.ome.zarr"), img)
    assert read_pixel_size(tmp_path / "cells.ome.zarr") == pytest.approx((0.3, 0.25))
    out = tmp_path / "lr.tif"
    assert main(["irn", "down", str(tmp_path / "cells.ome.zarr"), "-o", str(out), "-q"]) == 0
    assert read_pixel_size(out) == pytest.approx((0.6, 0.5))
    # a folder holding OME-Zarr images is a batch; each output is a TIFF named after its input
    batch = tmp_path / "plate"
    batch.mkdir()
    (tmp_path / "cells.ome.zarr").rename(batch / "a.ome.zarr")
    assert main(["irn", "down", str(batch), "-o", str(tmp_path / "out"), "-q"]) == 0
    assert read_pixel_size(tmp_path / "out" / "a.tif") == pytest.approx((0.6, 0.5))


def test_unreadable_zarr_and_missing_bioio_get_one_line(tmp_path, monkeypatch, capsys):
    import builtins

    from napari_genprior.errors import InputError
    from napari_genprior.io import read_image

    (tmp_path / "empty.zarr").mkdir()
    if __import__("importlib").util.find_spec("bioio") is not None:
        with pytest.raises(InputError, match="no OME-Zarr image found"):
            read_image(tmp_path / "empty.zarr")
    real_import = builtins.__import__

    def no_bioio(name, *a, **k):
        if name == "bioio" or name.startswith("bioio."):
            raise ImportError(name)
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_bioio)
    assert main(["irn", "down", str(tmp_path / "empty.zarr"), "-o", str(tmp_path / "x.tif"), "-q"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and 'pip install "napari-genprior[files]"' in err
