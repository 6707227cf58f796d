"""GAN priors end to end: export with a model card, loading (ours and stylegan2-pytorch layout),
deterministic sampling, the fidelity figure and the ``sample`` command."""

from __future__ import annotations

import argparse
import json

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile
import torch

from napari_genprior.cli import main
from napari_genprior.data.generators import EVAL_SEED_START, generate
from napari_genprior.engines.prior import load_prior, sample_prior
from napari_genprior.metrics import laplacian_patches, swd
from napari_genprior.nets.stylegan2 import Generator
from napari_genprior.train.fidelity import blurred_noise
from napari_genprior.train.gan import GanConfig, export_gan, train_gan


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("gan")
    cfg = GanConfig(
        data="shading", out=str(d / "g.pt"), size=16, steps=2, batch=4, style_dim=16, n_mlp=2,
        max_channels=16, pool=8, sample_every=100, ckpt_every=1,
    )  # fmt: skip
    return train_gan(cfg, log=lambda _m: None)


def test_export_card_and_float16_bundle(tiny_ckpt, tmp_path):
    out = export_gan(tiny_ckpt, tmp_path / "shading-test.pt", grid_png=tmp_path / "grid.png", n_eval=32)
    bundle = torch.load(out, weights_only=True)
    assert bundle["model"]["conv1.conv.weight"].dtype == torch.float16
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["task"] == "gan-prior" and card["steps"] == 2 and card["size"] == 16
    assert card["iterations_per_s"] > 0
    m = card["metrics"]["mean"]
    assert set(m) == {"prior", "baseline_blurred_noise", "real_vs_real"}
    # the noise floor (two draws of real data) is far below the blurred-noise baseline
    assert m["real_vs_real"] < 0.5 * m["baseline_blurred_noise"]
    layout = card["metrics"]["layout_correlation"]
    assert set(layout) == {"prior", "real", "prior_interior", "real_interior"} and abs(layout["real"]) < 0.2
    assert iio.imread(tmp_path / "grid.png").shape == (64, 64, 3)


def test_sampling_is_deterministic_and_in_range(tiny_ckpt):
    g = load_prior(tiny_ckpt)
    a = sample_prior(g, 5, seed=3)
    b = sample_prior(g, 5, seed=3, batch=2)
    assert a.shape == (5, 16, 16) and a.dtype == np.float32
    assert 0 <= a.min() and a.max() <= 1
    np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(a, sample_prior(g, 5, seed=4))
    t = sample_prior(g, 5, seed=3, truncation=0.0)  # all latents at the mean: identical images
    assert np.abs(t - t[:1]).max() < 1e-4
    t7 = sample_prior(g, 3, seed=3, truncation=0.7)  # sample i does not depend on n
    np.testing.assert_allclose(t7, sample_prior(g, 5, seed=3, truncation=0.7)[:3], atol=1e-5)


def test_loads_stylegan2_pytorch_checkpoint(tmp_path):
    g = Generator(size=8, style_dim=32, n_mlp=2, max_channels=32, image_channels=3)
    torch.save({"g_ema": g.state_dict(), "latent_avg": torch.zeros(32)}, tmp_path / "rosinality.pt")
    g2 = load_prior(tmp_path / "rosinality.pt")
    assert g2.image_channels == 3 and sample_prior(g2, 2).shape == (2, 8, 8, 3)
    # training checkpoints of stylegan2-pytorch pickle argparse args: clear advice, no unpickling
    torch.save({"g_ema": g.state_dict(), "args": argparse.Namespace(size=8)}, tmp_path / "train.pt")
    with pytest.raises(ValueError, match="keep only the generator"):
        load_prior(tmp_path / "train.pt")
    with pytest.raises(FileNotFoundError, match="neither a bundled prior"):
        load_prior("no-such-prior")


def test_fidelity_ranks_real_data_closest():
    real = np.stack(generate("albedo", 48, 32, EVAL_SEED_START))
    other = np.stack(generate("albedo", 48, 32, 0))
    patches = laplacian_patches(real, patches_per_image=8)
    assert [p.shape for p in patches] == [(384, 147), (384, 147)]  # 32² and 16² levels, 3·7·7
    floor, noise = swd(real, other)["mean"], swd(real, blurred_noise(real, 48))["mean"]
    assert floor < 0.5 * noise
    assert swd(real, real)["mean"] < 0.5 * noise  # other patch positions of the same images
    assert blurred_noise(real[..., 0], 4).shape == (4, 32, 32)


def test_layout_correlation_sees_a_shared_layout_that_swd_misses():
    from napari_genprior.metrics import layout_correlation

    real = np.stack(generate("albedo", 32, 32, EVAL_SEED_START))
    assert abs(layout_correlation(real)) < 0.1  # independent layouts
    # one layout recoloured 32 times: the same edges everywhere
    rng = np.random.default_rng(0)
    recoloured = np.clip(real[:1] * rng.uniform(0.5, 1.5, (32, 1, 1, 3)), 0, 1)
    assert layout_correlation(recoloured) > 0.9
    assert layout_correlation(recoloured[..., 0]) > 0.9  # grey images too
    # a frame shared by independent layouts: seen in the whole image, not in the interior
    framed = real.copy()
    framed[:, :4], framed[:, -4:], framed[:, :, :4], framed[:, :, -4:] = 0, 0, 0, 0
    assert layout_correlation(framed) > 0.3 > abs(layout_correlation(framed, margin=5))
    with pytest.raises(ValueError, match="at least two"):
        layout_correlation(real[:1])
    with pytest.raises(ValueError, match="margin"):
        layout_correlation(real, margin=16)


def test_sample_command_grid_and_stack(tiny_ckpt, tmp_path, capsys):
    assert main(["sample", str(tiny_ckpt), "-n", "6", "-o", str(tmp_path / "g.png"), "--seed", "1"]) == 0
    assert iio.imread(tmp_path / "g.png").shape == (32, 48, 3)  # 3 per row (ceil √6), 2 rows
    assert main(["sample", str(tiny_ckpt), "-n", "3", "-o", str(tmp_path / "s.tif")]) == 0
    stack = tifffile.imread(tmp_path / "s.tif")
    assert stack.shape == (3, 16, 16) and stack.dtype == np.float32
    assert main(["sample", "nope", "-o", str(tmp_path / "x.png")]) == 2
    assert "neither a bundled prior" in capsys.readouterr().err
    assert main(["sample", str(tiny_ckpt), "-o", str(tmp_path / "x.bmp")]) == 2


def test_prior_sample_data_from_a_bundled_prior(tiny_ckpt, tmp_path, monkeypatch, capsys):
    import napari_genprior.models as models
    from napari_genprior.data.samples import prior_samples

    export_gan(tiny_ckpt, tmp_path / "tiny.pt", n_eval=16)
    monkeypatch.setattr(models, "MODEL_DIR", tmp_path)
    assert any(m["name"] == "tiny" and m["task"] == "gan-prior" for m in models.list_models())
    ((x, meta, kind),) = prior_samples("tiny", n=4, seed=2)
    assert kind == "image" and x.shape == (4, 16, 16) and meta["name"] == "tiny_prior_samples"
    assert meta["metadata"]["prior"] == "tiny" and "StyleGAN2" in meta["metadata"]["model_card"]
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    # the card opens with what the prior is for; the developer's summary follows among the details
    assert out.startswith("tiny: Prior over grey shading") and "summary: StyleGAN2 prior 'shading'" in out


def test_sampling_latents_do_not_replay_the_initialisation_stream():
    """Training initialises under torch.manual_seed(0); sample latents for seed 0 must not be the
    rows of the mapping network's first weight matrix (they were once: torch's generator, seed 0)."""
    from napari_genprior.engines.prior import latents
    from napari_genprior.nets.stylegan2 import Generator

    torch.manual_seed(0)
    w1 = Generator(size=16, style_dim=32, n_mlp=2, max_channels=16).style[1].weight.detach()
    z = latents(16, 32, seed=0)
    cos = torch.nn.functional.normalize(z, dim=1) @ torch.nn.functional.normalize(w1, dim=1).T
    assert float(cos.abs().max()) < 0.8  # random 32-d directions; a replayed row gives 1.0
    assert z.shape == (16, 32) and torch.equal(latents(4, 32, 0), z[:4])


def test_standardised_swd_ignores_brightness_and_contrast_but_not_texture():
    """texture_swd's comparison: the same images at another brightness and contrast score as low as
    other draws of the same texture (the patch-sampling floor) standardised, far lower than raw;
    blurred copies score far higher."""
    from scipy.ndimage import gaussian_filter

    from napari_genprior.metrics import swd

    rng = np.random.default_rng(0)
    a = np.clip(rng.random((16, 64, 64)) * 0.3 + 0.2, 0, 1).astype(np.float32)
    b = (0.5 * a + 0.05).astype(np.float32)  # dimmer, lower contrast
    blurred = np.stack([gaussian_filter(x, 1.5) for x in a]).astype(np.float32)
    floor = swd(a, np.clip(rng.random((16, 64, 64)) * 0.3 + 0.2, 0, 1).astype(np.float32), standardised=True)
    same = swd(a, b, standardised=True)["mean"]
    assert same < 1.5 * floor["mean"] and same < 0.25 * swd(a, b)["mean"]
    assert swd(a, blurred, standardised=True)["mean"] > 5 * same
