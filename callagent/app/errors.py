"""Errors the command line reports as one line."""

from __future__ import annotations


class UsageError(Exception):
    """A command-line problem worth one clear line, not a traceback."""
