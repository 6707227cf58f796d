"""The npe2 manifest and the sample data it points to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from npe2 import PluginManifest

import napari_genprior
from napari_genprior.data import samples

MANIFEST = Path(napari_genprior.__file__).parent / "napari.yaml"


def test_manifest_validates_and_points_to_real_callables():
    pm = PluginManifest.from_file(MANIFEST)  # raises on an invalid manifest
    assert pm.name == "napari-genprior"
    widgets = {w.display_name for w in pm.contributions.widgets}
    assert {
        "Deep Image Prior",
        "Invertible Rescaling",
        "Decompose (JoIN)",
        "Flat-field correction (JoIN)",
        "GLEAN super-resolution",
    } <= widgets
    menu = pm.contributions.menus["napari/layers/filter"]
    in_filter = {item.command for item in menu}
    assert {
        "napari-genprior.dip_widget",
        "napari-genprior.join_widget",
        "napari-genprior.flatfield_widget",
    } <= in_filter
    transform = pm.contributions.menus["napari/layers/transform"]
    assert {"napari-genprior.irn_widget", "napari-genprior.glean_widget"} <= {
        item.command for item in transform
    }
    keys = {s.key for s in pm.contributions.sample_data}
    assert {"prior_albedo", "prior_shading", "prior_nuclei", "prior_illumination"} <= keys
    for cmd in pm.contributions.commands:
        module, _, attr = cmd.python_name.partition(":")
        obj = __import__(module, fromlist=[attr])
        assert callable(getattr(obj, attr)), cmd.python_name


def test_fluorescence_sample():
    (clean, cmeta, ctype), (noisy, nmeta, ntype) = samples.fluorescence_sample()
    assert clean.shape == noisy.shape == (256, 256)
    assert noisy.dtype == np.uint16 and clean.dtype == np.float32
    assert ctype == ntype == "image" and nmeta["name"] == "fluo_noisy"
    # Poisson–Gaussian: the noise variance grows with the signal
    resid = noisy.astype(float) - clean
    bright = clean > np.percentile(clean, 90)
    dark = clean <= np.percentile(clean, 30)
    assert resid[bright].var() > 2 * resid[dark].var()


def test_natural_samples():
    (clean, _, _), (noisy, _, _) = samples.astronaut_noisy()
    assert clean.shape == noisy.shape == (256, 256, 3) and noisy.dtype == np.uint8
    (cam, _, _), (damaged, _, _), (mask, _, mtype) = samples.camera_missing()
    assert mtype == "labels" and 0.45 < mask.mean() < 0.55
    assert np.all(damaged[mask > 0] == 0)
