"""Two scheduler processes on one real PostgreSQL share 2,000 due rows while being killed at
random (SIGKILL, restarted as new nodes): every row is dialled exactly once (docs/scheduler.md).

The dial is a row in ``test_dials`` keyed by call id (tests/helpers/scheduler_node.py), so a
process killed at any instant cannot lose or double the count.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import sys
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text

from callagent.store.db import Database
from callagent.store.models import ScheduledCallback, utcnow
from callagent.store.services.customers import new_customer
from callagent.store.states import CallbackStatus

from helpers import postgres
from helpers.scheduler_node import LEDGER
from helpers.store_data import ready_client

pytestmark = pytest.mark.timeout(600)

ROWS = 2000
TESTS = Path(__file__).resolve().parents[1]
NODE = TESTS / "helpers" / "scheduler_node.py"


async def _spawn(url: str, name: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    return await asyncio.create_subprocess_exec(
        sys.executable,
        str(NODE),
        url,
        name,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _scalar(db: Database, sql: str) -> int:
    async with db.read() as session:
        return int((await session.execute(text(sql))).scalar_one())


async def test_two_nodes_killed_at_random_dial_every_row_exactly_once() -> None:
    url = postgres.create_database(postgres.start(), f"nodes_{uuid.uuid4().hex[:10]}")
    db = Database(url)
    procs: dict[str, asyncio.subprocess.Process] = {}
    try:
        await db.migrate()
        client_id = await ready_client(db)
        due = utcnow() - dt.timedelta(minutes=1)
        async with db.write() as session:
            await session.execute(text(LEDGER))
            people = [
                new_customer(client_id, f"+4930{index:08d}", name=f"c{index}")
                for index in range(ROWS)
            ]
            session.add_all(people)
            await session.flush()
            session.add_all(
                ScheduledCallback(
                    client_id=client_id,
                    customer_id=person.id,
                    scheduled_at=due,
                    reason="kill test",
                    status=CallbackStatus.SCHEDULED,
                    priority=1 + index % 5,
                    attempts=0,
                    max_attempts=3,
                )
                for index, person in enumerate(people)
            )
        rng = random.Random()
        seed = rng.randrange(1 << 30)
        rng.seed(seed)
        names = ["a", "b"]
        for name in names:
            procs[name] = await _spawn(url, f"{name}-0")
        kills = 0
        async with asyncio.timeout(480):
            while await _scalar(db, "SELECT count(DISTINCT callback_id) FROM test_dials") < ROWS:
                # A new process needs about a second to start dialling: kill it while it works.
                await asyncio.sleep(rng.uniform(1.0, 4.0))
                if kills >= 10:
                    continue  # enough crashes: let the survivors finish
                slot = rng.choice(names)
                procs[slot].kill()
                await procs[slot].wait()
                kills += 1
                procs[slot] = await _spawn(url, f"{slot}-{kills}")
        per_row = await _scalar(
            db,
            "SELECT count(*) FROM (SELECT callback_id FROM test_dials GROUP BY callback_id "
            "HAVING count(*) > 1) doubled",
        )
        dialled = await _scalar(db, "SELECT count(*) FROM test_dials")
        calls_per_row = await _scalar(
            db,
            "SELECT count(*) FROM (SELECT callback_id FROM call_sessions "
            "WHERE callback_id IS NOT NULL GROUP BY callback_id HAVING count(*) > 1) doubled",
        )
        nodes = await _scalar(db, "SELECT count(DISTINCT node) FROM test_dials")
        print(f"seed {seed}: {kills} kills, {nodes} nodes dialled, {dialled} dials")
        assert kills >= 3, "the run finished before the crashes it is about"
        assert nodes >= 3, "the killed nodes never got to dial"
        assert dialled == ROWS, f"seed {seed}"
        assert per_row == 0, f"seed {seed}: rows dialled twice"
        assert calls_per_row == 0, f"seed {seed}: rows with a second call written"
    finally:
        for proc in procs.values():
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        await db.dispose()
