"""The current call's id on every log line logged while that call runs.

Many calls run at once in one process, so a line such as "barge-in: playback stopped" means
nothing without the call it belongs to. Rather than every component passing the id into every
message, the call runner binds it for the duration of a call with :func:`call_context`; a
:mod:`contextvars` variable carries it, so tasks created during the call (the pacer, early STT)
inherit it and other calls' tasks never see it. :class:`CallIdFilter` puts it on each record as
``call_id`` (``"-"`` outside a call) for :data:`CALL_LOG_FORMAT`.

Only the composition root configures logging (DESIGN.md "Folders and who owns what"): it installs
the filter with :func:`install_call_id_logging`. Threads do not inherit the context (pjsua2's
callbacks log without a call id), but :func:`asyncio.to_thread` copies it.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import uuid
from collections.abc import Iterator
from typing import Final

NO_CALL: Final = "-"
"""The ``call_id`` of a record logged outside any call."""

CALL_LOG_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s [%(call_id)s] %(message)s"
"""A log format with the call id; only handlers with a :class:`CallIdFilter` can use it."""

_current_call: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "callagent_call_id", default=None
)


def current_call_id() -> str | None:
    """The id of the call the running code belongs to, or ``None`` outside a call."""
    return _current_call.get()


@contextlib.contextmanager
def call_context(call_id: uuid.UUID | str) -> Iterator[None]:
    """Bind ``call_id`` as the current call until the block ends.

    Everything logged in the block, and in tasks created in it, carries the id. Blocks nest: the
    previous call id (usually none) is restored on the way out.
    """
    token = _current_call.set(str(call_id))
    try:
        yield
    finally:
        _current_call.reset(token)


class CallIdFilter(logging.Filter):
    """Adds ``call_id`` to every record: the current call's id, or :data:`NO_CALL`.

    It never drops a record. A record that already carries a ``call_id`` (passed with
    ``extra=``) keeps it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "call_id"):
            record.call_id = _current_call.get() or NO_CALL
        return True


def install_call_id_logging(
    target: logging.Handler | logging.Logger, *, set_format: bool = True
) -> CallIdFilter:
    """Install a :class:`CallIdFilter` on ``target`` and return it.

    ``target`` is a handler, or a logger (usually the root logger) whose handlers all get the
    filter: a filter on a logger would only see records logged on that very logger, not those
    its children propagate, so handlers are where it must sit. Call it once the handlers exist
    (after :func:`logging.basicConfig`). With ``set_format`` each handler's formatter becomes
    :data:`CALL_LOG_FORMAT`. Installing twice adds nothing.
    """
    handlers = target.handlers if isinstance(target, logging.Logger) else [target]
    call_filter = CallIdFilter()
    for handler in handlers:
        if not any(isinstance(f, CallIdFilter) for f in handler.filters):
            handler.addFilter(call_filter)
        if set_format:
            handler.setFormatter(logging.Formatter(CALL_LOG_FORMAT))
    return call_filter
