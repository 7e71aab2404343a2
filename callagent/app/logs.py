"""How the ``callagent`` command writes log lines: the one place logging is configured.

Components only log to their own ``logging.getLogger(__name__)``; the level, the format and the
filters every line passes through are chosen here, once per process.
"""

from __future__ import annotations

import logging
import sys

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_filters() -> list[logging.Filter]:
    """The filters installed on every handler of the root logger.

    This is where a filter that adds context to each record belongs, such as the one that puts
    the current call's id on every line logged while a call runs (``callagent.call_logging``,
    when it exists): return it here and add its field to :data:`LOG_FORMAT`.
    """
    return []


def configure_logging(*, verbose: bool = False) -> None:
    """Log to stderr at INFO (DEBUG with ``verbose``), through :func:`log_filters`."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=LOG_FORMAT,
        stream=sys.stderr,
    )
    filters = log_filters()
    for handler in logging.getLogger().handlers:
        for log_filter in filters:
            if log_filter not in handler.filters:
                handler.addFilter(log_filter)
