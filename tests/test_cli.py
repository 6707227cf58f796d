"""The command line, in-process (same engine calls as the widget)."""

from __future__ import annotations

import argparse
import json
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
            "--method",
            "dip",
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
    captured = capsys.readouterr()
    assert "PSNR" in captured.out and "SSIM" in captured.out
    assert '"seed": 1' in meta.read_text()
    # 3 steps: a warning on stderr (also under -q) and in the metadata
    assert "warning: not converged: 3 steps" in captured.err and "at least 300" in captured.err
    assert "not converged" in json.loads(meta.read_text())["warnings"][0]


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
        (
            ["dip", "denoise", "{noisy}", "-o", "{tmp}/o.tif", "--uncertainty", "{tmp}/u.tif"],
            "choose method 'dip'",
        ),
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
        (["dip", "denoise", "{noisy}", "-o", "{noisy}/out.tif"], "is a file, not a folder"),
        (["dip", "denoise", "{noisy}", "-o", "{tmp}"], "is a folder"),
        (["dip", "denoise", "{text}", "-o", "{tmp}/o.tif"], "not a readable PNG file"),
        (["dip", "denoise", "{corrupt}", "-o", "{tmp}/o.tif"], "corrupt.tif: not a readable TIFF file"),
        (["glean", "{corrupt}", "-o", "{tmp}/o.tif"], "not a readable TIFF file"),
        (["dip", "denoise", "{noisy}", "-o", "{tmp}/o.tif", "--device", "cuda:99"], "'cuda:99' is not"),
        (["glean", "{noisy}", "-o", "{tmp}/o.tif", "--device", "cuda:x"], "write cuda:N"),
        (["join", "{noisy}", "-o", "{tmp}/out", "--device", "cuda:99"], "'cuda:99' is not"),
        (
            ["dip", "denoise", "{noisy}", "-o", "{tmp}/o.tif", "--bogus"],
            "see 'napari-genprior dip denoise --help'",
        ),
        (["irn", "down", "{noisy}", "-o", "{tmp}/o.tif", "--samples", "4"], "`irn down` draws nothing"),
        (["irn", "up", "{noisy}", "-o", "{tmp}/o.tif", "--samples", "3"], "would be all zeros"),
    ],
)
def test_bad_usage_exits_2_with_one_line(argv, match, noisy_tif, tmp_path, capsys):
    noisy, _ = noisy_tif
    tifffile.imwrite(tmp_path / "small.tif", np.ones((4, 4), np.uint8))
    tifffile.imwrite(tmp_path / "five.tif", np.zeros((2, 2, 2, 16, 16), np.uint8))
    tifffile.imwrite(tmp_path / "nan.tif", np.full((16, 16), np.nan, np.float32))
    (tmp_path / "notes.png").write_text("not an image")
    # a TIFF header with garbage after it: tifffile warns and reads nothing, it must not pass as empty
    (tmp_path / "corrupt.tif").write_bytes(b"II*\x00" + b"garbage!" * 16)
    subs = {
        "corrupt": str(tmp_path / "corrupt.tif"),
        "text": str(tmp_path / "notes.png"),
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
    assert png.ndim == 3 and png.shape[0] > 6 * 192  # six rows of input | result | truth: every engine
    for task in ("denoise", "inpaint", "sr", "irn", "glean"):
        assert (tmp_path / "demo" / f"{task}_result.tif").exists()
    assert tifffile.imread(tmp_path / "demo" / "sr_result.tif").shape == (128, 128, 3)
    assert tifffile.imread(tmp_path / "demo" / "glean_result.tif").shape == (128, 128)
    assert tifffile.imread(tmp_path / "demo" / "join_corrected.tif").shape == (128, 128)
    results = json.loads((tmp_path / "demo" / "demo.json").read_text())["results"]
    assert set(results) == {"denoise", "inpaint", "sr", "irn", "glean", "join"}
    # the bundled models beat their baselines even in a smoke run (no steps to cut there)
    assert results["irn"]["psnr_result"] > results["irn"]["psnr_bicubic"]
    assert results["glean"]["psnr_result"] > results["glean"]["psnr_bicubic"]


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


def test_output_is_checked_before_the_run(noisy_tif, tmp_path, monkeypatch, capsys):
    """A path that cannot be written is refused before any step runs, not after the fit."""
    import napari_genprior.engines.base as base

    def no_run(*_a, **_k):
        raise AssertionError("the engine ran although an output cannot be written")

    noisy, _ = noisy_tif
    ok = tmp_path / "ok.tif"
    with monkeypatch.context() as m:
        m.setattr(base, "drive", no_run)
        for bad, match in ((noisy / "run.json", "is a file, not a folder"), (tmp_path, "is a folder")):
            assert main(["dip", "denoise", str(noisy), "-o", str(ok), "-q", "--metadata", str(bad)]) == 2
            assert match in capsys.readouterr().err
    assert not ok.exists()
    # a missing parent folder is fine: it is created, and --help says so
    out = tmp_path / "new" / "deeper" / "den.tif"
    assert main(["dip", "denoise", str(noisy), "-o", str(out), "-q", "--iterations", "2"]) == 0
    assert out.exists()
    assert "missing folders are created" in _help(["dip", "denoise"])


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("command", ["glean", "join", "dip", "irn"])
def test_an_output_under_proc_is_refused_in_one_line_before_any_work(command, noisy_tif, monkeypatch, capsys):
    """/proc takes no new files, though os.access says it is writable for root: refused before the
    engine is called (the input is not even read for glean and join)."""
    from napari_genprior import io as gio
    from napari_genprior.engines import dip, glean, irn, join

    def no_work(*_a, **_k):
        raise AssertionError("work started although the output cannot be written")

    for engine in (dip, glean, irn, join):
        monkeypatch.setattr(engine, "run", no_work)
    if command in ("glean", "join"):
        monkeypatch.setattr(gio, "read_image", no_work)
    noisy, _ = noisy_tif
    sub = {"dip": ["dip", "denoise"], "irn": ["irn", "down"]}.get(command, [command])
    out = "/proc/genprior-test/out" + (".tif" if command != "join" else "")
    assert main([*sub, str(noisy), "-o", out, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "new files cannot be made in /proc" in err[0], err
    assert "choose another output folder" in err[0]


def test_a_readable_tiff_keeps_its_warnings_and_pixels(tmp_path, caplog):
    from napari_genprior.io import read_image

    data = np.arange(64, dtype=np.uint16).reshape(8, 8)
    tifffile.imwrite(tmp_path / "ok.tif", data)
    np.testing.assert_array_equal(read_image(tmp_path / "ok.tif"), data)
    import logging

    assert not logging.getLogger("tifffile").filters  # the filter that held warnings back is gone


def _help(sub: list[str]) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main([*sub, "--help"]) == 0
    return " ".join(buf.getvalue().split())


def test_irn_up_without_a_record_from_down_warns(noisy_tif, tmp_path, capsys):
    noisy, _ = noisy_tif
    assert main(["irn", "up", str(noisy), "-o", str(tmp_path / "hr.tif"), "-q"]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "no record from IRN down" in err
    # on what down wrote: no warning, and the HR has the original size
    assert main(["irn", "down", str(noisy), "-o", str(tmp_path / "lr.tif"), "-q"]) == 0
    assert main(["irn", "up", str(tmp_path / "lr.tif"), "-o", str(tmp_path / "hr2.tif"), "-q"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert tifffile.imread(tmp_path / "hr2.tif").shape == tifffile.imread(noisy).shape


def test_every_option_has_help_and_shows_its_default():
    from napari_genprior.cli import build_parser

    def leaves(parser, path):
        subs = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        if not subs:
            yield path, parser
        for action in subs:
            for name, sub in action.choices.items():
                yield from leaves(sub, [*path, name])

    seen = 0
    for path, parser in leaves(build_parser(), []):
        text = _help(path)
        assert parser.description or path == [], f"{path} has no description"
        for action in parser._actions:
            if not action.option_strings or action.help == "==SUPPRESS==" or action.dest == "help":
                continue
            assert action.help, f"{' '.join(path)} {action.option_strings[0]} has no help text"
            if action.default not in (None, False) and action.dest != "version":
                assert "default" in action.help or "(default:" in text, (path, action.dest)
            seen += 1
    assert seen > 60
    assert "List the bundled models" in _help(["models"])


def test_seed_and_device_are_declared_once_and_shared_by_every_command():
    """``--seed`` and ``--device`` come from one helper each (cli/parser.py): every engine and train
    command that takes them has the same type, default and help (``irn`` adds what its seed draws)."""
    import inspect

    from napari_genprior.cli import build_parser
    from napari_genprior.cli import parser as cli_parser

    source = inspect.getsource(cli_parser)
    assert source.count('"--seed"') == 1 and source.count('"--device"') == 1

    def leaf(path):
        parser = build_parser()
        for name in path:
            subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = subs.choices[name]
        return {opt: a for a in parser._actions for opt in a.option_strings}

    engines = [["dip", t] for t in ("denoise", "inpaint", "sr")]
    engines += [["irn", m] for m in ("down", "up", "roundtrip")]
    engines += [["glean"], ["join"]]
    trains = [["train", m] for m in ("gan", "irn", "glean", "disc")]
    no_seed, no_device = [["glean"], ["demo"]], [["train", "disc"]]  # GLEAN and the demo draw nothing
    for path in [*engines, *trains, ["sample"], ["demo"]]:
        opts = leaf(path)
        assert ("--seed" in opts) == (path not in no_seed), path
        assert ("--device" in opts) == (path not in no_device), path
        if "--device" in opts:
            device = opts["--device"]
            assert (device.default, device.type, device.help) == ("auto", None, cli_parser.DEVICE_HELP), path
        if "--seed" in opts:
            seed = opts["--seed"]
            text = cli_parser.SEED_HELP + (" (draws of z)" if path[0] == "irn" else "")
            assert (seed.default, seed.type, seed.help) == (0, int, text), path
    args = build_parser().parse_args(["dip", "sr", "in.tif", "-o", "o.tif", "--seed", "3", "--device", "cpu"])
    assert (args.seed, args.device) == (3, "cpu")


def test_models_open_with_a_line_for_users_and_carry_no_machine_paths(capsys):
    from napari_genprior.models import list_models

    assert main(["models", "--brief"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    cards = list_models()
    assert len(lines) == len(cards) >= 6
    for line, c in zip(lines, cards):
        assert line == f"{c['name']}: {c['use']}"
    irn = next(c for c in cards if c["name"] == "irn-x2")
    assert "bicubic" in irn["use"] and "not a super-resolver" in irn["use"]
    assert main(["models"]) == 0
    full = capsys.readouterr().out
    assert "/work/" not in full and "/root/" not in full and "/home/" not in full


def test_readme_quotes_the_irn_cards():
    """The README's IRN figures are the cards' (its generated models table), the real held-out ones
    beside the others, and are not typed anywhere else in it."""
    from napari_genprior.models import card

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in ("irn-x2", "irn-x4"):
        c = card(name)
        mean, real = c["metrics"]["mean"], c["real_held_out"]
        row = next(r for r in readme.splitlines() if r.startswith(f"| `{name}` |"))
        assert f"{mean['irn_psnr_tau0']:.2f} dB vs bicubic down + up {mean['bicubic_psnr']:.2f} dB" in row
        assert f"{real['irn_psnr']:.2f} vs {real['bicubic_psnr']:.2f} dB on real held-out" in row
        gain = f"+{mean['irn_psnr_tau0'] - mean['bicubic_psnr']:.1f}"
        assert gain not in readme.replace(row, "")


#: every engine command and the options it needs besides input and output
ENGINE_ARGV = {
    "dip denoise": [],
    "dip inpaint": ["--mask", "{mask}"],
    "dip sr": [],
    "irn down": [],
    "irn up": [],
    "irn roundtrip": [],
    "glean": [],
    "join": [],
}
#: bad input or output → what the one line must say; the output is a file for every command but
#: join, which writes a folder
BAD_INPUT = {
    "missing input": ("{tmp}/missing.tif", "{out}", "no such file"),
    "corrupt TIFF": ("{corrupt}", "{out}", "not a readable TIFF file"),
    "text as PNG": ("{text}", "{out}", "not a readable PNG file"),
    "5-D image": ("{five}", "{out}", "at most 4-D"),
    "NaN image": ("{nan}", "{out}", "NaN"),
    "output under a file": ("{good}", "{good}/sub/out.tif", "is a file, not a folder"),
    "output under /proc": ("{good}", "/proc/genprior-test/out.tif", "new files cannot be made in /proc"),
}


@pytest.mark.parametrize("bad", list(BAD_INPUT))
@pytest.mark.parametrize("command", list(ENGINE_ARGV))
def test_every_engine_command_refuses_bad_input_in_one_line_before_any_work(
    command, bad, tmp_path, monkeypatch, capsys
):
    """The shared CLI path checks input and output for every engine command: exit 2, one line that
    says what is wrong, and no engine called, nothing written."""
    from napari_genprior.engines import dip, glean, irn, join

    def no_work(*_a, **_k):
        raise AssertionError("the engine was called although the input or output is bad")

    for engine in (dip, glean, irn, join):
        monkeypatch.setattr(engine, "run", no_work)
    good = tmp_path / "good.tif"
    tifffile.imwrite(good, np.full((32, 32), 500, np.uint16))
    tifffile.imwrite(tmp_path / "mask.tif", np.ones((32, 32), np.uint8))
    tifffile.imwrite(tmp_path / "five.tif", np.zeros((2, 2, 2, 16, 16), np.uint8))
    tifffile.imwrite(tmp_path / "nan.tif", np.full((16, 16), np.nan, np.float32))
    (tmp_path / "notes.png").write_text("not an image")
    (tmp_path / "corrupt.tif").write_bytes(b"II*\x00" + b"garbage!" * 16)
    out = str(tmp_path / ("out" if command == "join" else "out.tif"))
    subs = {
        "tmp": str(tmp_path),
        "good": str(good),
        "mask": str(tmp_path / "mask.tif"),
        "five": str(tmp_path / "five.tif"),
        "nan": str(tmp_path / "nan.tif"),
        "text": str(tmp_path / "notes.png"),
        "corrupt": str(tmp_path / "corrupt.tif"),
        "out": out,
    }
    inp, output, match = BAD_INPUT[bad]
    if command == "join":
        output = output.removesuffix(".tif")
    argv = [*command.split(), inp, "-o", output, *ENGINE_ARGV[command], "--quiet"]
    argv = [a.format(**subs) for a in argv]
    rc = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, (argv, err)
    assert len(err) == 1 and err[0].startswith("napari-genprior: error:") and match in err[0], (argv, err)
    assert not Path(out).exists()
