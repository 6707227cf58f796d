"""The IRN network: exact invertibility, shapes, identity at init, official key layout."""

from __future__ import annotations

import pytest
import torch

from napari_genprior.nets.irn import HaarDownsampling, InvRescaleNet


def test_haar_is_exactly_invertible_and_lr_is_box_mean():
    x = torch.rand(2, 3, 8, 12)
    haar = HaarDownsampling(3)
    y = haar(x)
    assert y.shape == (2, 12, 4, 6)
    torch.testing.assert_close(y[:, :3], torch.nn.functional.avg_pool2d(x, 2))
    torch.testing.assert_close(haar.inverse(y), x)


def test_forward_inverse_round_trip_with_trained_like_weights():
    torch.manual_seed(0)
    net = InvRescaleNet(channels=3, levels=2, blocks=2, growth=8)
    with torch.no_grad():  # move away from the identity init so the test means something
        for p in net.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    x = torch.rand(1, 3, 16, 24)
    y = net(x)
    assert y.shape == (1, 48, 4, 6) and net.scale == 4
    back = net.inverse(y)
    assert (back - x).abs().max() < 1e-5


def test_fresh_net_is_haar_identity():
    net = InvRescaleNet(channels=1, levels=1, blocks=2, growth=8)
    x = torch.rand(1, 1, 8, 8)
    torch.testing.assert_close(net(x)[:, :1], torch.nn.functional.avg_pool2d(x, 2))


def test_key_layout_matches_official_invrescalenet():
    net = InvRescaleNet(channels=3, levels=1, blocks=8)
    keys = set(net.state_dict())
    assert "operations.0.haar_weights" in keys
    assert "operations.1.F.conv1.weight" in keys and "operations.8.H.conv5.bias" in keys
    assert sum(p.numel() for p in net.parameters() if p.requires_grad) / 1e6 == pytest.approx(
        1.66, rel=0.02
    )  # paper: 1.66 M for ×2
