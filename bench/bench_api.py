"""Benchmark of the REST API on a big client (results in docs/api.md, "Benchmark").

Fills one client with customers and calls (100,000 and 1,000,000 by default, bulk-inserted in
stages), then, after each stage, times the dashboard and the list endpoints through the real
Litestar app (in-process ASGI: the app, the ORM and the database, without a network hop) and
prints p50/p95 latency and requests per second. The lists are keyset-paginated and indexed, so
the figures of the stages should match: nothing slows down as the tables grow.

    .venv/bin/python bench/bench_api.py                       # SQLite file in a temp folder
    .venv/bin/python bench/bench_api.py --postgres            # a throw-away PostgreSQL server
    .venv/bin/python bench/bench_api.py --database-url URL    # any database (it is filled!)

Not part of the test suite; takes a few minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import insert, text

from callagent.api.app import create_app
from callagent.api.state import ApiState
from callagent.store import counters
from callagent.store.db import Database
from callagent.store.ids import id_at
from callagent.store.models import CallSession, CustomerProfile, ScheduledCallback
from callagent.store.schemas import AgentSetup, TrainingCreate
from callagent.store.services import agents, clients
from callagent.store.services._common import get_agent_row
from callagent.store.states import (
    CallbackStatus,
    CallOutcome,
    CallStatus,
    CallType,
    InterestLevel,
    TrainingType,
)

NOW = dt.datetime.now(dt.UTC)
LEVELS = (
    [InterestLevel.COLD] * 6
    + [InterestLevel.WARM] * 2
    + [InterestLevel.HOT, InterestLevel.CONVERTED]
)
OUTCOMES = list(CallOutcome)
CHUNK = 5_000


async def _insert(db: Database, model: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), CHUNK):
        async with db.write() as session:
            await session.execute(insert(model), rows[start : start + CHUNK])


async def fill_customers(
    db: Database, client_id: uuid.UUID, start: int, stop: int
) -> list[uuid.UUID]:
    """Customers ``start``..``stop`` (created over the last year), with their counters."""
    rows, ids, tally = [], [], {"customers.total": stop - start}
    span = 365 * 86400
    for index in range(start, stop):
        created = NOW.timestamp() - span + span * index / 1_000_000
        level = LEVELS[index % len(LEVELS)]
        customer_id = id_at(created, index % 4096)
        ids.append(customer_id)
        tally[f"customers.{level.value}"] = tally.get(f"customers.{level.value}", 0) + 1
        rows.append(
            {
                "id": customer_id,
                "client_id": client_id,
                "phone_number": f"+1415{index:07d}",
                "name": f"Customer {index}",
                "email": "",
                "company": "",
                "interest_level": level,
                "call_preference_time": "",
                "total_calls": 10,
                "answered_calls": 5,
                "total_talk_time_s": 300.0,
                "conversation_notes": "",
                "preferences": {},
                "objections": [],
                "do_not_call": False,
                "converted": level == InterestLevel.CONVERTED,
                "created_at": dt.datetime.fromtimestamp(created, dt.UTC),
                "updated_at": dt.datetime.fromtimestamp(created, dt.UTC),
            }
        )
    await _insert(db, CustomerProfile, rows)
    async with db.write() as session:
        await counters.bump(session, client_id, tally)
    return ids


async def fill_calls(
    db: Database, client_id: uuid.UUID, agent_id: uuid.UUID, customers: list[uuid.UUID],
    start: int, stop: int,
) -> None:  # fmt: skip
    """Calls ``start``..``stop`` over the last year, to random customers."""
    rng = random.Random(start)
    span = 365 * 86400
    rows = []
    handled = conversions = 0
    for index in range(start, stop):
        at = NOW.timestamp() - span + span * index / 1_000_000
        outcome = OUTCOMES[index % len(OUTCOMES)]
        handled += 1
        conversions += outcome == CallOutcome.CONVERTED
        rows.append(
            {
                "id": id_at(at, index % 4096),
                "client_id": client_id,
                "agent_id": agent_id,
                "customer_id": rng.choice(customers),
                "call_type": CallType.OUTBOUND,
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
                "latency": {},
                "telephony_channel": "",
                "telephony_call_id": "",
                "created_at": dt.datetime.fromtimestamp(at, dt.UTC),
            }
        )
        if len(rows) >= 50_000:
            await _insert(db, CallSession, rows)
            rows = []
    await _insert(db, CallSession, rows)
    async with db.write() as session:
        agent = await get_agent_row(session, client_id, for_update=True)
        agent.calls_handled += handled
        agent.successful_conversions += conversions


async def fill_callbacks(
    db: Database, client_id: uuid.UUID, customers: list[uuid.UUID], count: int
) -> None:
    """Scheduled callbacks around now: a third overdue."""
    rows = []
    for index in range(count):
        at = NOW + dt.timedelta(minutes=(index % 3000) - 1000)
        rows.append(
            {
                "id": id_at(NOW.timestamp(), index % 4096),
                "client_id": client_id,
                "customer_id": customers[index * 7 % len(customers)],
                "scheduled_at": at,
                "reason": "",
                "status": CallbackStatus.SCHEDULED,
                "priority": 3,
                "expected_outcome": "",
                "attempts": 0,
                "max_attempts": 3,
                "created_at": NOW,
                "updated_at": NOW,
            }
        )
    await _insert(db, ScheduledCallback, rows)
    async with db.write() as session:
        await counters.bump(session, client_id, {"callbacks.scheduled": count})


async def time_endpoints(
    http: httpx.AsyncClient, headers: dict[str, str], requests: int
) -> list[tuple[str, float, float, float]]:
    """p50, p95 (ms) and requests/s (4 concurrent) of each endpoint."""
    calls_page = (await http.get("/api/calls/", params={"limit": 1}, headers=headers)).json()
    one_call = calls_page["items"][0]["id"]
    customer = (await http.get("/api/customers/", params={"limit": 1}, headers=headers)).json()
    customer_id = customer["items"][0]["id"]
    # A cursor half-way through the calls: keyset pagination must not care how deep it is.
    deep = (await http.get("/api/calls/", params={"limit": 200}, headers=headers)).json()
    for _ in range(20):
        deep = (
            await http.get(
                "/api/calls/", params={"limit": 200, "cursor": deep["next_cursor"]}, headers=headers
            )
        ).json()
    endpoints = [
        ("dashboard", "/api/dashboard/ai-agent/", {}),
        ("dashboard customers hot", "/api/dashboard/ai-agent/customers/",
         {"interest_level": "hot", "converted": "false"}),
        ("dashboard callbacks overdue", "/api/dashboard/ai-agent/callbacks/",
         {"status": "scheduled", "overdue": "true"}),
        ("customers", "/api/customers/", {}),
        ("calls", "/api/calls/", {}),
        ("calls outcome=converted", "/api/calls/", {"outcome": "converted"}),
        ("calls of one customer", "/api/calls/", {"customer_id": customer_id}),
        ("calls page 21 (cursor)", "/api/calls/", {"cursor": deep["next_cursor"]}),
        ("call detail", f"/api/calls/{one_call}/", {}),
        ("callbacks", "/api/callbacks/", {}),
    ]  # fmt: skip
    results = []
    for name, path, params in endpoints:
        for _ in range(5):  # warm caches
            response = await http.get(path, params=params, headers=headers)
            assert response.status_code == 200, (path, response.text)
        samples = []
        for _ in range(requests):
            started = time.perf_counter()
            response = await http.get(path, params=params, headers=headers)
            samples.append((time.perf_counter() - started) * 1000)
        samples.sort()

        async def worker(count: int, path: str = path, params: dict[str, Any] = params) -> None:
            for _ in range(count):
                await http.get(path, params=params, headers=headers)

        started = time.perf_counter()
        await asyncio.gather(*(worker(requests // 4) for _ in range(4)))
        rate = (requests // 4 * 4) / (time.perf_counter() - started)
        results.append(
            (name, statistics.median(samples), samples[int(len(samples) * 0.95) - 1], rate)
        )
    return results


def _print(stage: str, results: list[tuple[str, float, float, float]]) -> None:
    print(f"\n{stage}")
    print(f"  {'endpoint':32} {'p50 ms':>8} {'p95 ms':>8} {'req/s':>8}")
    for name, p50, p95, rate in results:
        print(f"  {name:32} {p50:8.1f} {p95:8.1f} {rate:8.0f}")


async def run(url: str, customers: int, calls: int, requests: int) -> None:
    db = Database(url)
    await db.migrate()
    created = await clients.create_client(db, "benchmark")
    client_id = created.client_id
    headers = {"Authorization": f"Bearer {created.api_key}"}
    agent = await agents.setup_agent(db, client_id, AgentSetup(agent_name="Bench"))
    await agents.add_training(
        db,
        client_id,
        TrainingCreate(training_type=TrainingType.SCRIPT, training_content="w " * 200),
    )
    app = create_app(lambda: {}, ApiState(db=Database(url)))
    print(f"database: {db.dialect}; machine: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, Python {platform.python_version()}")  # fmt: skip
    customer_ids: list[uuid.UUID] = []
    done_customers = done_calls = 0
    for fraction in (0.1, 1.0):
        started = time.perf_counter()
        target_customers, target_calls = int(customers * fraction), int(calls * fraction)
        customer_ids += await fill_customers(db, client_id, done_customers, target_customers)
        await fill_calls(db, client_id, agent.id, customer_ids, done_calls, target_calls)
        if done_customers == 0:
            await fill_callbacks(db, client_id, customer_ids, 3000)
        done_customers, done_calls = target_customers, target_calls
        if db.dialect == "postgresql":
            async with db.write_engine.connect() as connection:
                await connection.exec_driver_sql("COMMIT")
                await connection.exec_driver_sql("VACUUM ANALYZE")
        else:
            async with db.write() as session:
                await session.execute(text("ANALYZE"))
        fill_s = time.perf_counter() - started
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
            results = await time_endpoints(http, headers, requests)
        _print(
            f"{done_customers:,} customers, {done_calls:,} calls (filled in {fill_s:.0f} s)",
            results,
        )
    await db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="database to fill (default: a temp SQLite file)")
    parser.add_argument("--postgres", action="store_true", help="start a throw-away PostgreSQL")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint")
    args = parser.parse_args()
    url = args.database_url
    if args.postgres:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from helpers import postgres

        url = postgres.create_database(postgres.start(), "callagent_bench")
    if url is None:
        url = (
            f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='callagent-bench-')) / 'bench.db'}"
        )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    asyncio.run(run(url, args.customers, args.calls, args.requests))
    return 0


if __name__ == "__main__":
    sys.exit(main())
