"""The IRN engine without a viewer: shapes, dtypes, metadata, tiling, checkpoints, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from napari_genprior.cli import main
from napari_genprior.engines import InputError, drive, irn
from napari_genprior.nets.irn import InvRescaleNet


@pytest.fixture
def identity_ckpt(tmp_path):
    """A fresh ×2 grey network: at initialisation it is exactly the Haar transform."""
    path = tmp_path / "x2.pt"
    torch.save({"model": InvRescaleNet(1, 1, 2, 8).state_dict(), "config": {"scale": 2}}, path)
    return path


def _box(a: np.ndarray, s: int) -> np.ndarray:
    h, w = a.shape
    return a.reshape(h // s, s, w // s, s).mean(axis=(1, 3))


def test_identity_network_downscales_by_box_mean_and_upscales_by_repetition(identity_ckpt):
    img = np.random.default_rng(0).random((40, 36)).astype(np.float32)
    res = drive(irn.run(img, {"weights": str(identity_ckpt), "tau": 0.0}))
    lr, hr = res.layer("irn_lr"), res.layer("irn_hr")
    assert lr.zoom == 0.5 and hr.zoom == 1.0 and lr.data.dtype == hr.data.dtype == np.float32
    np.testing.assert_allclose(lr.data, _box(img, 2), atol=1e-5)  # float input: LR not quantised
    np.testing.assert_allclose(hr.data, np.kron(_box(img, 2), np.ones((2, 2))), atol=1e-5)
    assert res.metadata["irn"] == {
        "scale": 2,
        "value_range": [float(img.min()), float(img.max())],
        "hr_shape": [40, 36],
    }


def test_odd_sizes_16bit_stacks_and_up_from_stored_metadata(identity_ckpt):
    img = (np.random.default_rng(1).random((2, 37, 51)) * 4000 + 100).astype(np.uint16)
    res = drive(irn.run(img, {"weights": str(identity_ckpt), "mode": "down"}))
    lr = res.layer("irn_lr").data
    assert lr.shape == (2, 19, 26) and lr.dtype == np.uint16  # stored as the input's dtype
    meta = res.metadata["irn"]
    up = drive(
        irn.run(
            lr,
            {
                "weights": str(identity_ckpt),
                "mode": "up",
                "tau": 0.0,
                **{k: meta[k] for k in ("value_range", "hr_shape")},
            },
        )
    )
    hr = up.layer("irn_hr")
    assert hr.data.shape == img.shape and hr.data.dtype == np.uint16 and hr.zoom == 2.0
    # Identity network, z = 0: HR is the (rounded) box mean repeated, in the input's units.
    err = np.abs(hr.data[:, :36, :50].astype(float) - np.kron(_box_stack(img[:, :36, :50]), np.ones((2, 2))))
    assert err.max() <= 1.0


def _box_stack(a: np.ndarray) -> np.ndarray:
    return np.stack([_box(p.astype(float), 2) for p in a])


def test_tiles_reproduce_the_whole_image(identity_ckpt):
    img = np.random.default_rng(2).random((150, 130)).astype(np.float32)
    whole = drive(irn.run(img, {"weights": str(identity_ckpt), "tau": 0.0, "tile_size": 0}))
    tiled = drive(
        irn.run(img, {"weights": str(identity_ckpt), "tau": 0.0, "tile_size": 32, "tile_overlap": 8})
    )
    for suffix in ("irn_lr", "irn_hr"):
        np.testing.assert_allclose(tiled.layer(suffix).data, whole.layer(suffix).data, atol=1e-5)


def test_uncertainty_from_several_draws(identity_ckpt):
    img = (np.random.default_rng(3).random((32, 48, 3)) * 255).astype(np.uint8)
    res = drive(irn.run(img, {"weights": str(identity_ckpt), "samples": 3}))
    assert res.layer("irn_hr").data.shape == img.shape  # RGB through a grey model: channel by channel
    unc = res.layer("irn_uncertainty")
    assert unc.data.shape == (32, 48) and unc.data.dtype == np.float32 and unc.data.min() >= 0
    assert unc.data.max() > 0  # z varies between draws, so does the HR


def test_official_layout_with_module_prefix_loads(tmp_path):
    net = InvRescaleNet(3, 2, 1, 8)
    sd = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save(sd, tmp_path / "official.pth")
    model, info = irn.load_weights(tmp_path / "official.pth")
    assert (info["channels"], info["scale"], info["blocks"], info["growth"]) == (3, 4, 1, 8)
    rgb = (np.random.default_rng(4).random((32, 40, 3)) * 255).astype(np.uint8)
    res = drive(irn.run(rgb, {"weights": str(tmp_path / "official.pth"), "scale": 4, "mode": "down"}))
    assert res.layer("irn_lr").data.shape == (8, 10, 3)
    grey = drive(irn.run(rgb[..., 0], {"weights": str(tmp_path / "official.pth"), "scale": 4}))
    assert grey.layer("irn_hr").data.shape == (32, 40)  # grey through an RGB model


def test_bad_checkpoints_and_params(tmp_path, identity_ckpt):
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    torch.save({"foo": torch.zeros(2)}, tmp_path / "other.pt")
    img = np.zeros((16, 16), np.float32)
    for weights, match in (
        (tmp_path / "junk.pt", "cannot read"),
        (tmp_path / "other.pt", "not an IRN checkpoint"),
        (tmp_path / "missing.pt", "does not exist"),
    ):
        with pytest.raises(InputError, match=match):
            irn.run(img, {"weights": str(weights)})
    with pytest.raises(InputError, match="not ×4"):
        irn.run(img, {"weights": str(identity_ckpt), "scale": 4})
    with pytest.raises(InputError, match="unknown mode"):
        irn.run(img, {"mode": "sideways"})
    with pytest.raises(InputError, match="hr_shape"):
        irn.run(img, {"weights": str(identity_ckpt), "mode": "up", "hr_shape": (64, 64)})


def test_cli_down_then_up_uses_the_stored_metadata(tmp_path, identity_ckpt, capsys):
    img = (np.random.default_rng(5).random((30, 42)) * 1000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", img)
    w = ["--weights", str(identity_ckpt), "-q"]
    assert main(["irn", "down", str(tmp_path / "in.tif"), "-o", str(tmp_path / "lr.tif"), *w]) == 0
    assert tifffile.imread(tmp_path / "lr.tif").shape == (15, 21)
    assert (
        main(["irn", "up", str(tmp_path / "lr.tif"), "-o", str(tmp_path / "hr.tif"), "--tau", "0", *w]) == 0
    )
    hr = tifffile.imread(tmp_path / "hr.tif")
    assert hr.shape == img.shape and hr.dtype == np.uint16
    assert abs(float(hr.mean()) - float(img.mean())) < 5  # same units: the stored range was used
    rc = main(
        [
            "irn",
            "roundtrip",
            str(tmp_path / "in.tif"),
            "-o",
            str(tmp_path / "rt.tif"),
            *w,
            "--samples",
            "2",
            "--uncertainty",
            str(tmp_path / "u.tif"),
        ]
    )
    assert rc == 0 and "round trip: PSNR" in capsys.readouterr().out
    assert tifffile.imread(tmp_path / "u.tif").shape == img.shape
    assert (
        main(["irn", "up", str(tmp_path / "lr.tif"), "-o", str(tmp_path / "x.tif"), "--scale", "4", *w]) == 2
    )
    assert "use that scale" in capsys.readouterr().err
    assert (
        main(
            [
                "irn",
                "roundtrip",
                str(tmp_path / "in.tif"),
                "-o",
                str(tmp_path / "x.tif"),
                "--uncertainty",
                str(tmp_path / "u2.tif"),
                *w,
            ]
        )
        == 2
    )
    assert "--samples 2" in capsys.readouterr().err


def test_train_resume_export_and_load(tmp_path, capsys):
    out, bundle = tmp_path / "run.pt", tmp_path / "bundle" / "mine-x2.pt"
    args = ["train", "irn", "--scale", "2", "--out", str(out), "--batch", "2", "--patch", "32"]
    args += ["--blocks", "1", "--growth", "8", "--val-every", "2", "--tau-ramp", "2"]
    assert main([*args, "--steps", "2"]) == 0
    assert main([*args, "--steps", "4", "--export", str(bundle)]) == 0
    text = capsys.readouterr().out
    assert "resumed" in text and "held-out round trip" in text
    ck = torch.load(out, weights_only=True)
    assert ck["step"] == 4 and len(json.loads(ck["history"])) == 2
    card = json.loads(bundle.with_suffix(".json").read_text())
    assert card["steps"] == 4 and card["scale"] == 2 and "camera" in card["held_out"]
    assert set(card["metrics"]["mean"]) >= {"irn_psnr_tau1", "bicubic_psnr", "lr_vs_bicubic_psnr"}
    assert card["recommended_tau"] in (0.0, 1.0) and card["final_train_tau"] == 1.0
    net, info = irn.load_weights(bundle)
    assert info["scale"] == 2 and info["blocks"] == 1
    # without tau, `up` uses the card's recommendation; an explicit tau wins
    card["recommended_tau"] = 0.0
    bundle.with_suffix(".json").write_text(json.dumps(card))
    img = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    assert drive(irn.run(img, {"weights": str(bundle)})).metadata["tau"] == 0.0
    assert drive(irn.run(img, {"weights": str(bundle), "tau": 0.5})).metadata["tau"] == 0.5
    assert irn.recommended_tau(out) == 1.0  # no card beside a training checkpoint: the paper's τ
    assert main(["train", "irn", "--scale", "4", "--out", str(out), "--steps", "1", "--patch", "32"]) == 2
    assert "scale=2" in capsys.readouterr().err  # resuming with another architecture is refused


def test_training_data_never_includes_held_out_images():
    from napari_genprior.train import irn as tirn

    held = {h for h in tirn.HELD_OUT if ":" not in h}
    assert not held & set(tirn.TRAIN_IMAGES)
    assert all(int(h.split(":")[1]) >= 1_000_000 for h in tirn.HELD_OUT if ":" in h)
    assert tirn.N_FLUO_TRAIN < 1_000_000


@pytest.mark.parametrize("scale", [2, 4])
def test_bundled_model_beats_bicubic_on_a_held_out_crop(scale):
    """The shipped irn-x2/irn-x4, offline, with their card: the default round trip of a held-out
    image (camera, never trained on) is better than bicubic down+up, and the LR stays a thumbnail."""
    from skimage.metrics import peak_signal_noise_ratio as psnr

    from napari_genprior.models import card, weights_path
    from napari_genprior.physics.degrade import bicubic_down
    from napari_genprior.train.irn import held_out_images

    name = f"irn-x{scale}"
    path = weights_path(name)
    assert path is not None and path.stat().st_size < 15e6
    c = card(name)
    assert {"data", "command", "steps", "wall_time", "metrics", "held_out", "recommended_tau"} <= set(c)
    img = held_out_images(256)["camera"][64:192, 64:192]
    u8 = np.rint(img * 255).astype(np.uint8)
    res = drive(irn.run(u8, {"scale": scale}))
    assert res.metadata["tau"] == c["recommended_tau"] and res.metadata["network"]["model"] == name
    hr, lr = res.layer("irn_hr").data, res.layer("irn_lr").data
    assert hr.shape == u8.shape and hr.dtype == np.uint8 and lr.shape == (128 // scale, 128 // scale)
    x = torch.from_numpy(u8.astype(np.float32) / 255)[None, None]
    bic_lr = torch.round(bicubic_down(x, scale).clamp(0, 1) * 255) / 255
    bic = torch.nn.functional.interpolate(bic_lr, scale_factor=scale, mode="bicubic").clamp(0, 1)
    ref = u8 / 255.0
    assert psnr(ref, hr / 255.0, data_range=1) > psnr(ref, bic[0, 0].numpy(), data_range=1) + 0.3
    assert psnr(bic_lr[0, 0].numpy(), lr / 255.0, data_range=1) > 30
