"""Batches: many inputs, resumable, nothing lost; in-process, on a LocalCluster and on an external
dask scheduler (started here on 127.0.0.1), with a worker killed mid-batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_genprior.cli import main

DIP = ["--iterations", "4", "--seed", "3", "-q", "--device", "cpu"]


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        img = np.random.default_rng(i).random((40, 36)) * 3000 + 200
        tifffile.imwrite(folder / f"cell{i}.tif", img.astype(np.uint16))
    return folder


def _record(out: Path) -> dict:
    return json.loads((out / "batch.json").read_text())


def test_paths_globs_and_folders_name_outputs_after_their_inputs(images, tmp_path, capsys):
    out = tmp_path / "out"
    unc = tmp_path / "unc"
    argv = ["dip", "denoise", str(images / "cell0.tif"), str(images / "cell[12].tif"), "-o", str(out)]
    assert main([*argv, "--uncertainty", str(unc), "--method", "dip", *DIP]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["batch.json", "cell0.tif", "cell1.tif", "cell2.tif"]
    assert sorted(p.name for p in unc.iterdir()) == [f"cell{i}_dip_uncertainty.tif" for i in range(3)]
    assert tifffile.imread(out / "cell1.tif").dtype == np.uint16
    rec = _record(out)
    assert (rec["done"], rec["skipped"], rec["failed"]) == (3, 0, 0) and rec["where"] == "in-process"
    assert rec["parameters"]["iterations"] == 4 and all(r["seconds"] > 0 for r in rec["images"])
    assert "3 done, 0 skipped, 0 failed" in capsys.readouterr().out
    # a folder as the input: the same images; a glob that matches nothing is bad usage
    assert main(["dip", "denoise", str(images), "-o", str(tmp_path / "out2"), *DIP]) == 0
    assert len(list((tmp_path / "out2").glob("cell*.tif"))) == 3
    assert main(["dip", "denoise", str(images / "*.png"), "-o", str(tmp_path / "o3"), *DIP]) == 2
    # with several inputs -o is a folder: a file name is refused before any work
    assert main(["dip", "denoise", str(images), "-o", str(tmp_path / "x.tif"), *DIP]) == 2
    assert "-o is the output folder" in capsys.readouterr().err


def test_rerun_skips_what_is_done_unless_overwrite(images, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["dip", "denoise", str(images), "-o", str(out), *DIP]) == 0
    stamp = (out / "cell0.tif").stat().st_mtime_ns
    (out / "cell2.tif").unlink()  # as if the first batch had been interrupted before this image
    assert main(["dip", "denoise", str(images), "-o", str(out), *DIP]) == 0
    rec = _record(out)
    assert [r["status"] for r in rec["images"]] == ["skipped", "skipped", "done"]
    assert (out / "cell0.tif").stat().st_mtime_ns == stamp
    assert main(["dip", "denoise", str(images), "-o", str(out), "--overwrite", *DIP]) == 0
    assert _record(out)["done"] == 3 and (out / "cell0.tif").stat().st_mtime_ns != stamp


def test_a_corrupt_input_does_not_stop_the_others(images, tmp_path, capsys):
    (images / "broken.tif").write_bytes(b"not a tiff at all")
    out = tmp_path / "out"
    assert main(["dip", "denoise", str(images), "-o", str(out), *DIP]) == 1
    summary = capsys.readouterr().out
    assert "3 done, 0 skipped, 1 failed" in summary and "broken.tif" in summary
    assert len(list(out.glob("cell*.tif"))) == 3 and not (out / "broken.tif").exists()
    bad = next(r for r in _record(out)["images"] if r["status"] == "failed")
    assert bad["input"].endswith("broken.tif") and "not a readable TIFF" in bad["reason"]


def test_inpaint_pairs_each_image_with_its_mask(images, tmp_path, capsys):
    masks = tmp_path / "masks"
    masks.mkdir()
    m = np.zeros((40, 36), np.uint8)
    m[5:15, 5:15] = 1
    tifffile.imwrite(masks / "cell0.tif", m)
    tifffile.imwrite(masks / "cell1_mask.tif", m)  # the other rule: <stem>_mask.*
    out = tmp_path / "out"
    assert main(["dip", "inpaint", str(images), "--mask", str(masks), "-o", str(out), *DIP]) == 1
    rec = {Path(r["input"]).name: r for r in _record(out)["images"]}
    assert rec["cell0.tif"]["status"] == rec["cell1.tif"]["status"] == "done"
    assert rec["cell2.tif"]["status"] == "failed" and "no mask for cell2.tif" in rec["cell2.tif"]["reason"]
    known = m == 0
    np.testing.assert_array_equal(
        tifffile.imread(out / "cell0.tif")[known], tifffile.imread(images / "cell0.tif")[known]
    )


def test_irn_batch_writes_lr_records_that_up_uses(images, tmp_path):
    lr = tmp_path / "lr"
    assert main(["irn", "down", str(images), "-o", str(lr), "-q"]) == 0
    assert tifffile.imread(lr / "cell0.tif").shape == (20, 18)
    hr = tmp_path / "hr"
    assert main(["irn", "up", str(lr / "*.tif"), "-o", str(hr), "-q"]) == 0
    assert tifffile.imread(hr / "cell0.tif").shape == (40, 36)  # the record of down was used


def test_a_batch_image_is_the_same_as_alone(images, tmp_path):
    out = tmp_path / "out"
    assert main(["dip", "denoise", str(images), "-o", str(out), *DIP]) == 0
    alone = tmp_path / "alone.tif"
    assert main(["dip", "denoise", str(images / "cell1.tif"), "-o", str(alone), *DIP]) == 0
    np.testing.assert_array_equal(tifffile.imread(out / "cell1.tif"), tifffile.imread(alone))


def test_an_output_is_never_left_half_written(tmp_path):
    """A process killed while writing leaves no file under the output's name (a rerun redoes it)."""
    target = tmp_path / "result.tif"
    code = (
        "import os, signal, sys\n"
        "from napari_genprior.io import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp:\n"
        "    tmp.write_bytes(b'x' * 100000)\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(target)], check=False)
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()
    # and a write that fails removes its temporary file
    from napari_genprior.io import atomic_path

    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("disk full")
    assert not target.exists() and not tmp.exists()


distributed = pytest.importorskip("distributed")


def _single_thread_reference(images: Path, tmp_path: Path, name: str) -> np.ndarray:
    alone = tmp_path / f"alone_{name}"
    argv = ["dip", "denoise", str(images / name), "-o", str(alone), "--torch-threads", "1", *DIP]
    assert main(argv) == 0
    return tifffile.imread(alone)


def test_local_cluster_of_two_workers(images, tmp_path):
    out = tmp_path / "out"
    assert main(["dip", "denoise", str(images), "-o", str(out), "--workers", "2", *DIP]) == 0
    rec = _record(out)
    assert rec["done"] == 3 and rec["where"].startswith("LocalCluster of 2")
    assert all(r["worker"].startswith("tcp://") for r in rec["images"])
    # one torch thread per worker: the same as the image alone with --torch-threads 1
    ref = _single_thread_reference(images, tmp_path, "cell0.tif")
    np.testing.assert_array_equal(tifffile.imread(out / "cell0.tif"), ref)


@pytest.fixture
def external_scheduler(tmp_path):
    """`dask scheduler` and one `dask worker` on 127.0.0.1, as a user would start them."""
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0"]
            + ["--no-dashboard", "--scheduler-file", str(sched_file)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1"]
                + ["--no-dashboard", "--host", "127.0.0.1"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        with distributed.Client(address, timeout="30s") as client:
            client.wait_for_workers(1, timeout=60)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()


def test_external_scheduler(images, tmp_path, external_scheduler):
    out = tmp_path / "out"
    argv = ["dip", "denoise", str(images), "-o", str(out), "--scheduler", external_scheduler]
    assert main([*argv, "--torch-threads", "1", *DIP]) == 0
    rec = _record(out)
    assert rec["done"] == 3 and rec["where"] == f"dask scheduler {external_scheduler}"
    ref = _single_thread_reference(images, tmp_path, "cell2.tif")
    np.testing.assert_array_equal(tifffile.imread(out / "cell2.tif"), ref)
    # an address nobody listens on: a clear message, exit 2
    argv[4] = str(tmp_path / "out2")
    assert main([*argv[:-1], "tcp://127.0.0.1:9", *DIP]) == 2


def test_a_worker_killed_mid_batch_has_its_image_run_again(images, tmp_path):
    from napari_genprior import batch

    for i in range(3, 6):  # six images, so that the batch is still going when a worker dies
        img = np.random.default_rng(i).random((40, 36)) * 3000 + 200
        tifffile.imwrite(images / f"cell{i}.tif", img.astype(np.uint16))
    out = tmp_path / "out"
    args = ["dip", "denoise", str(images), "-o", str(out), "--iterations", "60", "--seed", "3", "-q"]
    killed = threading.Event()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:

            def kill_one_busy_worker() -> None:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline and not killed.is_set():
                    busy = [w for w, tasks in client.processing().items() if tasks]
                    if busy:
                        pid = client.run(os.getpid, workers=[busy[0]])[busy[0]]
                        time.sleep(1.0)  # inside the task's fit
                        os.kill(pid, signal.SIGKILL)
                        killed.set()
                        return
                    time.sleep(0.1)

            killer = threading.Thread(target=kill_one_busy_worker, daemon=True)
            killer.start()
            rc = main([*args, "--scheduler", cluster.scheduler_address, "--torch-threads", "1"])
            killer.join(timeout=5)
    assert killed.is_set()
    assert rc == 0
    rec = _record(out)
    assert rec["done"] == 6 and rec["failed"] == 0
    assert len(list(out.glob("cell*.tif"))) == 6
    assert batch.expand_inputs([str(images)]) == sorted(images.glob("cell*.tif"))
