"""Logging is configured in one place, with a hook for filters that add context to each line."""

from __future__ import annotations

import logging

import pytest

from callagent.app import logs


def test_the_filters_of_the_hook_are_installed_on_every_handler(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Tag(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            record.tag = "x"
            return True

    tag = Tag()
    handler = logging.StreamHandler()
    root = logging.getLogger()
    monkeypatch.setattr(logs, "log_filters", lambda: [tag])
    root.addHandler(handler)
    try:
        logs.configure_logging(verbose=False)
        logs.configure_logging(verbose=False)  # twice: still installed once
        assert handler.filters == [tag]
    finally:
        root.removeHandler(handler)
        for other in root.handlers:  # pytest's own handlers got it too
            other.removeFilter(tag)
