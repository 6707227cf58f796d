"""StyleGAN2 modules: shapes, W+ and features, FIR ops, and the stylegan2-pytorch key layout."""

from __future__ import annotations

import torch

from napari_genprior.nets.stylegan2 import Discriminator, Generator, NoiseInjection, make_kernel, upfirdn2d

SMALL = {"size": 16, "style_dim": 32, "n_mlp": 2, "max_channels": 32}


def test_generator_shapes_wplus_and_features():
    torch.manual_seed(0)
    g = Generator(**SMALL)
    assert g.n_latent == 6
    z = torch.randn(2, 32)
    img, feats = g(z, return_features=True)
    assert img.shape == (2, 3, 16, 16) and [f.shape[-1] for f in feats] == [4, 8, 16]
    w = g.mapping(z)
    torch.testing.assert_close(g(w=w), img)  # z → w → image is the same path
    wp = w[:, None].repeat(1, g.n_latent, 1)
    torch.testing.assert_close(g(w_plus=wp), img)
    wp2 = wp.clone()
    wp2[:, -1] += 1.0  # change only the last layer's latent: the image changes
    assert not torch.allclose(g(w_plus=wp2), img)
    for m in g.modules():  # noise strengths start at zero, as in StyleGAN2
        if isinstance(m, NoiseInjection):
            m.weight.data.fill_(0.5)
    assert not torch.allclose(g(z, noise="random"), g(z, noise="random"))


def test_discriminator_and_grad_flow():
    g, d = Generator(**SMALL), Discriminator(size=16, max_channels=32)
    score = d(g(torch.randn(4, 32)))
    assert score.shape == (4, 1)
    score.mean().backward()
    assert g.style[1].weight.grad is not None


def test_fir_upsample_keeps_constants():
    x = torch.full((1, 2, 6, 6), 0.5)
    k = make_kernel([1, 3, 3, 1]) * 4
    y = upfirdn2d(x, k, up=2, pad=(2, 1))
    assert y.shape == (1, 2, 12, 12)
    torch.testing.assert_close(y[..., 2:-2, 2:-2], torch.full_like(y[..., 2:-2, 2:-2], 0.5))


def test_loads_stylegan2_pytorch_layout():
    expected = {
        "style.1.weight",
        "style.1.bias",
        "style.2.weight",
        "style.2.bias",
        "input.input",
        "conv1.conv.weight",
        "conv1.conv.modulation.weight",
        "conv1.conv.modulation.bias",
        "conv1.noise.weight",
        "conv1.activate.bias",
        "to_rgb1.bias",
        "to_rgb1.conv.weight",
        "to_rgb1.conv.modulation.weight",
        "to_rgb1.conv.modulation.bias",
        "convs.0.conv.weight",
        "convs.0.conv.blur.kernel",
        "convs.0.conv.modulation.weight",
        "convs.0.conv.modulation.bias",
        "convs.0.noise.weight",
        "convs.0.activate.bias",
        "convs.1.conv.weight",
        "convs.1.conv.modulation.weight",
        "convs.1.conv.modulation.bias",
        "convs.1.noise.weight",
        "convs.1.activate.bias",
        "to_rgbs.0.bias",
        "to_rgbs.0.upsample.kernel",
        "to_rgbs.0.conv.weight",
        "to_rgbs.0.conv.modulation.weight",
        "to_rgbs.0.conv.modulation.bias",
        "noises.noise_0",
        "noises.noise_1",
        "noises.noise_2",
    }
    g = Generator(size=8, style_dim=32, n_mlp=2, max_channels=32)
    assert set(g.state_dict()) == expected
    # A checkpoint as stylegan2-pytorch saves it: {"g_ema": state_dict, ...}, possibly module.-prefixed.
    ckpt = {"g_ema": {f"module.{k}": v.clone() + 0.01 for k, v in g.state_dict().items()}, "latent_avg": None}
    g2 = Generator.from_state_dict(ckpt)
    assert g2.size == 8 and g2.style_dim == 32 and g2.channels == {4: 32, 8: 32}
    torch.testing.assert_close(g2.input.input, g.input.input + 0.01)


def test_tapered_channels_build_matching_generator_and_discriminator():
    from napari_genprior.nets.stylegan2 import Discriminator, tapered_channels

    ch = tapered_channels(64, 2048, 128)
    assert ch == {4: 128, 8: 128, 16: 128, 32: 64, 64: 32}
    g = Generator(size=64, style_dim=16, n_mlp=1, image_channels=1, channels=ch)
    d = Discriminator(size=64, image_channels=1, channels=ch)
    x = g(torch.randn(2, 16))
    assert x.shape == (2, 1, 64, 64) and d(x).shape == (2, 1)
    assert Generator.from_state_dict(g.state_dict()).channels == ch


def test_latent_input_is_set_by_the_first_latent_and_round_trips_through_a_state_dict():
    torch.manual_seed(0)
    g = Generator(**SMALL, latent_input=True)
    z = torch.randn(2, 32)
    img, feats = g(z, return_features=True)
    assert img.shape == (2, 3, 16, 16) and feats[0].shape == (2, 32, 4, 4)
    wp = g.mapping(z)[:, None].repeat(1, g.n_latent, 1)
    torch.testing.assert_close(g(w_plus=wp), img)
    wp2 = wp.clone()
    wp2[:, 0] += 1.0  # the first latent sets the 4×4 input (and the first conv's style)
    assert not torch.allclose(g(w_plus=wp2), img)
    x0 = g.input(wp[:, 0])
    assert x0.shape == (2, 32, 4, 4) and not torch.allclose(x0[0], x0[1])  # one input per sample
    # a constant-input generator has no such module; loading detects which one a state dict holds
    g2 = Generator.from_state_dict(g.state_dict())
    assert g2.latent_input
    torch.testing.assert_close(g2(w_plus=wp), img)
    assert not Generator.from_state_dict(Generator(**SMALL).state_dict()).latent_input
