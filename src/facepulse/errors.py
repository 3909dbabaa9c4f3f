"""User-facing errors.

Every problem caused by the user's input (a missing file, an undecodable frame, an
unknown method...) raises a subclass of :class:`FacepulseError` with a one-line message
naming the problem. The CLI prints that line and exits non-zero, without a traceback.
"""

from __future__ import annotations


class FacepulseError(Exception):
    """Base class of errors caused by input, configuration or data (not bugs)."""

    exit_code: int = 2


class InputError(FacepulseError):
    """A file is missing, unreadable, truncated or malformed."""


class ConfigError(FacepulseError):
    """An option, config field or registry name is invalid."""


class NoFaceError(FacepulseError):
    """No face was found in the video (or too few frames had one)."""

    exit_code = 3


class SignalTooShortError(FacepulseError):
    """The signal is shorter than the analysis window needs."""
