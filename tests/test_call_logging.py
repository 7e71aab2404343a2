"""The call id on log records: the context a call binds, the filter, and how it is installed."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator

import pytest

from callagent.call_logging import (
    CALL_LOG_FORMAT,
    NO_CALL,
    CallIdFilter,
    call_context,
    current_call_id,
    install_call_id_logging,
)

pytestmark = pytest.mark.timeout(10)

log = logging.getLogger("callagent.tests.call_logging")


class Collect(logging.Handler):
    """Keeps every record it is handed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collect() -> Iterator[Collect]:
    handler = Collect()
    install_call_id_logging(handler, set_format=False)
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)
    yield handler
    log.removeHandler(handler)


def ids(handler: Collect) -> list[tuple[str, str]]:
    return [(r.getMessage(), r.call_id) for r in handler.records]


def test_records_outside_a_call_say_so(collect: Collect) -> None:
    log.info("idle")
    assert ids(collect) == [("idle", NO_CALL)]
    assert current_call_id() is None


def test_a_call_context_binds_the_id_and_restores_the_one_before(collect: Collect) -> None:
    outer, inner = uuid.uuid4(), uuid.uuid4()
    with call_context(outer):
        log.info("a")
        with call_context(inner):
            log.info("b")
        log.info("c")
    log.info("d")
    assert ids(collect) == [("a", str(outer)), ("b", str(inner)), ("c", str(outer)), ("d", "-")]


def test_a_call_context_is_left_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), call_context("abc"):
        raise RuntimeError
    assert current_call_id() is None


async def test_tasks_inherit_their_calls_id_and_concurrent_calls_do_not_mix(
    collect: Collect,
) -> None:
    async def helper(n: int) -> None:
        await asyncio.sleep(0)
        log.info("helper of %d", n)

    async def call(n: int) -> None:
        with call_context(f"call-{n}"):
            log.info("start of %d", n)
            await asyncio.sleep(0)  # let the other call run in between
            await asyncio.create_task(helper(n))
            log.info("end of %d", n)

    await asyncio.gather(call(1), call(2))
    log.info("after")
    for message, call_id in ids(collect)[:-1]:
        assert call_id == f"call-{message[-1]}"
    assert len(collect.records) == 7
    assert ids(collect)[-1] == ("after", NO_CALL)


def test_an_explicit_call_id_is_kept() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m", None, None)
    record.call_id = "given"
    with call_context("bound"):
        assert CallIdFilter().filter(record)
    assert record.call_id == "given"


def test_installing_on_a_logger_covers_its_handlers_once() -> None:
    logger = logging.getLogger("callagent.tests.call_logging.install")
    first, second = logging.StreamHandler(), logging.StreamHandler()
    logger.addHandler(first)
    logger.addHandler(second)
    try:
        install_call_id_logging(logger)
        install_call_id_logging(logger)
        for handler in (first, second):
            assert sum(isinstance(f, CallIdFilter) for f in handler.filters) == 1
            assert handler.formatter is not None
            assert handler.formatter._fmt == CALL_LOG_FORMAT
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
        with call_context("c-1"):
            assert first.filter(record)
        assert first.format(record).endswith("x [c-1] hello")
    finally:
        logger.removeHandler(first)
        logger.removeHandler(second)
