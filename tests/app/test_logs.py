"""The command's log lines name the call they belong to."""

from __future__ import annotations

import io
import logging
import uuid

from callagent.app import logs
from callagent.call_logging import CallIdFilter, call_context


def test_every_line_carries_the_call_id_and_configuring_twice_installs_once() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("[%(call_id)s] %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        logs.configure_logging(verbose=False)
        logs.configure_logging(verbose=False)
        assert sum(isinstance(f, CallIdFilter) for f in handler.filters) == 1
        call_id = uuid.uuid4()
        log = logging.getLogger("callagent.test")
        with call_context(call_id):
            log.warning("in a call")
        log.warning("outside")
        assert stream.getvalue().splitlines() == [f"[{call_id}] in a call", "[-] outside"]
    finally:
        root.removeHandler(handler)
        for other in root.handlers:  # pytest's own handlers got the filter too
            for f in [f for f in other.filters if isinstance(f, CallIdFilter)]:
                other.removeFilter(f)
