"""Benchmark of webhooks (results in docs/webhooks.md, "Measured").

1. What an event costs the write that raises it: ``PATCH``-like customer updates
   (``customers.update_customer``) timed for a client with no endpoint, one, and three.
2. What delivery takes: events for many calls written at once, sent by one node's worker to a
   real HTTP receiver on 127.0.0.1 (http.server in a thread); deliveries per second and the time
   from an event's commit to its arrival, p50/p95.
3. What the events of a CSV import cost it: ``customers.import_customers`` of ``--rows`` new
   customers (each a ``customer.created``) for a client with no endpoint and with one, p50/p95
   over ``--imports`` files.
4. What a retention sweep costs: ``webhooks.purge_delivered`` over the deliveries of part 2 and
   the imports' events, backdated past the retention.

    .venv/bin/python bench/bench_webhooks.py             # SQLite file in a temp folder
    .venv/bin/python bench/bench_webhooks.py --postgres  # a throw-away PostgreSQL server

Not part of the test suite; takes under a minute.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from sqlalchemy import update

from callagent.store.db import Database
from callagent.store.models import DeliveryStatus, WebhookDelivery, WebhookEvent
from callagent.store.schemas import CustomerCreate, CustomerUpdate
from callagent.store.services import clients, customers, events, webhooks
from callagent.store.services.webhooks import WebhookEndpointCreate
from callagent.webhooks.delivery import WebhookParams, WebhookWorker


def percentiles(values: list[float]) -> tuple[float, float]:
    """p50 and p95 of ``values``."""
    ordered = sorted(values)
    return statistics.median(ordered), ordered[max(0, round(0.95 * len(ordered)) - 1)]


async def write_cost(db: Database, endpoints: int, writes: int, url: str) -> tuple[float, float]:
    client_id = (await clients.create_client(db, f"bench {endpoints}")).client_id
    for _ in range(endpoints):
        await webhooks.create_endpoint(
            db, client_id, WebhookEndpointCreate(url=url, event_types=["*"])
        )
    customer = await customers.create_customer(
        db, client_id, CustomerCreate(phone_number="+14155550100")
    )
    times = []
    for n in range(writes):
        started = time.perf_counter()
        await customers.update_customer(db, client_id, customer.id, CustomerUpdate(name=f"n{n}"))
        times.append((time.perf_counter() - started) * 1000)
    return percentiles(times)


async def delivery(db: Database, calls: int, per_call: int, url: str, receiver: object) -> None:
    client_id = (await clients.create_client(db, "bench delivery")).client_id
    await webhooks.create_endpoint(db, client_id, WebhookEndpointCreate(url=url, event_types=["*"]))
    committed: dict[str, float] = {}
    for n in range(per_call):
        for call in range(calls):
            async with db.write() as session:
                event_id = await events.emit(
                    session,
                    client_id,
                    "call.started",
                    {"n": n, "call": call},
                    ordering_key=f"call:{call}",
                )
            committed[str(event_id)] = time.time()
    total = calls * per_call
    worker = WebhookWorker(db, WebhookParams(poll_interval_s=0.05), client_id=client_id)
    started = time.perf_counter()
    worker.start()
    try:
        while worker.sent["delivered"] < total:  # noqa: ASYNC110 - counted by the worker's loops
            await asyncio.sleep(0.01)
    finally:
        elapsed = time.perf_counter() - started
        await worker.close()
    received = receiver.received  # type: ignore[attr-defined]
    lags = [(item.at - committed[item.json()["id"]]) * 1000 for item in received]
    first = min(item.at for item in received)
    print(f"  {total} deliveries ({calls} calls x {per_call}), 4 claim loops, one node")
    print(f"  throughput: {total / elapsed:.0f} deliveries/s")
    p50, p95 = percentiles([(item.at - first) * 1000 for item in received])
    print(f"  arrival after the first, p50/p95: {p50:.0f} / {p95:.0f} ms")
    p50, p95 = percentiles(lags)
    print(f"  commit -> arrival (events queued before the worker started) p50/p95: "
          f"{p50:.0f} / {p95:.0f} ms")  # fmt: skip


async def import_cost(
    db: Database, endpoints: int, rows: int, imports: int, url: str
) -> tuple[float, float]:
    client_id = (await clients.create_client(db, f"bench import {endpoints}")).client_id
    for _ in range(endpoints):
        await webhooks.create_endpoint(
            db, client_id, WebhookEndpointCreate(url=url, event_types=["*"])
        )
    times = []
    for n in range(imports):
        lines = ["phone_number,name"]
        # A valid US exchange per file (2xx-9xx), so rows is at most 10,000.
        exchange = 200 + 2 * n + endpoints
        lines += [f"+1415{exchange}{row:04d},Customer {row}" for row in range(rows)]
        started = time.perf_counter()
        result = await customers.import_customers(db, client_id, "\n".join(lines))
        times.append((time.perf_counter() - started) * 1000)
        assert result.created == rows, result.errors[:3]
    return percentiles(times)


async def sweep_cost(db: Database) -> None:
    long_ago = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    async with db.write() as session:
        await session.execute(update(WebhookEvent).values(created_at=long_ago))
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.status == DeliveryStatus.PENDING)
            .values(status=DeliveryStatus.DELIVERED)
        )
        await session.execute(update(WebhookDelivery).values(delivered_at=long_ago))
    started = time.perf_counter()
    purged = await webhooks.purge_delivered(db, long_ago + dt.timedelta(days=1))
    elapsed = time.perf_counter() - started
    print(f"  {purged.deliveries} deliveries and {purged.events} events deleted, 500 per "
          f"transaction: {elapsed:.2f} s ({elapsed * 1e6 / max(1, purged.deliveries):.0f} us "
          "per delivery)")  # fmt: skip


async def run(url: str, writes: int, rows: int = 1000, imports: int = 5) -> None:
    from helpers.webhook_receiver import webhook_receiver

    db = Database(url)
    await db.migrate()
    print(f"{db.dialect}; Python {platform.python_version()}; {dt.date.today()}")
    with webhook_receiver() as receiver:
        print(f"1. update_customer, {writes} writes each (ms):")
        print(f"  {'endpoints':>10} {'p50':>8} {'p95':>8}")
        await write_cost(db, 0, writes, receiver.url())  # warm-up: pools, statement caches
        for endpoints in (0, 1, 3):
            p50, p95 = await write_cost(db, endpoints, writes, receiver.url())
            print(f"  {endpoints:>10} {p50:8.2f} {p95:8.2f}")
        print("2. delivery to a local receiver:")
        await delivery(db, 50, 10, receiver.url(), receiver)
        print(f"3. import_customers of {rows} new customers, {imports} files each (ms):")
        print(f"  {'endpoints':>10} {'p50':>8} {'p95':>8}")
        for endpoints in (0, 1):
            p50, p95 = await import_cost(db, endpoints, rows, imports, receiver.url())
            print(f"  {endpoints:>10} {p50:8.0f} {p95:8.0f}")
        print("4. retention sweep:")
        await sweep_cost(db)
    await db.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", action="store_true", help="start a throw-away PostgreSQL")
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--rows", type=int, default=1000, help="customers per imported file")
    parser.add_argument("--imports", type=int, default=5, help="files per configuration")
    args = parser.parse_args()
    # The test suite's real receiver and PostgreSQL helpers.
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    if args.postgres:
        from helpers import postgres

        url = postgres.create_database(postgres.start(), f"bench_{uuid.uuid4().hex[:8]}")
    else:
        url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='callagent-bench-')) / 'b.db'}"
    logging.getLogger("httpx").setLevel(logging.WARNING)
    asyncio.run(run(url, args.writes, args.rows, args.imports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
