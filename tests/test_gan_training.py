"""One GAN training step end to end: data, losses, R1, EMA, checkpoint, resume, sample grid."""

from __future__ import annotations

import torch

from napari_genprior.train.gan import GanConfig, build_models, diff_augment, train_gan


def tiny(data: str, out, **kw) -> GanConfig:
    """A 16×16 model with 16 channels, two steps, R1 every step."""
    base = dict(size=16, steps=2, batch=4, style_dim=16, n_mlp=2, max_channels=16, pool=8, r1_every=1)
    return GanConfig(data=data, out=str(out), **{**base, **kw})


def test_two_steps_then_resume(tmp_path):
    cfg = tiny("shading", tmp_path / "g.pt", sample_every=2, ckpt_every=1, augment=True, amp=True)
    logs = []
    path = train_gan(cfg, log=logs.append)
    ck = torch.load(path, weights_only=True)
    assert ck["step"] == 2 and ck["channels"] == 1
    assert (tmp_path / "g_samples_000002.png").exists()
    g_before = {k: v.clone() for k, v in ck["g_ema"].items()}
    cfg.steps = 3
    train_gan(cfg, log=logs.append)
    assert any("resumed" in m for m in logs)
    ck = torch.load(path, weights_only=True)
    assert ck["step"] == 3
    assert any(not torch.equal(ck["g_ema"][k], g_before[k]) for k in g_before)


def test_diff_augment_is_differentiable_and_keeps_shape():
    x = torch.rand(3, 2, 16, 16, requires_grad=True)
    y = diff_augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None


def test_no_noise_keeps_noise_strengths_at_zero_and_z_sets_the_image(tmp_path):
    cfg = tiny("albedo", tmp_path / "n.pt", noise=False)
    ck = torch.load(train_gan(cfg, log=lambda m: None), weights_only=True)
    strengths = [v for k, v in ck["g"].items() if k.endswith("noise.weight")]
    assert strengths and all(float(v.abs().max()) == 0 for v in strengths)
    assert ck["channels"] == 3
    g = build_models(cfg, 3)[0]
    g.load_state_dict(ck["g"])
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = g(z, noise="random"), g(z, noise="random")
    assert torch.equal(a, b)  # random noise inputs change nothing …
    assert (a[0] - a[1]).abs().max() > 1e-3  # … while z does


def test_r1_gamma_heuristic_scales_with_area_over_batch():
    from napari_genprior.train.gan import r1_gamma_heuristic

    assert abs(r1_gamma_heuristic(64, 8) - 0.1024) < 1e-9
    assert r1_gamma_heuristic(128, 8) == 4 * r1_gamma_heuristic(64, 8)


def test_resume_with_the_other_noise_setting_is_refused_clearly(tmp_path):
    import pytest

    train_gan(tiny("shading", tmp_path / "g.pt", steps=1, noise=False), log=lambda m: None)
    with pytest.raises(ValueError, match="trained without noise inputs: resume with --no-noise"):
        train_gan(tiny("shading", tmp_path / "g.pt", steps=2), log=lambda m: None)


def test_pool_zero_streams_fresh_training_images_each_step(tmp_path, monkeypatch):
    from napari_genprior.data.generators import EVAL_SEED_START
    from napari_genprior.train import gan

    seen = []
    real_batch = gan._domain_batch

    def spy(domain, size, first_seed, n):
        seen.append((first_seed, n))
        return real_batch(domain, size, first_seed, n)

    monkeypatch.setattr(gan, "_domain_batch", spy)
    cfg = tiny("albedo", tmp_path / "s.pt", pool=0, steps=3)
    ck = torch.load(train_gan(cfg, log=lambda m: None), weights_only=True)
    assert ck["step"] == 3 and ck["channels"] == 3
    # one batch to learn the channel count, then seeds 0…3, 4…7, 8…11: never the same image twice
    assert seen == [(0, 4), (0, 4), (4, 4), (8, 4)]
    cfg.steps = 5
    train_gan(cfg, log=lambda m: None)  # resume continues the stream where it stopped
    assert seen[-2:] == [(12, 4), (16, 4)]
    # the stream wraps before it reaches the evaluation seeds
    last = gan._stream_seed(cfg, EVAL_SEED_START // 4 - 1)
    assert last + 4 <= EVAL_SEED_START and gan._stream_seed(cfg, EVAL_SEED_START // 4) == 0


def test_pool_out_of_range_is_refused(tmp_path):
    import pytest

    with pytest.raises(ValueError, match="pool must be 0"):
        train_gan(tiny("albedo", tmp_path / "x.pt", pool=-1), log=lambda m: None)
