"""Synthetic data generators: shapes, ranges, determinism, and the `synth` command."""

from __future__ import annotations

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_genprior.cli import main
from napari_genprior.data import generators as g


@pytest.mark.parametrize(
    ("domain", "shape"),
    [("albedo", (32, 32, 3)), ("shading", (32, 32)), ("nuclei", (32, 32)), ("illumination", (32, 32))],
)
def test_domains_shapes_ranges_and_determinism(domain, shape):
    a, b = g.generate(domain, 2, 32, seed=5)
    again = g.DOMAINS[domain](32, 5)
    assert a.shape == shape and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1 and a.std() > 0.01
    np.testing.assert_array_equal(a, again)  # a sample is a pure function of its seed
    assert not np.array_equal(a, b)


def test_scene_is_albedo_times_shading():
    s = g.scene(32, seed=3)
    np.testing.assert_allclose(s["image"], s["albedo"] * s["shading"][..., None], rtol=1e-6)
    assert s["shading"].max() <= 1 and s["image"].shape == (32, 32, 3)


def test_illumination_is_smooth_and_normalised():
    f = g.illumination(64, seed=1)
    assert f.max() == pytest.approx(1.0) and f.min() >= 0.2
    assert np.abs(np.diff(f, axis=0)).max() < 0.1  # no sharp edges


def test_synth_command_writes_files(tmp_path):
    assert main(["synth", "scene", "-n", "2", "--size", "32", "--seed", "1000000", "-o", str(tmp_path)]) == 0
    img = iio.imread(tmp_path / "scene_1000000.png")
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert iio.imread(tmp_path / "scene_1000001_shading.png").dtype == np.uint16
    assert main(["synth", "nuclei", "-n", "1", "--size", "32", "-o", str(tmp_path)]) == 0
    assert tifffile.imread(tmp_path / "nuclei_0000000.tif").dtype == np.uint16
    assert main(["synth", "albedo", "-n", "0", "-o", str(tmp_path)]) == 2
