"""The collaborative block-matching filter (engines/blockmatch.py) and DIP's denoising through it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio as psnr

from napari_genprior.data.synthetic import poisson_gaussian_noise
from napari_genprior.engines import blockmatch, dip, drive
from napari_genprior.engines.base import InputError
from napari_genprior.errors import Cancelled


def _noisy(clean: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    return clean + np.random.default_rng(seed).normal(0, sigma, clean.shape).astype(np.float32)


def test_grey_and_colour_gain_over_the_noisy_input():
    grey = skdata.camera()[100:196, 100:196].astype(np.float32)[None] / 255
    colour = np.moveaxis(skdata.astronaut()[:96, 120:216], -1, 0).astype(np.float32) / 255
    for clean, floor in ((grey, 7.0), (colour, 6.0)):
        noisy = _noisy(clean, 25 / 255)
        out = blockmatch.blockmatch_denoise(torch.from_numpy(noisy), 25 / 255).numpy()
        assert out.shape == clean.shape and out.dtype == np.float32
        gain = psnr(clean, out.clip(0, 1), data_range=1) - psnr(clean, noisy.clip(0, 1), data_range=1)
        assert gain > floor


def test_bands_give_the_same_result_as_one_pass(monkeypatch):
    clean = skdata.camera()[:70, :90].astype(np.float32)[None] / 255
    noisy = torch.from_numpy(_noisy(clean, 0.1))
    whole = blockmatch.blockmatch_denoise(noisy, 0.1)
    monkeypatch.setattr(blockmatch, "BAND_REFS", 40)  # a band of one or two reference rows
    banded = blockmatch.blockmatch_denoise(noisy, 0.1)
    torch.testing.assert_close(banded, whole, rtol=0, atol=1e-5)


def test_planes_with_fewer_patches_than_a_group_still_denoise():
    rng = np.random.default_rng(2)
    for shape in ((1, 8, 8), (1, 9, 60), (3, 12, 12)):
        clean = np.full(shape, 0.5, np.float32)
        noisy = torch.from_numpy(clean + rng.normal(0, 0.1, shape).astype(np.float32))
        out = blockmatch.blockmatch_denoise(noisy, 0.1)
        assert out.shape == shape and torch.isfinite(out).all()
        assert (out - 0.5).abs().mean() < 0.5 * (noisy - 0.5).abs().mean()


def test_nothing_to_do_returns_the_input_and_cancel_stops():
    x = torch.rand(1, 6, 40)
    assert torch.equal(blockmatch.blockmatch_denoise(x, 0.1), x)  # under a patch high
    y = torch.rand(2, 32, 32)
    assert torch.equal(blockmatch.blockmatch_denoise(y, 0.0), y)
    with pytest.raises(Cancelled):
        blockmatch.blockmatch_denoise(y, 0.1, cancel=lambda: True)


def test_dip_denoise_runs_the_filter_by_default_and_keeps_dtype_and_shape():
    clean = skdata.camera()[:64, :80]
    noisy = np.clip(_noisy(clean.astype(np.float32), 25), 0, 255).astype(np.uint8)
    stack = np.stack([noisy, noisy[::-1]])
    events = []
    gen = dip.run(stack, {"task": "denoise"}, device="cpu")
    try:
        while True:
            events.append(next(gen))
    except StopIteration as stop:
        res = stop.value
    out = res.layers[0].data
    assert out.shape == stack.shape and out.dtype == np.uint8
    assert res.metadata["method"] == "filter" and res.metadata["planes"] == 2
    assert [e.part for e in events] == ["plane 1/2", "plane 2/2"]
    assert abs(res.metadata["noise"][0]["sigma"] * 255 - 25) < 4  # estimated from the image
    assert psnr(clean, out[0]) > psnr(clean, noisy) + 6


def test_a_filtered_16_bit_camera_plane_beats_its_input_and_keeps_its_mean():
    """The held-out case's statistics (offset 200, gain 8, read noise 30, mostly dark background)
    on a synthetic truth: the filter goes through the Anscombe transform with the estimated noise."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:96, :96]
    truth = np.zeros((96, 96))
    for _ in range(6):
        cy, cx, r = rng.uniform(12, 84, 2).tolist() + [rng.uniform(5, 9)]
        truth += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
    ideal, noisy = poisson_gaussian_noise(
        truth / truth.max(), photons=500.0, gain=8.0, offset=200.0, read_noise=30.0
    )
    assert noisy.dtype == np.uint16 and (truth / truth.max() < 0.1).mean() > 0.6
    res = drive(dip.run(noisy, {"task": "denoise", "noise_model": "poisson-gaussian"}, device="cpu"))
    out = res.layers[0].data.astype(np.float64)
    span = float(ideal.max() - ideal.min())
    before = psnr(ideal, noisy.astype(np.float64), data_range=span)
    after = psnr(ideal, out, data_range=span)
    assert after > before + 5
    assert abs(out.mean() / ideal.mean() - 1) < 0.02


def test_the_filter_refuses_what_it_cannot_do_in_one_line():
    img = np.zeros((32, 32), np.uint8)
    for params, words in (
        ({"task": "inpaint", "method": "filter"}, "only denoises"),
        ({"task": "denoise", "method": "filter", "uncertainty": True}, "choose method 'dip'"),
        ({"task": "denoise", "uncertainty": True}, "choose method 'dip'"),
        ({"task": "denoise", "method": "median"}, "unknown method"),
    ):
        with pytest.raises(InputError, match=words):
            dip.run(img, params, mask=np.ones((32, 32)))
    assert dip.DIPParams(task="sr").resolved_method == "dip"
    assert dip.DIPParams(task="denoise").resolved_method == "filter"
