"""The project's two exceptions, imported by io, imaging, the engines and the shells."""

from __future__ import annotations

__all__ = ["Cancelled", "InputError"]


class InputError(ValueError):
    """Bad input from the user. The message says what is wrong and what to do."""


class Cancelled(Exception):
    """The run was cancelled; nothing was produced."""
