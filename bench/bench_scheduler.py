"""How late the scheduler picks up due rows among 100,000 scheduled ones (docs/scheduler.md).

A fresh database gets ``--rows`` scheduled rows: ``--due`` of them fall due at random moments
in the next ``--window-s`` seconds (each on its own customer), the rest later (hours to weeks
ahead, as a real backlog of callbacks). The real :class:`~callagent.scheduler.service.Scheduler`
then runs on the real clock with a placer that notes when each call was handed to it; the
lateness of a row is that moment minus its due time. Prints p50 / p95 / max lateness and the
claim's own time. The calling window and the caps are off: this measures the queue, not the
rules (their cost is in the dial: one transaction per row).

Run: ``.venv/bin/python bench/bench_scheduler.py`` (SQLite in a temp folder) or with
``--url postgresql+asyncpg://…`` (an empty database).
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from sqlalchemy import insert  # noqa: E402

from callagent.scheduler.rules import DialPolicy  # noqa: E402
from callagent.scheduler.service import Scheduler, SchedulerParams  # noqa: E402
from callagent.store.db import Database  # noqa: E402
from callagent.store.ids import new_id  # noqa: E402
from callagent.store.models import CustomerProfile, ScheduledCallback, utcnow  # noqa: E402
from callagent.telephony.outbound import OutboundCallRequest, PlacementResult  # noqa: E402

from helpers.store_data import ready_client  # noqa: E402


class TimingPlacer:
    """Notes when each call is handed over."""

    def __init__(self) -> None:
        self.placed: dict[uuid.UUID, dt.datetime] = {}

    async def place_call(self, request: OutboundCallRequest) -> PlacementResult:
        assert request.scheduled_callback_id is not None
        self.placed[request.scheduled_callback_id] = utcnow()
        return PlacementResult(placed=True, telephony_call_id=str(request.call_session_id))


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def _fill(db: Database, rows: int, due: int, window_s: float) -> dict[uuid.UUID, dt.datetime]:
    client_id = await ready_client(db, name="bench")
    now = utcnow()
    customers = max(due, 1000)
    rng = random.Random(1)
    people = [new_id() for _ in range(customers)]
    common = {"created_at": now, "updated_at": now}
    async with db.write() as session:
        for start in range(0, customers, 1000):
            await session.execute(
                insert(CustomerProfile.__table__),
                [
                    {
                        **common,
                        "id": person,
                        "client_id": client_id,
                        "phone_number": f"+4930{start + index:08d}",
                        "name": "",
                        "email": "",
                        "company": "",
                        "interest_level": "cold",
                        "call_preference_time": "",
                        "total_calls": 0,
                        "answered_calls": 0,
                        "total_talk_time_s": 0.0,
                        "conversation_notes": "",
                        "preferences": {},
                        "objections": [],
                        "conversation_memory": [],
                        "do_not_call": False,
                        "converted": False,
                    }
                    for index, person in enumerate(people[start : start + 1000])
                ],
            )

    def row(customer: uuid.UUID, at: dt.datetime) -> dict[str, object]:
        return {
            **common,
            "id": new_id(),
            "client_id": client_id,
            "customer_id": customer,
            "scheduled_at": at,
            "reason": "",
            "status": "scheduled",
            "priority": rng.randint(1, 5),
            "expected_outcome": "",
            "attempts": 0,
            "max_attempts": 3,
            "kind": "callback",
            "locked_by": "",
            "closed_reason": "",
        }

    async def write(batch: list[dict[str, object]]) -> None:
        async with db.write() as session:
            await session.execute(insert(ScheduledCallback.__table__), batch)

    # The backlog: hours to weeks ahead, on the customers the due rows do not use.
    backlog = rows - due
    for start in range(0, backlog, 5000):
        await write(
            [
                row(
                    people[rng.randrange(due, customers)],
                    now + dt.timedelta(hours=1 + rng.uniform(0, 24 * 21)),
                )
                for _ in range(min(5000, backlog - start))
            ]
        )
    # Then the rows that fall due, counted from now: the scheduler starts right after.
    now = utcnow()
    due_rows = [
        row(people[index], now + dt.timedelta(seconds=2 + rng.uniform(0, window_s)))
        for index in range(due)
    ]
    await write(due_rows)
    return {r["id"]: r["scheduled_at"] for r in due_rows}  # type: ignore[misc]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="an empty database (default: SQLite in a temp folder)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--due", type=int, default=300)
    parser.add_argument("--window-s", type=float, default=60.0)
    parser.add_argument("--poll", type=float, default=0.25, help="scheduler.poll_interval_s")
    args = parser.parse_args()
    url = args.url or f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='bench-sched-')}/b.db"
    db = Database(url)
    await db.migrate()
    started = time.perf_counter()
    wanted = await _fill(db, args.rows, args.due, args.window_s)
    print(f"{db.dialect}: {args.rows} rows written in {time.perf_counter() - started:.1f} s")
    placer = TimingPlacer()
    params = SchedulerParams(
        node="bench",
        poll_interval_s=args.poll,
        batch=50,
        policy=DialPolicy(
            check_window=False,
            max_attempts_24h=0,
            max_calls_per_agent=0,
            max_calls_per_client=0,
        ),
    )
    scheduler = Scheduler(db, placer, params)
    passes: list[float] = []
    original = scheduler.run_pass

    async def timed_pass():  # type: ignore[no-untyped-def]
        begin = time.perf_counter()
        try:
            return await original()
        finally:
            passes.append(time.perf_counter() - begin)

    scheduler.run_pass = timed_pass  # type: ignore[method-assign]
    scheduler.start()
    try:
        deadline = time.monotonic() + args.window_s + 30
        while len(placer.placed) < len(wanted) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
    finally:
        await scheduler.close()
        await db.dispose()
    late = [
        (placer.placed[i] - at).total_seconds() for i, at in wanted.items() if i in placer.placed
    ]
    early = [x for x in late if x < 0]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.processor() or '?'}; "
        f"poll {args.poll} s"
    )
    print(f"due rows dialled: {len(late)} of {len(wanted)} (early: {len(early)})")
    print(
        f"lateness p50 {statistics.median(late):.3f} s, p95 {_percentile(late, 0.95):.3f} s, "
        f"max {max(late):.3f} s"
    )
    print(
        f"pass time p50 {statistics.median(passes) * 1000:.1f} ms, "
        f"p95 {_percentile(passes, 0.95) * 1000:.1f} ms ({len(passes)} passes)"
    )


if __name__ == "__main__":
    asyncio.run(main())
