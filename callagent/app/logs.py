"""How the ``callagent`` command writes log lines: the one place logging is configured.

Components only log to their own ``logging.getLogger(__name__)``; the level, the format and the
call id every line carries (many calls share one process: :mod:`callagent.call_logging`) are
chosen here, once per process.
"""

from __future__ import annotations

import logging
import sys

from callagent.call_logging import CALL_LOG_FORMAT, install_call_id_logging


def configure_logging(*, verbose: bool = False) -> None:
    """Log to stderr at INFO (DEBUG with ``verbose``); each line names its call."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format=CALL_LOG_FORMAT,
        stream=sys.stderr,
    )
    install_call_id_logging(logging.getLogger(), set_format=False)
