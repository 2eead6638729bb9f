"""Errors a user can cause: each carries one line saying what is wrong and how to fix it."""

from __future__ import annotations

__all__ = ["AigcError", "ConfigError", "DataError", "CheckpointError"]


class AigcError(Exception):
    """A problem the user can fix; the CLI prints its message as one line and exits with code 2."""

    exit_code = 2


class ConfigError(AigcError):
    """A config key is unknown, has the wrong type or an impossible value."""

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        super().__init__(f"{key}: {message}" if key else message)


class DataError(AigcError):
    """A dataset is missing, damaged or unknown."""


class CheckpointError(AigcError):
    """A run directory or checkpoint is missing, damaged or not ours."""
