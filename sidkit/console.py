"""What the command line shows when a run fails on bad input: one clear line, not a crash.

A failed step makes ZenML log the step's traceback and then one "Skipping step" line per
downstream step. When the failure is one of sidkit's own errors (bad data, bad config, a failed
gate: :class:`sidkit.errors.SidkitError`) that is noise: the CLI prints the message itself, with
the report path. :class:`ExpectedFailureFilter` drops those records; ``-v`` keeps everything.
Unexpected exceptions (bugs) keep their tracebacks.
"""

from __future__ import annotations

import logging
import sys

from sidkit.errors import SidkitError


class ExpectedFailureFilter(logging.Filter):
    """Drop ZenML's traceback and step-skipping records that follow a :class:`SidkitError`."""

    def __init__(self) -> None:
        super().__init__()
        self.expected_failure = False

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("zenml") or record.levelno < logging.WARNING:
            return True
        # ZenML logs inside its ``except`` block, so the exception is the one being handled
        exc = record.exc_info[1] if record.exc_info else sys.exc_info()[1]
        if isinstance(exc, SidkitError):
            self.expected_failure = True
            return False
        if self.expected_failure and "Skipping step" in record.getMessage():
            return False
        return True


def quiet_expected_failures() -> ExpectedFailureFilter:
    """Attach the filter to every handler of the root logger (where ZenML's console handler sits)."""
    filt = ExpectedFailureFilter()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ExpectedFailureFilter) for f in handler.filters):
            handler.addFilter(filt)
    return filt
