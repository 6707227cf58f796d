"""Screenshots of the widgets in a real napari window: Deep Image Prior (docs/dip.md) and the IRN,
GLEAN and JoIN flat-field widgets after a run (docs/irn.md, docs/glean.md, docs/join.md).

Run under a display, e.g. ``make docs`` (which uses ``xvfb-run``)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshots.py
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import napari
import numpy as np
from qtpy.QtCore import QEventLoop, QTimer
from qtpy.QtWidgets import QApplication

from napari_genprior._napari.dip_widget import DipWidget
from napari_genprior.data.samples import fluorescence_sample

OUT = Path(__file__).resolve().parent / "images"


def wait(ms: int) -> None:
    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()


def wait_until(cond, timeout_ms: int = 600_000) -> None:
    waited = 0
    while not cond() and waited < timeout_ms:
        wait(100)
        waited += 100


def main() -> None:
    import sys

    OUT.mkdir(parents=True, exist_ok=True)
    only = sys.argv[1:]  # e.g. `join`: only that widget's screenshot
    if only:
        return _others(only)
    viewer = napari.Viewer(title="napari-genprior: Deep Image Prior")
    viewer.window.resize(1400, 900)
    (clean, cmeta, _), (noisy, nmeta, _) = fluorescence_sample()
    crop = (slice(64, 192), slice(64, 192))
    viewer.add_image(clean[crop], **cmeta)
    layer = viewer.add_image(noisy[crop], **nmeta)
    widget = DipWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Deep Image Prior", area="right")
    widget.image.value = layer  # picks the noise model from the sample: poisson-gaussian
    widget.task.value = "denoise"
    widget.method.value = "dip"  # the network: its preview, progress and uncertainty layer are what is shown
    # The defaults (fast preset, stop automatically), with the uncertainty layer: it goes below
    # the result, which ends up on top and selected.
    widget.uncertainty.value = True
    wait(1000)  # let the window reach its final size before fitting the view
    viewer.reset_view()
    activity = getattr(viewer.window._qt_window, "_activity_dialog", None)
    if activity is not None:  # show the progress bar in the activity dock
        activity.show()
    widget.run()
    wait_until(lambda: widget.runner._pbar is not None and widget.runner._pbar.n >= 150)
    wait(300)
    iio.imwrite(OUT / "dip_widget_running.png", viewer.screenshot(canvas_only=False, flash=False))
    wait_until(lambda: not widget.running)
    wait(300)
    if activity is not None:
        activity.hide()
    viewer.grid.enabled = True
    viewer.layers["fluo_clean"].visible = True
    wait(500)
    viewer.reset_view()
    wait(500)
    iio.imwrite(OUT / "dip_widget_done.png", viewer.screenshot(canvas_only=False, flash=False))
    print("wrote", *sorted(p.name for p in OUT.glob("dip_widget_*.png")))
    viewer.close()
    QApplication.instance().processEvents()
    _others(["irn", "glean", "join"])


def _others(names: list[str]) -> None:
    makers = {"irn": _irn, "glean": _glean, "join": _join}
    for name, make in ((n, makers[n]) for n in names):
        viewer = napari.Viewer(title=f"napari-genprior: {name}")
        viewer.window.resize(1400, 900)
        widget = make(viewer)
        wait(1000)
        widget.run()
        wait_until(lambda w=widget: not w.running)
        wait(500)
        viewer.grid.enabled = True
        viewer.reset_view()
        wait(500)
        iio.imwrite(OUT / f"{name}_widget.png", viewer.screenshot(canvas_only=False, flash=False))
        print("wrote", f"{name}_widget.png")
        viewer.close()
        QApplication.instance().processEvents()


def _nuclei_plane() -> np.ndarray:
    """A real held-out confocal nuclei plane (z = 33), 16-bit (``make data``)."""
    from napari_genprior.data.real import real_planes

    return (real_planes("nuclei", "held_out")[3] * 30000).astype(np.uint16)


def _irn(viewer: napari.Viewer):
    from napari_genprior._napari.irn_widget import IrnWidget

    layer = viewer.add_image(_nuclei_plane(), name="nuclei", colormap="gray")
    widget = IrnWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Invertible Rescaling", area="right")
    widget.image.value = layer
    widget.mode.value = "roundtrip"
    return widget


def _glean(viewer: napari.Viewer):
    from skimage.transform import downscale_local_mean

    from napari_genprior._napari.glean_widget import GleanWidget

    hr = _nuclei_plane()[64:192, 64:192].astype(np.float32)
    lr = downscale_local_mean(hr, 8).astype(np.float32)
    viewer.add_image(hr, name="truth", colormap="gray", visible=False)
    layer = viewer.add_image(lr, name="nuclei_lr", colormap="gray", scale=(8, 8), translate=(3.5, 3.5))
    widget = GleanWidget(viewer)
    viewer.window.add_dock_widget(widget, name="GLEAN", area="right")
    widget.image.value = layer
    return widget


def _join(viewer: napari.Viewer):
    from napari_genprior._napari.join_widget import FlatfieldWidget
    from napari_genprior.data.real import real_planes

    yy, xx = np.mgrid[0:256, 0:256] / 256.0
    field = 0.45 + 0.55 * np.exp(-((yy - 0.4) ** 2 + (xx - 0.6) ** 2) / 0.2)
    # tiles of different fields of view, as a tile scan gives: 4 crops of each held-out time-lapse frame
    frames = real_planes("timelapse", "held_out")
    stack = np.stack([f[y : y + 256, x : x + 256] for f in frames for y in (0, 255) for x in (0, 255)])
    rng = np.random.default_rng(0)
    img = ((stack * field + 0.05 + 0.005 * rng.standard_normal(stack.shape)) * 20000).astype(np.uint16)
    layer = viewer.add_image(img, name="stack", colormap="gray")
    widget = FlatfieldWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Flat-field correction (JoIN)", area="right")
    widget.image.value = layer
    return widget


if __name__ == "__main__":
    main()
