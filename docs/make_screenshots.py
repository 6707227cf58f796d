"""Screenshots of the Deep Image Prior widget in a real napari window, for docs/dip.md.

Run under a display, e.g. ``make docs`` (which uses ``xvfb-run``)::

    xvfb-run -a -s "-screen 0 1600x1000x24" python docs/make_screenshots.py
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import napari
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
    OUT.mkdir(parents=True, exist_ok=True)
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


if __name__ == "__main__":
    main()
