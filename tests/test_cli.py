"""The command line, in-process (same engine calls as the widget)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from napari_genprior.cli import main


@pytest.fixture
def noisy_tif(tmp_path, smooth_image):
    clean = (smooth_image * 3000 + 200).astype(np.uint16)
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 150, clean.shape), 0, 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "noisy.tif", noisy)
    tifffile.imwrite(tmp_path / "clean.tif", clean)
    return tmp_path / "noisy.tif", tmp_path / "clean.tif"


def test_denoise_tif_keeps_dtype_and_prints_metrics(noisy_tif, tmp_path, capsys):
    noisy, clean = noisy_tif
    out = tmp_path / "out" / "den.tif"
    meta = tmp_path / "den.json"
    rc = main(
        [
            "dip",
            "denoise",
            str(noisy),
            "-o",
            str(out),
            "--iterations",
            "3",
            "--seed",
            "1",
            "--reference",
            str(clean),
            "--metadata",
            str(meta),
            "-q",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    res = tifffile.imread(out)
    assert res.dtype == np.uint16 and res.shape == (48, 40)
    text = capsys.readouterr().out
    assert "PSNR" in text and "SSIM" in text
    assert '"seed": 1' in meta.read_text()


def test_auto_iterations_and_uncertainty(noisy_tif, tmp_path, capsys):
    noisy, _ = noisy_tif
    out, unc = tmp_path / "den.tif", tmp_path / "unc.tif"
    # --uncertainty writes the per-pixel spread of the last iterates, at the output's size
    rc = main(
        [
            "dip",
            "sr",
            str(noisy),
            "--scale",
            "2",
            "-o",
            str(out),
            "--iterations",
            "3",
            "--uncertainty",
            str(unc),
            "-q",
        ]
    )
    assert rc == 0
    spread = tifffile.imread(unc)
    assert spread.shape == (96, 80) and spread.dtype == np.float32
    assert main(["dip", "denoise", str(noisy), "-o", str(out), "--iterations", "many", "-q"]) == 2
    assert "number or 'auto'" in capsys.readouterr().err


def test_inpaint_png_with_mask(tmp_path):
    img = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    mask = np.zeros((32, 32), np.uint8)
    mask[8:16, 8:16] = 255
    iio.imwrite(tmp_path / "in.png", img)
    iio.imwrite(tmp_path / "mask.png", mask)
    rc = main(
        [
            "dip",
            "inpaint",
            str(tmp_path / "in.png"),
            "--mask",
            str(tmp_path / "mask.png"),
            "-o",
            str(tmp_path / "out.png"),
            "--iterations",
            "2",
            "-q",
        ]
    )
    assert rc == 0
    out = iio.imread(tmp_path / "out.png")
    assert out.shape == img.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[20:, 20:], img[20:, 20:])


def test_sr_scale(tmp_path):
    tifffile.imwrite(tmp_path / "lr.tif", np.random.default_rng(0).random((12, 10)).astype(np.float32))
    rc = main(
        [
            "dip",
            "sr",
            str(tmp_path / "lr.tif"),
            "--scale",
            "2",
            "-o",
            str(tmp_path / "hr.tif"),
            "--iterations",
            "2",
            "-q",
        ]
    )
    assert rc == 0
    hr = tifffile.imread(tmp_path / "hr.tif")
    assert hr.shape == (24, 20) and hr.dtype == np.float32


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["dip", "denoise", "{noisy}"], "required: -o/--output"),
        (["dip", "denoise", "{tmp}/missing.tif", "-o", "{tmp}/o.tif"], "no such file"),
        (["dip", "denoise", "{noisy}", "-o", "{tmp}/o.tif", "--device", "tpu"], "unknown device"),
        (["dip", "denoise", "{noisy}", "-o", "{tmp}/o.bmp"], "unsupported file type"),
        (["dip", "sr", "{noisy}", "-o", "{tmp}/o.tif", "--scale", "3"], "invalid choice"),
        (["dip", "denoise", "{noisy}", "-o", "{tmp}/o.tif", "--iterations", "0"], "at least 1"),
        (["dip", "inpaint", "{noisy}", "--mask", "{tmp}/small.tif", "-o", "{tmp}/o.tif"], "does not match"),
        (["dip", "denoise", "{five}", "-o", "{tmp}/o.tif"], "at most 4-D"),
        (["dip", "denoise", "{nan}", "-o", "{tmp}/o.tif"], "NaN"),
        (["dip", "denoise", "{noisy}", "-o", "{tmp}/o.jpg"], "JPEG holds only 8-bit"),
        (
            ["dip", "sr", "{noisy}", "-o", "{tmp}/o.tif", "--reference", "{noisy}"],
            "the result will have shape",
        ),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_usage_exits_2_with_one_line(argv, match, noisy_tif, tmp_path, capsys):
    noisy, _ = noisy_tif
    tifffile.imwrite(tmp_path / "small.tif", np.ones((4, 4), np.uint8))
    tifffile.imwrite(tmp_path / "five.tif", np.zeros((2, 2, 2, 16, 16), np.uint8))
    tifffile.imwrite(tmp_path / "nan.tif", np.full((16, 16), np.nan, np.float32))
    subs = {
        "noisy": str(noisy),
        "tmp": str(tmp_path),
        "five": str(tmp_path / "five.tif"),
        "nan": str(tmp_path / "nan.tif"),
    }
    args = [a.format(**subs) for a in argv]
    if argv[0] == "dip" and "-o" in argv:  # keep any accidental run short
        args += ["-q"] + ["--iterations", "2"] * ("--iterations" not in argv)
    rc = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("napari-genprior: error:") and match in err[0], err
    assert not (tmp_path / "o.tif").exists()


def test_demo_quick_writes_results(tmp_path):
    rc = main(["demo", "-o", str(tmp_path / "demo"), "--quick", "-q"])
    assert rc == 0
    png = iio.imread(tmp_path / "demo" / "demo.png")
    assert png.ndim == 3 and png.shape[0] > 3 * 192  # three rows of input | result | truth
    for task in ("denoise", "inpaint", "sr"):
        assert (tmp_path / "demo" / f"{task}_result.tif").exists()
    assert tifffile.imread(tmp_path / "demo" / "sr_result.tif").shape == (128, 128, 3)


SCRIPT = shutil.which("napari-genprior", path=str(Path(sys.executable).parent)) or shutil.which(
    "napari-genprior"
)


@pytest.mark.skipif(SCRIPT is None, reason="console script not installed")
def test_console_script():
    out = subprocess.run([SCRIPT, "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("napari-genprior ")
    bad = subprocess.run([SCRIPT, "dip"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_dip_defaults_are_fast_preset_with_auto_stop():
    from napari_genprior.cli import build_parser

    args = build_parser().parse_args(["dip", "denoise", "in.tif", "-o", "out.tif"])
    assert args.preset == "fast" and args.iterations == "auto" and args.tile_size is None
    from napari_genprior.engines import dip

    fast, paper = dip.PRESETS["fast"]["denoise"], dip.PRESETS["paper"]["denoise"]
    assert (fast["channels"], fast["precision"]) == (32, "auto")
    assert (paper["channels"], paper["precision"]) == (128, "float32")
