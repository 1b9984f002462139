"""User-facing errors: the command line prints these without a traceback and exits 2."""

from __future__ import annotations

USER_ERROR_EXIT_CODE = 2


class UserError(Exception):
    """A mistake in the user's input (file, flag, config key): message only, exit code 2.

    The message must name the file and line, key or flag, and say what was expected.
    """

    exit_code = USER_ERROR_EXIT_CODE


class DataError(UserError):
    """Bad raw data: a malformed row, a truncated file, an unexpected header."""


class ConfigError(UserError):
    """A config value that is missing, of the wrong type or out of range."""
