"""GLEAN: the net on the bundled nuclei bank, training/export/loading, and the engine (tiny models)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_genprior.engines import glean as engine
from napari_genprior.engines.base import Cancelled, InputError, drive
from napari_genprior.engines.prior import load_prior
from napari_genprior.models import weights_path
from napari_genprior.nets.glean import GLEAN
from napari_genprior.train.glean import GleanConfig, export_glean, load_glean, train_glean


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def bank():
    return load_prior("nuclei")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A ×8 GLEAN on the nuclei bank trained for 2 steps (rrdb 1, width 8): its checkpoint."""
    out = tmp_path_factory.mktemp("glean") / "tiny.pt"
    cfg = GleanConfig(
        out=str(out), steps=2, batch=2, rrdb_blocks=1, width=8, log_every=1, sample_every=2, ckpt_every=1
    )
    train_glean(cfg, log=lambda s: None)
    return out


# ------------------------------------------------------------------ net


@pytest.mark.parametrize("scale,in_size", [(8, 16), (16, 8)])
def test_net_shapes(bank, scale, in_size):
    net = GLEAN(bank, in_size, scale, rrdb_blocks=1, width=8)
    with torch.no_grad():
        y = net(torch.rand(2, 1, in_size, in_size) * 2 - 1)
    assert y.shape == (2, 1, 128, 128)
    assert torch.isfinite(y).all()
    _, feats, w = net.encode(torch.zeros(1, 1, in_size, in_size))
    assert [f.shape[-1] for f in feats] == [in_size // 2**i for i in range(len(feats))] and feats[-1].shape[
        -1
    ] == 4
    assert w.shape == (1, bank.n_latent, bank.style_dim)
    with pytest.raises(ValueError, match="must equal the bank's size"):
        GLEAN(bank, in_size * 2, scale)


def test_bank_frozen(bank):
    net = GLEAN(load_prior("nuclei"), 16, 8, rrdb_blocks=1, width=8)
    before = {k: v.clone() for k, v in net.bank.state_dict().items()}
    assert not any(p.requires_grad for p in net.bank.parameters())
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    net(torch.rand(2, 1, 16, 16) * 2 - 1).pow(2).mean().backward()
    assert net.to_latent.weight.grad is not None  # gradients reach the encoder through the bank
    opt.step()
    assert all(torch.equal(before[k], v) for k, v in net.bank.state_dict().items())
    assert not any(k.startswith("bank.") for k in net.trainable_state_dict())


@pytest.mark.parametrize("scale,in_size", [(8, 16), (16, 8)])
def test_ablation_parameter_count(bank, scale, in_size):
    full = GLEAN(bank, in_size, scale, rrdb_blocks=2, width=16).num_parameters()
    abl_net = GLEAN(bank, in_size, scale, rrdb_blocks=2, width=16, no_bank=True)
    abl = abl_net.num_parameters()
    assert abs(abl["bank"] / full["bank"] - 1) < 0.1
    assert abs(abl["total"] / full["total"] - 1) < 0.1
    assert abl["trainable"] == abl["total"] and abl_net.bank is None
    with torch.no_grad():
        assert abl_net(torch.zeros(1, 1, in_size, in_size)).shape == (1, 1, 128, 128)


def test_centred_latents_start_in_the_banks_w_space_and_steer_it(bank):
    """With centred latents the encoder starts at the bank's w̄ (where the bank makes its typical
    images) and the output changes with the latents; residual fusion starts as the bank's own path."""
    torch.manual_seed(0)
    net = GLEAN(bank, 16, 8, rrdb_blocks=1, width=8, centred_latents=True, residual_fusion=True)
    with torch.no_grad():
        z = torch.randn(512, bank.style_dim, generator=torch.Generator().manual_seed(1))
        w_real = bank.mapping(z)
        spread = (w_real - w_real.mean(0)).norm(dim=1).mean()
        _, _, w = net.encode(torch.rand(4, 1, 16, 16) * 2 - 1)
        assert (w - w_real.mean(0)).norm(dim=-1).max() < 0.5 * spread  # inside the bank's cloud
        plain = GLEAN(bank, 16, 8, rrdb_blocks=1, width=8)
        _, _, w0 = plain.encode(torch.rand(4, 1, 16, 16) * 2 - 1)
        assert (w0 - w_real.mean(0)).norm(dim=-1).min() > spread  # the old head starts far outside
        assert all(float(c.weight.abs().sum()) == 0 for c in net.fusion)
        x = torch.rand(2, 1, 16, 16) * 2 - 1
        trunk, enc, w = net.encode(x)
        feats = []
        for shift in (0.0, 1.0):
            f = None
            for i in range(len(net.resolutions)):
                f = net._bank_block(i, f, w + shift * (w_real[:1] - w_real.mean(0)))
            feats.append(f)
        assert (feats[0] - feats[1]).abs().mean() > 1e-2 * feats[0].abs().mean()


def test_discriminator_features_match_forward(bank):
    from napari_genprior.train.glean import _bank_and_disc

    _, d = _bank_and_disc("nuclei")
    x = torch.rand(2, 1, 128, 128) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(d(x), d.head(d.features(x)[-1]))


# ------------------------------------------------------------------ training, export, loading


def test_train_writes_files_and_resumes(tiny):
    assert tiny.exists() and tiny.with_suffix(".log.jsonl").exists()
    assert tiny.with_name("tiny_samples_000002.png").exists()
    recs = [json.loads(line) for line in tiny.with_suffix(".log.jsonl").read_text().splitlines()]
    assert recs[-1]["step"] == 2 and recs[-1]["steps_per_s"] > 0
    ck = torch.load(tiny, weights_only=True)
    assert ck["step"] == 2 and not any(k.startswith("bank.") for k in ck["model"])
    # resume into a copy: one more step
    res = tiny.with_name("resumed.pt")
    res.write_bytes(tiny.read_bytes())
    cfg = GleanConfig(**{**ck["config"], "out": str(res), "steps": 3})
    msgs: list[str] = []
    train_glean(cfg, log=msgs.append)
    assert any("resumed" in m for m in msgs)
    assert torch.load(res, weights_only=True)["step"] == 3
    with pytest.raises(ValueError, match="width"):
        train_glean(GleanConfig(**{**cfg.__dict__, "width": 16}), log=msgs.append)


def test_export_load_roundtrip(tiny, tmp_path):
    out = export_glean(
        tiny, tmp_path / "glean-test-x8.pt", command="napari-genprior train glean", eval_images=2
    )
    assert out.stat().st_size < 5_000_000  # float16; the W+ head (16·64 → 12·128) is 3.1 MB of it
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["task"] == "glean" and card["scale"] == 8 and card["bank"] == "nuclei" and card["steps"] == 2
    assert {"glean_psnr", "bicubic_psnr", "glean_ssim", "bicubic_ssim"} <= set(card["metrics"])
    a, info = load_glean(out)
    b, _ = load_glean(tiny)
    assert info["scale"] == 8 and info["in_size"] == 16
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(a(x), b(x), atol=2e-2)  # float16 weights in the bundle


def test_bank_variants_train_and_models_saved_before_them_still_load(tmp_path):
    """The study's variants (centred latents, residual fusion, an unfrozen bank with its own learning
    rate) train and reload; a checkpoint from before the settings existed loads with them off."""
    out = tmp_path / "variant.pt"
    cfg = GleanConfig(
        out=str(out),
        steps=1,
        batch=2,
        rrdb_blocks=1,
        width=8,
        sample_every=5,
        ckpt_every=1,
        centred_latents=True,
        residual_fusion=True,
        bank_frozen=False,
        latent_lr_mult=10.0,
    )
    train_glean(cfg, log=lambda s: None)
    net, _ = load_glean(out)
    assert net.centred_latents and net.residual_fusion and not net.bank_frozen
    ck = torch.load(out, weights_only=True)
    assert "w_mean" in ck["model"] and any(k.startswith("bank.") for k in ck["model"])
    base = {k: v for k, v in load_prior("nuclei").state_dict().items()}
    assert any(not torch.equal(base[k[5:]], v) for k, v in ck["model"].items() if k.startswith("bank."))
    for key in ("centred_latents", "residual_fusion"):
        del ck["glean"][key], ck["config"][key]
    del ck["model"]["w_mean"]
    old = tmp_path / "old.pt"
    torch.save(ck, old)
    net, _ = load_glean(old)
    assert not net.centred_latents and not net.residual_fusion
    with torch.no_grad():
        assert net(torch.zeros(1, 1, 16, 16)).shape == (1, 1, 128, 128)


# ------------------------------------------------------------------ engine


def _run(image, tiny, **kw):
    return drive(engine.run(image, {"model": str(tiny), **kw}, device="cpu"))


def test_engine_exact_tile(tiny):
    img = (np.random.default_rng(0).random((16, 16)) * 255).astype(np.uint8)
    r = _run(img, tiny)
    lay = r.layers[0]
    assert lay.data.shape == (128, 128) and lay.data.dtype == np.uint8
    assert lay.suffix == "glean_x8" and lay.zoom == 8.0
    assert (
        r.metadata["tiles_per_plane"] == 1 and r.metadata["scale"] == 8 and r.metadata["model"] == str(tiny)
    )


def test_engine_tiled_matches_untiled_and_has_no_seams(tiny):
    img = (np.random.default_rng(1).random((40, 30)) * 255).astype(np.uint8)
    events = []
    r = drive(
        engine.run(img, {"model": str(tiny), "batch_tiles": 4}, device="cpu"), on_progress=events.append
    )
    big = r.layers[0].data.astype(np.int32)
    assert big.shape == (320, 240) and r.metadata["tiles_per_plane"] == 9
    assert [e.step for e in events] == list(range(1, 10)) and events[-1].preview is not None
    # where only the first tile covers the output, the blend is that tile's own result
    alone = _run(img[:16, :16], tiny).layers[0].data.astype(np.int32)
    assert np.abs(big[: 12 * 8, : 7 * 8] - alone[: 12 * 8, : 7 * 8]).max() <= 1
    # no seams: the jumps between neighbouring columns/rows near tile edges are like those elsewhere
    dx = np.abs(np.diff(big, axis=1)).mean(axis=0)
    dy = np.abs(np.diff(big, axis=0)).mean(axis=1)
    for d, edges in ((dx, (16 * 8, 23 * 8)), (dy, (16 * 8, 28 * 8))):
        for e in edges:
            assert d[e - 1] <= 2.5 * np.median(d) + 1


def test_engine_small_input_is_padded(tiny):
    img = (np.random.default_rng(2).random((5, 7)) * 255).astype(np.uint8)
    r = _run(img, tiny)
    assert r.layers[0].data.shape == (40, 56) and r.metadata["padded"]
    r2 = _run(img[:2, :2], tiny, pad_mode="edge")
    assert r2.layers[0].data.shape == (16, 16)


@pytest.mark.parametrize(
    "dtype,lo,hi", [(np.uint8, 0, 255), (np.uint16, 100, 60000), (np.float32, -3.0, 5.0)]
)
def test_engine_dtype_and_range(tiny, dtype, lo, hi):
    img = (lo + np.random.default_rng(3).random((16, 16)) * (hi - lo)).astype(dtype)
    out = _run(img, tiny).layers[0].data
    assert out.dtype == dtype
    rmin, rmax = (0, 255) if dtype == np.uint8 else (img.min(), img.max())
    assert out.min() >= rmin and out.max() <= rmax
    assert abs(float(out.mean()) - float(img.mean())) < 0.25 * (float(img.max()) - float(img.min()))


def test_engine_stack_plane_by_plane(tiny):
    img = (np.random.default_rng(4).random((3, 16, 16)) * 255).astype(np.uint8)
    events = []
    r = drive(engine.run(img, {"model": str(tiny)}, device="cpu"), on_progress=events.append)
    out = r.layers[0].data
    assert out.shape == (3, 128, 128)
    assert events[1].part == "plane 2/3" and events[-1].step == events[-1].total == 3
    one = _run(img[1], tiny).layers[0].data
    assert np.abs(out[1].astype(int) - one.astype(int)).max() <= 1


def test_engine_cancel(tiny):
    img = np.zeros((40, 40), np.uint8)
    gen = engine.run(img, {"model": str(tiny), "batch_tiles": 1}, device="cpu", cancel=lambda: True)
    with pytest.raises(Cancelled):
        next(gen)
    n = []
    with pytest.raises(Cancelled):
        drive(
            engine.run(img, {"model": str(tiny), "batch_tiles": 1}, device="cpu"),
            n.append,
            cancel=lambda: len(n) >= 2,
        )
    assert len(n) == 2


def test_engine_bad_input(tiny, tmp_path):
    grey = np.zeros((16, 16), np.uint8)
    with pytest.raises(InputError, match="RGB"):
        _run(np.zeros((16, 16, 3), np.uint8), tiny)
    with pytest.raises(InputError, match="too small"):
        _run(np.zeros((1, 16), np.uint8), tiny)
    nan = np.zeros((16, 16), np.float32)
    nan[3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        _run(nan, tiny)
    with pytest.raises(InputError, match="unknown model 'glean-nope'"):
        drive(engine.run(grey, {"model": "glean-nope"}, device="cpu"))
    with pytest.raises(InputError, match="does not exist"):
        _run(grey, tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    torch.save({"weights": torch.zeros(3)}, junk)
    text = tmp_path / "text.pt"
    text.write_text("not a model")
    for bad in (junk, text, weights_path("nuclei")):
        with pytest.raises(InputError, match="not a GLEAN model"):
            _run(grey, bad)
    with pytest.raises(InputError, match="trained for ×8, not ×16"):
        _run(grey, tiny, scale=16)
    with pytest.raises(InputError, match="tile_overlap"):
        _run(grey, tiny, tile_overlap=0.9)
    with pytest.raises(InputError, match="unknown GLEAN parameter"):
        _run(grey, tiny, seed=1)


@pytest.mark.parametrize("scale", [8, 16])
def test_bundled_models_beat_bicubic_on_held_out_nuclei(scale):
    from skimage.metrics import peak_signal_noise_ratio as psnr
    from skimage.transform import resize

    from napari_genprior.data.generators import EVAL_SEED_START, nuclei
    from napari_genprior.models import card
    from napari_genprior.models.load import bundled_glean
    from napari_genprior.physics.degrade import degrade

    name = f"glean-nuclei-x{scale}"
    assert name in bundled_glean()
    c = card(name)
    assert c["task"] == "glean" and c["scale"] == scale and c["bank"] == "nuclei" and c["steps"] > 0
    assert c["metrics"]["glean_psnr"] > c["metrics"]["bicubic_psnr"]
    gains = []
    for i in range(4):
        hr = nuclei(128, EVAL_SEED_START + 50_000 + i)
        lr = degrade(hr[None], scale)[0]
        sr = drive(engine.run(lr, {"scale": scale}, device="cpu")).layers[0].data  # the bundled model
        assert sr.shape == hr.shape and sr.dtype == np.float32
        gains.append(
            psnr(hr, sr, data_range=1) - psnr(hr, np.clip(resize(lr, hr.shape, order=3), 0, 1), data_range=1)
        )
    assert np.mean(gains) > 0.5, gains
