"""Exceptions that name where bad input sits (file, row, column)."""

from __future__ import annotations


class SidkitError(Exception):
    """Base class of sidkit's own errors."""


class DataFormatError(SidkitError):
    """A source file cannot be read as the format it claims to be.

    The message always names the file, the (1-based) row and the column or field.
    """

    def __init__(self, file: str, row: int | None, column: str | None, reason: str):
        self.file, self.row, self.column, self.reason = file, row, column, reason
        where = f"{file}"
        if row is not None:
            where += f", row {row}"
        if column is not None:
            where += f", column '{column}'"
        super().__init__(f"{where}: {reason}")


class DataValidationError(SidkitError):
    """Validation rejected rows; the message names the first offending rows."""


class ConfigError(SidkitError):
    """A configuration value is missing, unknown or inconsistent."""


class SIDHealthError(SidkitError):
    """The semantic IDs fail the configured health gate (collapse, collisions)."""
