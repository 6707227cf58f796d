"""Lazy (dask, zarr) arrays are run one plane at a time, never loaded whole: engines directly, and
a zarr-backed layer in a real viewer."""

from __future__ import annotations

import numpy as np
import pytest

from napari_genprior.engines import dip, irn, join, planewise
from napari_genprior.engines.base import InputError, drive

DIP_FAST = {"task": "denoise", "method": "dip", "iterations": 12, "preset": "fast", "seed": 0}


class OnePlaneAtATime:
    """An array-like that hands out single planes only: reading it whole fails the test."""

    def __init__(self, a: np.ndarray, n_lead: int = 1) -> None:
        self.a, self.n_lead = a, n_lead
        self.shape, self.dtype, self.ndim = a.shape, a.dtype, a.ndim
        self.reads: list[tuple] = []

    def __getitem__(self, idx):
        idx = idx if isinstance(idx, tuple) else (idx,)
        assert all(isinstance(i, (int, np.integer)) for i in idx[: self.n_lead]), idx
        self.reads.append(idx[: self.n_lead])
        return self.a[idx].copy()

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was read")


def test_a_lazy_stack_gives_what_each_plane_alone_gives():
    rng = np.random.default_rng(0)
    stack = (rng.random((3, 32, 32)) * 4000 + 100).astype(np.uint16)
    lazy = OnePlaneAtATime(stack)
    res = drive(planewise.run_planewise(lazy, None, lambda p, _pos, _r: dip.run(p, DIP_FAST, device="cpu")))
    out = res.layers[0].data
    assert out.shape == stack.shape and out.dtype == np.uint16
    assert lazy.reads == [(0,), (1,), (2,)]  # each plane read once, in turn
    for i in range(3):
        alone = drive(dip.run(stack[i], DIP_FAST, device="cpu")).layers[0].data
        np.testing.assert_array_equal(out[i], alone)
    assert res.metadata["planewise"]["planes"] == 3


def test_progress_counts_over_all_planes_and_names_the_plane():
    stack = np.random.default_rng(1).random((2, 32, 32)).astype(np.float32)
    events = []
    drive(
        planewise.run_planewise(
            OnePlaneAtATime(stack), None, lambda p, _pos, _r: dip.run(p, DIP_FAST, device="cpu")
        ),
        events.append,
    )
    assert events[-1].step == events[-1].total == 24
    assert {e.part.split(",")[0] for e in events} == {"plane 1/2", "plane 2/2"}


def test_bad_first_plane_and_oversized_planes_are_refused_before_any_work(monkeypatch):
    bad = np.zeros((2, 32, 32), np.float32)
    bad[0, 3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        planewise.run_planewise(OnePlaneAtATime(bad), None, lambda p, _pos, _r: dip.run(p, DIP_FAST))
    monkeypatch.setattr(planewise, "MAX_PLANE_PIXELS", 1000)
    with pytest.raises(InputError, match="add a region"):
        planewise.run_planewise(OnePlaneAtATime(bad), None, lambda p, _pos, _r: dip.run(p, DIP_FAST))
    with pytest.raises(InputError, match="channel axis after"):
        planewise.lead_axes((3, 5, 32, 32), 0)


def test_irn_planes_of_a_lazy_stack_share_one_record_that_restores_every_plane():
    rng = np.random.default_rng(2)
    # planes of very different brightness: per-plane ranges would give each its own record
    stack = np.stack([(rng.random((32, 32)) * k + 50).astype(np.uint16) for k in (100, 3000)])
    lazy = OnePlaneAtATime(stack)

    def start(p, _pos, rng_):
        return irn.run(p, {"mode": "down", "scale": 2, "value_range": rng_}, device="cpu")

    res = drive(planewise.run_planewise(lazy, None, start, shared_range=True))
    lr = res.layers[0].data
    assert lr.shape == (2, 16, 16)
    rec = res.metadata["irn"]
    assert rec["value_range"] == [float(stack.min()), float(stack.max())]
    up = drive(irn.run(lr, {"mode": "up", "scale": 2, "value_range": rec["value_range"]}, device="cpu"))
    hr = up.layers[0].data.astype(float)
    for i in range(2):  # each plane comes back near its own level, not rescaled to another's
        assert abs(hr[i].mean() - stack[i].mean()) < 0.1 * stack[i].std() + 5


def test_join_on_a_lazy_stack_solves_a_sample_and_corrects_every_plane():
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    field = 0.6 + 0.4 * np.exp(-((yy - 0.4) ** 2 + (xx - 0.6) ** 2) / 0.3)
    stack = np.stack([(rng.random((128, 128)) * 500 + 200) * field + 100 for _ in range(5)]).astype(
        np.float32
    )
    lazy = OnePlaneAtATime(stack)
    params = {"forward": "flatfield", "steps": 6, "finetune_steps": 0, "restarts": 1, "preview_every": 0}
    res = drive(join.run_lazy_stack(lazy, params, device="cpu", max_planes=2))
    assert [lay.suffix for lay in res.layers] == ["corrected", "flatfield", "darkfield"]
    corrected, f, d = (lay.data for lay in res.layers)
    assert corrected.shape == stack.shape and f.shape == d.shape == (128, 128)
    assert res.metadata["planewise"]["solved_on_planes"] == [0, 4]
    np.testing.assert_allclose(corrected[2], (stack[2] - d) / f, rtol=1e-5)
    with pytest.raises(InputError, match="flat-field"):
        join.run_lazy_stack(lazy, {**params, "forward": "intrinsic"})


def test_a_zarr_layer_is_processed_in_a_real_viewer_without_loading_it_whole(
    make_napari_viewer, qtbot, monkeypatch
):
    zarr = pytest.importorskip("zarr")
    from napari_genprior._napari.dip_widget import DipWidget

    viewer = make_napari_viewer()
    widget = DipWidget(viewer)
    widget.auto_stop.value = False
    stack = (np.random.default_rng(4).random((3, 40, 36)) * 3000 + 100).astype(np.uint16)
    z = zarr.create_array(store={}, shape=stack.shape, chunks=(1, 40, 36), dtype=stack.dtype)
    z[:] = stack
    layer = viewer.add_image(z, name="cells")
    reads = []
    real = planewise._read

    def spy(data, idx):
        plane = real(data, idx)
        reads.append(plane.shape)
        return plane

    monkeypatch.setattr(planewise, "_read", spy)
    widget.image.value = layer
    widget.iterations.value = 4
    assert widget.run()
    qtbot.waitUntil(lambda: not widget.running, timeout=60_000)
    out = viewer.layers["cells_dip_denoise"]
    assert out.data.shape == stack.shape and out.data.dtype == np.uint16
    assert out.metadata["planewise"]["planes"] == 3
    assert reads and all(shape == (40, 36) for shape in reads)  # one plane per read
    assert layer.data is z and np.array_equal(z[:], stack)  # input untouched
