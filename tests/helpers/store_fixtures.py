"""Fixtures shared by tests/store and tests/api: a migrated database on each backend.

Each backend's database is created and migrated from empty once per test process; each test
then gets its own ``Database`` (engines live in the test's event loop) and its own clients.
Every row belongs to a client and every query is scoped to one, so tests that make their own
clients cannot see each other's data: that is the isolation the product promises (docs/api.md), and
it lets the suite share one database instead of migrating per test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callagent.store.db import Database, migrate_url
from callagent.telephony.outbound import OutboundCallRequest, PlacementResult

from helpers import postgres

BACKENDS = ["sqlite", "postgresql"]
_urls: dict[str, str] = {}


def migrated_url(backend: str) -> str:
    """The URL of this process's migrated test database on ``backend``."""
    if backend not in _urls:
        if backend == "sqlite":
            folder = Path(tempfile.mkdtemp(prefix="callagent-sqlite-"))
            url = f"sqlite+aiosqlite:///{folder / 'test.db'}"
        else:
            url = postgres.create_database(postgres.start(), "callagent_tests")
        asyncio.run(migrate_url(url))
        _urls[backend] = url
    return _urls[backend]


def fresh_url(backend: str) -> str:
    """An empty, unmigrated database on ``backend``."""
    name = f"empty_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='callagent-sqlite-')) / name}.db"
    return postgres.create_database(postgres.start(), name)


def own_migrated_url(backend: str = "sqlite") -> str:
    """A migrated database of its own (made outside any event loop), for tests that run
    ``start_telephony`` with AMI: its scheduler and crash recovery sweep *every* client's rows,
    so on the shared database another test's due callbacks take its call slots (seen in CI:
    "refused: 0 of 2 calls live, 2 being placed")."""
    url = fresh_url(backend)
    asyncio.run(migrate_url(url))
    return url


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each test that uses the database runs once per backend."""
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str) -> str:
    """The migrated database of ``backend``."""
    return migrated_url(backend)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    """A ``Database`` on the migrated test database, closed after the test."""
    database = Database(database_url)
    yield database
    await database.dispose()


@dataclass
class FixedClock:
    """A clock the test sets. Default: Wednesday 2026-03-04 10:00 UTC (in working hours)."""

    now: dt.datetime = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += dt.timedelta(**delta)


@dataclass
class RecordingPlacer:
    """A CallPlacer that records requests and answers as told."""

    placed: bool = True
    reason: str = ""
    requests: list[OutboundCallRequest] = field(default_factory=list)

    async def place_call(self, request: OutboundCallRequest) -> PlacementResult:
        self.requests.append(request)
        return PlacementResult(
            placed=self.placed,
            reason=self.reason,
            telephony_call_id=f"fake-{len(self.requests)}" if self.placed else "",
        )
