"""Engines: one solver each, pure torch + numpy (no napari, no Qt)."""

from .base import Cancelled, InputError, OutputLayer, Progress, Result, drive, resolve_device

__all__ = ["Cancelled", "InputError", "OutputLayer", "Progress", "Result", "drive", "resolve_device"]
