"""Run an engine generator in a napari thread worker: progress, live preview, cancel, result layers."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import napari
import numpy as np
from magicgui.widgets import ComboBox, Label, PushButton
from napari.layers import Image, Labels, Layer
from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils import progress
from napari.utils.notifications import show_error, show_info

from ..engines.base import (
    Cancelled,
    EngineRun,
    InputError,
    Progress,
    Result,
    available_devices,
    output_geometry,
    progress_text,
)
from ..engines.planewise import Start, is_lazy, run_planewise

__all__ = [
    "EngineRunner",
    "ImageChoices",
    "RunControls",
    "device_box",
    "engine_run",
    "image_layer",
    "result_layers",
    "run_button",
    "status_label",
    "wrapping_label",
]

#: Seconds between preview updates at most: each one redraws the canvas, which on a machine
#: with software OpenGL takes CPU from the engine (docs/benchmarks.md, gui_bench).
PREVIEW_INTERVAL = 1.0
#: Seconds between status and progress-bar updates at most (each one relays out the dock).
STATUS_INTERVAL = 0.25


#: the status line's tooltip until the first message replaces it
STATUS_TOOLTIP = "what the run is doing, its progress and the time left, or why it could not start"


def run_button() -> PushButton:
    """The Run button (Cancel while a run is going)."""
    return PushButton(
        text="Run",
        tooltip="start with the settings above; while it runs, this button cancels it (the viewer is "
        "then left as it was)",
    )


def device_box() -> ComboBox:
    """The device choice: ``auto``, ``cpu``, every ``cuda:N`` present and ``mps`` where available."""
    return ComboBox(
        label="device",
        choices=available_devices(),
        value="auto",
        tooltip="where the computation runs. auto: the first GPU if there is one (NVIDIA cuda, or Apple "
        "mps), else the CPU. cuda:N picks GPU number N. Change it to keep a GPU free for other work, "
        "or to run on the CPU when the GPU is short of memory",
    )


def status_label() -> Label:
    """A status line that wraps instead of widening the dock; the full text is also its tooltip."""
    return wrapping_label(STATUS_TOOLTIP)


def wrapping_label(tooltip: str) -> Label:
    """A read-only line that wraps to the dock's width instead of widening it."""
    from qtpy.QtWidgets import QSizePolicy

    label = Label(value="", tooltip=tooltip)
    label.native.setWordWrap(True)
    # Ignored: the layout never widens the dock for a long message; the text wraps to the width.
    label.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    label.native.setMinimumWidth(0)
    return label


def image_layer(layer: Any) -> Image:
    """``layer`` if it is an Image layer (multiscale included: :func:`layer_array` takes its
    full-resolution level); else :class:`InputError` saying what to choose instead."""
    if layer is None:
        raise InputError("no image selected: open an image (File ▸ Open, or File ▸ Open Sample)")
    if isinstance(layer, Labels):
        raise InputError(f"{layer.name!r} is a Labels layer: choose an Image layer")
    if not isinstance(layer, Image):
        raise InputError(f"{getattr(layer, 'name', layer)!r} is not an Image layer: choose an Image layer")
    return layer


def full_resolution(layer: Image) -> Any:
    """The array-like an engine works on: the layer's data, or a multiscale layer's level 0 (not
    loaded)."""
    return layer.data[0] if layer.multiscale else layer.data


def layer_array(layer: Image) -> Any:
    """The pixels an engine restores: the layer's data, or a multiscale (pyramid) layer's
    full-resolution level, the one its scale and translate describe.

    A numpy layer comes back as it is. A lazy one (dask, zarr: anything that is not numpy) comes
    back unread, to be run plane by plane with :func:`engine_run`, so it is never loaded whole.
    """
    return full_resolution(layer)


def engine_run(start: Start, data: Any, channel_axis: int | None, shared_range: bool = False) -> EngineRun:
    """``start(data, (), None)`` for a numpy array; for a lazy one, ``start(plane, position,
    value_range)`` on each plane in turn (:func:`napari_genprior.engines.planewise.run_planewise`,
    which says what ``shared_range`` does), one plane in memory at a time. Input errors of the
    first plane are raised here, before the run starts."""
    if not is_lazy(data):
        return start(data, (), None)
    return run_planewise(data, channel_axis, start, shared_range=shared_range)


def result_layers(result: Result, source: Image) -> list[Layer]:
    """Turn an engine result into napari layers placed exactly over ``source``.

    Names are ``{source}_{suffix}``; scale/translate follow the source (divided/shifted by each
    output's zoom); ``metadata`` holds the engine's parameters and the source layer's name.
    """
    layers = []
    for out in result.layers:
        # Outputs may have fewer axes than the source (a mask or an uncertainty map has no channels).
        rgb = out.layer_type == "image" and out.kwargs.get(
            "rgb", source.rgb and out.data.ndim == source.ndim + 1
        )
        nd = out.data.ndim - (1 if rgb else 0)
        scale, translate = output_geometry(source.scale[-nd:], source.translate[-nd:], out.zoom)
        meta = {**result.metadata, "source_layer": source.name}
        base = source.name
        if out.suffix.startswith("irn_") and base.endswith("_irn_lr"):  # up on an LR made by down
            base = base[: -len("_irn_lr")]
        kwargs: dict[str, Any] = {
            "name": f"{base}_{out.suffix}",
            "scale": scale,
            "translate": translate,
            "metadata": meta,
            **out.kwargs,
        }
        if out.layer_type == "image" and out.data.ndim == source.data.ndim:
            kwargs.setdefault("rgb", source.rgb)
            if not source.rgb and "colormap" not in out.kwargs:
                kwargs.setdefault("colormap", source.colormap.name)
                kwargs.setdefault("contrast_limits", list(source.contrast_limits))
        layers.append(Layer.create(out.data, kwargs, out.layer_type))
    return layers


_prewarmed = threading.Event()


def prewarm() -> None:
    """Import what torch loads on an engine's first step (torch._dynamo, which its optimisers pull
    in: over a second) in a background thread, while the user is still choosing settings."""
    if _prewarmed.is_set():
        return
    _prewarmed.set()

    def work() -> None:
        import torch._dynamo  # noqa: F401

    threading.Thread(target=work, name="genprior-prewarm", daemon=True).start()


class EngineRunner:
    """Drives one engine run at a time for a widget.

    ``on_state(running, message)`` is called on the main thread whenever the run starts, makes
    progress, finishes, fails or is cancelled, so the widget can update its button and status.
    """

    def __init__(self, viewer: napari.Viewer, on_state: Callable[[bool, str], None]) -> None:
        self.viewer = viewer
        self.on_state = on_state
        prewarm()
        self.worker: GeneratorWorker | None = None
        self._cancel = threading.Event()
        self._pbar: progress | None = None
        self._preview: Image | None = None
        self._source: Image | None = None
        self._preview_name = ""
        self._t0 = 0.0
        self.last_result: Result | None = None
        self.last_error: BaseException | None = None
        self._done_message: str | None = None
        self._title = ""
        self._zoom = 1.0
        self._last_preview = -math.inf
        self._last_status = -math.inf
        self.preview_interval = PREVIEW_INTERVAL

    def cancel_requested(self) -> bool:
        """For the engine's ``cancel`` argument: True once Cancel was pressed."""
        return self._cancel.is_set()

    @property
    def running(self) -> bool:
        return self.worker is not None

    def start(self, gen: EngineRun, *, source: Image, title: str, zoom: float = 1.0) -> GeneratorWorker:
        """Start ``gen`` (an engine run on ``source``'s data) in a thread; ``zoom`` places the preview.

        Refused (RuntimeError) while another run is going.
        """
        if self.running:
            raise RuntimeError("a run is already in progress: cancel it or wait for it to finish")
        self._cancel.clear()
        self._source = source
        self._zoom = zoom
        self._preview_name = f"{source.name}_preview"
        self._title = title
        self.last_result = None
        self.last_error = None
        self._t0 = time.perf_counter()
        self._last_preview = self._last_status = -math.inf

        def job() -> EngineRun:
            try:
                return (yield from gen)
            except Cancelled:
                return None

        self._pbar = progress(total=0, desc=title)
        worker = create_worker(job, _start_thread=False, _ignore_errors=True)
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self.on_state(True, f"{title}: starting…")
        worker.start()
        return worker

    def cancel(self) -> None:
        """Ask the run to stop; it stops at the next step and leaves the viewer as it was."""
        if self.worker is not None:
            self._cancel.set()
            self.worker.quit()
            self.on_state(True, f"{self._title}: cancelling…")

    # -- signal handlers (main thread) --------------------------------------------------------

    def _on_yielded(self, ev: Progress) -> None:
        pbar = self._pbar
        if self._cancel.is_set() or self.worker is None or pbar is None:
            return
        now = time.perf_counter()
        # Previews and status updates are limited by time, not steps: each costs the main thread a
        # redraw or a relayout, and on a small machine that time is taken from the engine.
        if ev.preview is not None and now - self._last_preview >= self.preview_interval:
            self._last_preview = now
            self._show_preview(ev.preview)  # may process pending events, the end of the run included
            if self.worker is None:
                return
        if now - self._last_status < STATUS_INTERVAL and ev.step < ev.total:
            return
        self._last_status = now
        if pbar.total != ev.total:
            pbar.total = ev.total
        pbar.update(ev.step - pbar.n)
        text = progress_text(ev)
        elapsed = now - self._t0
        if ev.step and ev.step < ev.total:  # napari's bar shows an ETA for the full total
            left = elapsed * (ev.total - ev.step) / ev.step
            # an extrapolation of the steps so far: said as "about" (or "at most" with auto-stop)
            text += f" · {'at most' if ev.at_most else 'about'} {_duration(left)} left"
        pbar.set_description(f"{self._title}{' (auto-stop: at most)' if ev.at_most else ''}")
        if self.worker is None:  # napari's progress bar processes events: the run may have ended
            return
        self.on_state(True, f"{self._title}: {text}")

    def _show_preview(self, data: np.ndarray) -> None:
        src = self._source
        if self._preview is not None and self._preview in self.viewer.layers:
            self._preview.data = data
            return
        rgb = data.ndim == 3 and data.shape[-1] in (3, 4) and src.rgb
        nd = data.ndim - (1 if rgb else 0)
        scale, translate = output_geometry(src.scale[-nd:], src.translate[-nd:], self._zoom)
        kwargs: dict[str, Any] = {
            "name": self._preview_name,
            "scale": scale,
            "translate": translate,
            "rgb": rgb,
        }
        if not src.rgb:
            kwargs.update(colormap=src.colormap.name, contrast_limits=list(src.contrast_limits))
        self._preview = self.viewer.add_image(data, **kwargs)
        if self.worker is None:  # the run ended while the layer was being added
            self._remove_preview()

    def _on_returned(self, result: Result | None) -> None:
        if result is None or self._cancel.is_set():  # cancelled (possibly at the very last step)
            return
        self.last_result = result
        src = self._source
        self._remove_preview()
        primary, *aux = result_layers(result, src)
        # Auxiliary layers (mask, uncertainty, LR) first, so that the result ends up on top of them
        # and selected: the view shows the restoration, and the layer controls are the result's.
        for layer in (*aux, primary):
            self.viewer.add_layer(layer)
        self.viewer.layers.selection.active = primary
        wall = time.perf_counter() - self._t0
        self._done_message = f"{self._title}: done in {wall:.1f} s"
        meta = result.metadata
        if meta.get("tiles", 1) > 1:
            self._done_message += f" · {meta['tiles']} tiles of {meta['tile_size']} px"
        if "chosen_step" in meta:
            chosen = meta["chosen_step"]
            if len(chosen) <= 4:
                steps = ", ".join(str(s) for s in chosen)
            else:
                steps = f"{min(chosen)}–{max(chosen)} (median {int(np.median(chosen))})"
            self._done_message += f" · auto-stop chose step {steps}"
        for warning in meta.get("warnings", ()):
            self._done_message += f" · {warning}"

    def _on_errored(self, err: BaseException) -> None:
        self.last_error = err
        if isinstance(err, Cancelled):
            return
        self._done_message = f"{self._title} failed: {err}"
        show_error(self._done_message)

    def _on_aborted(self) -> None:
        self._done_message = f"{self._title}: cancelled"

    def _on_finished(self) -> None:
        self._remove_preview()
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        msg = self._done_message or f"{self._title}: finished"
        if self._cancel.is_set():
            msg = f"{self._title}: cancelled"
            show_info(msg)
        self._done_message = None
        self.worker = None
        self.on_state(False, msg)

    def _remove_preview(self) -> None:
        if self._preview is not None and self._preview in self.viewer.layers:
            self.viewer.layers.remove(self._preview)
        self._preview = None


class ImageChoices:
    """The image combo box of an engine widget: every Image layer but the run's own preview, kept
    up to date as layers come and go. The widget provides ``viewer``, ``runner`` and ``image``;
    :meth:`_refresh_choices` may be extended for other combo boxes."""

    viewer: napari.Viewer
    runner: EngineRunner

    def _watch_layers(self) -> None:
        for event in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            event.connect(self._refresh_choices)
        self._refresh_choices()

    def _image_choices(self, _w: Any = None) -> list[tuple[str, Image]]:
        preview = self.runner._preview
        # == rather than `is`: opened from the Plugins menu, the widget gets napari's proxy of the
        # viewer, whose layers are new proxy objects at each access (equal, but not identical)
        return [
            (lay.name, lay)
            for lay in self.viewer.layers
            if isinstance(lay, Image) and (preview is None or lay != preview)
        ]

    def _refresh_choices(self, _event: Any = None) -> None:
        self.image.reset_choices()
        if self.image.value is None and self.image.choices:
            self.image.value = self.image.choices[-1]


class RunControls:
    """Run/Cancel button and status line shared by the engine widgets.

    The widget provides ``runner`` (an :class:`EngineRunner` created with ``self._set_state``),
    ``run_button``, ``status`` and ``run()``.
    """

    runner: EngineRunner

    @property
    def running(self) -> bool:
        return self.runner.running

    def _on_button(self, _v: Any = None) -> None:
        if self.runner.running:
            self.runner.cancel()
        else:
            self.run()

    def cancel(self) -> None:
        """Stop the current run; the viewer is left as it was before Run."""
        self.runner.cancel()

    def _set_state(self, running: bool, message: str) -> None:
        self.run_button.text = "Cancel" if running else "Run"
        self.status.value = message
        self.status.tooltip = message


def _duration(seconds: float) -> str:
    """``'40 s'``, ``'3 min'``, ``'1.5 h'``: a rough time for an estimate."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
