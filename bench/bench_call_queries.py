"""Benchmark of the queries the analytics page and the calls list run on ``call_sessions``,
before and after migration 0013 (``ix_call_sessions_client_created``; docs/dashboard.md,
"Analytics").

Fills many clients with calls spread over the last year (the table holds every client's
calls, as in production), migrates to 0012, then runs each query through its service function
(``analytics.analytics``, ``calls.list_calls``) and prints p50/p95 and the plan the database
chose for the very SQL the service sent (PostgreSQL: ``EXPLAIN (ANALYZE, BUFFERS)``; SQLite:
``EXPLAIN QUERY PLAN``); then migrates to 0013 and does the same again.

    .venv/bin/python bench/bench_call_queries.py                 # a throw-away PostgreSQL server
    .venv/bin/python bench/bench_call_queries.py --sqlite        # a SQLite file in a temp folder

Not part of the test suite; takes a few minutes (most of it filling the table).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event, insert, text

from callagent.store.db import Database
from callagent.store.ids import id_at
from callagent.store.models import CallSession, CustomerProfile
from callagent.store.schemas import AgentSetup
from callagent.store.services import agents, analytics, calls, clients
from callagent.store.states import CallOutcome, CallStatus, CallType, InterestLevel

NOW = dt.datetime.now(dt.UTC)
OUTCOMES = list(CallOutcome)
CHUNK = 5_000


async def _insert(db: Database, model: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        async with db.write() as session:
            await session.execute(insert(model), rows[start : start + CHUNK])


async def fill_client(db: Database, index: int, calls_per_client: int) -> dict[str, Any]:
    """A client with an agent, 500 customers and ``calls_per_client`` calls evenly over the
    last 365 days (ids are UUIDv7 of the call's time, as the service writes them)."""
    client_id = (await clients.create_client(db, f"bench {index}")).client_id
    agent = await agents.setup_agent(db, client_id, AgentSetup(agent_name="Bench"))
    rng = random.Random(index)
    customers = []
    for number in range(500):
        created = NOW - dt.timedelta(days=400)
        customers.append(
            {
                "id": id_at(created.timestamp(), number),
                "client_id": client_id,
                "phone_number": f"+1415{index:03d}{number:04d}",
                "name": f"Customer {number}",
                "email": "",
                "company": "",
                "interest_level": InterestLevel.COLD,
                "call_preference_time": "",
                "total_calls": 0,
                "answered_calls": 0,
                "total_talk_time_s": 0.0,
                "conversation_notes": "",
                "preferences": {},
                "objections": [],
                "do_not_call": False,
                "converted": False,
                "created_at": created,
                "updated_at": created,
            }
        )
    await _insert(db, CustomerProfile, customers)
    span = 365 * 86400
    rows = []
    for number in range(calls_per_client):
        at = NOW.timestamp() - span + span * (number + rng.random()) / calls_per_client
        outcome = OUTCOMES[number % len(OUTCOMES)]
        rows.append(
            {
                "id": id_at(at, number % 4096),
                "client_id": client_id,
                "agent_id": agent.id,
                "customer_id": rng.choice(customers)["id"],
                "call_type": CallType.OUTBOUND if number % 3 else CallType.INBOUND,
                "purpose": "",
                "context": {},
                "phone_number": "+14150000000",
                "status": CallStatus.FAILED
                if outcome == CallOutcome.FAILED
                else CallStatus.COMPLETED,
                "outcome": outcome,
                "failure_reason": "",
                "customer_response": "",
                "conversation_notes": "",
                "transcript": [],
                "duration_s": 60.0,
                "recording_ref": "",
                "latency": {"turns": [{"voice_to_voice": 700 + number % 500}]},
                "telephony_channel": "",
                "telephony_call_id": "",
                "created_at": dt.datetime.fromtimestamp(at, dt.UTC),
            }
        )
    await _insert(db, CallSession, rows)
    return {"client_id": client_id, "customer_id": customers[0]["id"]}


class LastQuery:
    """The last statement on ``call_sessions`` the read engine sent, with its parameters."""

    def __init__(self, db: Database) -> None:
        self.statement = ""
        self.parameters: Any = ()
        event.listen(db.read_engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM call_sessions" in statement and not statement.startswith("EXPLAIN"):
            self.statement, self.parameters = statement, parameters


async def plan(db: Database, seen: LastQuery) -> list[str]:
    """The plan of the last query on ``call_sessions``, as the database executes it."""
    prefix = (
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "
        if db.dialect == "postgresql"
        else "EXPLAIN QUERY PLAN "
    )
    async with db.read_engine.connect() as connection:
        result = await connection.exec_driver_sql(prefix + seen.statement, seen.parameters)
        rows = result.all()
    if db.dialect == "postgresql":
        return [row[0] for row in rows]
    return [str(row[-1]) for row in rows]


async def measure(
    db: Database, seen: LastQuery, name: str, run: Callable[[], Awaitable[Any]], repeats: int
) -> None:
    await run()  # warm the engine's pool and the database's cache
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        await run()
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    print(f"  {name:<34} p50 {statistics.median(times):7.2f} ms   p95 {p95:7.2f} ms")
    for line in await plan(db, seen):
        if any(word in line for word in ("Scan", "SCAN", "SEARCH", "Sort", "TEMP", "Execution")):
            print(f"      {line.strip()}")


async def run(url: str, clients_n: int, calls_per_client: int, repeats: int) -> None:
    db = Database(url)
    await db.migrate("0012")
    print(f"database: {db.dialect}; machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
    started = time.perf_counter()
    filled = [await fill_client(db, index, calls_per_client) for index in range(clients_n)]
    print(f"{clients_n} clients x {calls_per_client:,} calls filled in "
          f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    big = filled[clients_n // 2]
    client_id: uuid.UUID = big["client_id"]
    seen = LastQuery(db)
    queries: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        *(
            (
                f"analytics, last {days} days",
                lambda days=days: analytics.analytics(
                    db, client_id, NOW, days=days, timezone="Europe/Berlin"
                ),
            )
            for days in (7, 30, 90)
        ),
        ("calls list, newest 50", lambda: calls.list_calls(db, client_id)),
        (
            "calls list, status=failed",
            lambda: calls.list_calls(db, client_id, status=CallStatus.FAILED),
        ),
        (
            "calls list, one customer",
            lambda: calls.list_calls(db, client_id, customer_id=big["customer_id"]),
        ),
    ]
    for revision in ("0012", "0013"):
        started = time.perf_counter()
        await db.migrate(revision)
        if revision == "0013":
            # A plain CREATE INDEX: writes to call_sessions wait this long (docs/dashboard.md).
            print(f"\nmigration 0013 on {clients_n * calls_per_client:,} calls: "
                  f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        if db.dialect == "postgresql":
            async with db.write_engine.connect() as connection:
                await connection.exec_driver_sql("COMMIT")
                await connection.exec_driver_sql("VACUUM ANALYZE call_sessions")
        else:
            async with db.write() as session:
                await session.execute(text("ANALYZE"))
        # Fresh connections, as a node restarted after the upgrade has: a pooled SQLite
        # connection can keep planning with the schema and statistics it loaded before.
        await db.dispose()
        print(f"\nat revision {revision}:")
        for name, query in queries:
            await measure(db, seen, name, query, repeats)
    await db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file, not PostgreSQL")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--calls-per-client", type=int, default=25_000)
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per query")
    args = parser.parse_args()
    if args.sqlite:
        folder = Path(tempfile.mkdtemp(prefix="callagent-bench-"))
        url = f"sqlite+aiosqlite:///{folder / 'bench.db'}"
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from helpers import postgres

        url = postgres.create_database(postgres.start(), "callagent_bench_calls")
    asyncio.run(run(url, args.clients, args.calls_per_client, args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
