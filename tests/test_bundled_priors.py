"""The priors shipped in the package: cards, fidelity against held-out data, and the napari
sample-data entries that draw from them."""

from __future__ import annotations

import numpy as np
import pytest

from napari_genprior.data.generators import EVAL_SEED_START
from napari_genprior.engines.prior import load_prior, sample_prior
from napari_genprior.metrics import layout_correlation, swd
from napari_genprior.models import card, list_models
from napari_genprior.train.fidelity import blurred_noise
from napari_genprior.train.gan import _domain_images

PRIORS = {"albedo": (64, 3), "shading": (64, 1), "nuclei": (128, 1), "illumination": (64, 1)}


def test_bundled_priors_are_listed_with_cards():
    listed = {m["name"]: m for m in list_models() if m.get("task") == "gan-prior"}
    assert set(PRIORS) <= set(listed)
    for name, (size, channels) in PRIORS.items():
        c = listed[name]
        assert c["size"] == size and c["channels"] == channels
        assert (
            c["steps"] > 0
            and c["iterations_per_s"] > 0
            and c["command"].startswith("napari-genprior train gan")
        )
        m = c["metrics"]["mean"]
        assert m["prior"] < m["baseline_blurred_noise"] / 3, name


@pytest.mark.parametrize("name", sorted(PRIORS))
def test_shipped_prior_is_far_closer_to_held_out_data_than_blurred_noise(name):
    size, channels = PRIORS[name]
    g = load_prior(name)
    fake = sample_prior(g, 32, seed=5)
    assert fake.shape == ((32, size, size, 3) if channels == 3 else (32, size, size))
    assert fake.dtype == np.float32 and fake.min() >= 0 and fake.max() <= 1
    held = _domain_images(name, size, EVAL_SEED_START, 32)
    d_prior = swd(held, fake)["mean"]
    d_noise = swd(held, blurred_noise(held, 32, seed=1))["mean"]
    assert d_prior < d_noise / 3, (d_prior, d_noise)
    # the latent, not chance, sets the image: different seeds give different samples
    assert np.abs(fake[0] - fake[1]).mean() > 0.02
    # and the layouts are not all one: interior edge maps far from the collapsed albedo's 0.29
    assert layout_correlation(fake, margin=size // 8) < 0.2, name


@pytest.mark.parametrize("key,shape", [("prior_nuclei", (16, 128, 128)), ("prior_albedo", (16, 64, 64, 3))])
def test_sample_data_entry_in_the_viewer(make_napari_viewer, key, shape):
    viewer = make_napari_viewer()
    viewer.open_sample("napari-genprior", key)
    (layer,) = viewer.layers
    assert layer.data.shape == shape and layer.rgb == (len(shape) == 4)
    name = key.removeprefix("prior_")
    assert layer.name == f"{name}_prior_samples" and layer.metadata["prior"] == name
    assert layer.metadata["model_card"] == card(name)["summary"]
