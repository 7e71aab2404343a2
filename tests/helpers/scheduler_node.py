"""One scheduler node as its own process, for the kill test (tests/scheduler/test_nodes.py).

``python tests/helpers/scheduler_node.py DATABASE_URL NODE_NAME`` runs the real scheduler on the
database until killed, dialling through :class:`LedgerPlacer`: the "phone system" is a table,
``test_dials``, with one row per call id - like Asterisk, which makes at most one channel per
ChannelId (the call id), a second Originate of a call id is refused and dials nothing. Every
placed call is thus counted where a killed process cannot lose or double it.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from sqlalchemy import text

from callagent.scheduler.rules import DialPolicy
from callagent.scheduler.service import Scheduler, SchedulerParams
from callagent.store.db import Database
from callagent.telephony.outbound import OutboundCallRequest, PlacementResult

LEDGER = """CREATE TABLE IF NOT EXISTS test_dials (
    call_id uuid PRIMARY KEY,
    callback_id uuid NOT NULL,
    node text NOT NULL,
    at timestamptz NOT NULL DEFAULT now()
)"""


class LedgerPlacer:
    """Dials by writing the call id into ``test_dials`` (refused when it is there already)."""

    def __init__(self, db: Database, node: str) -> None:
        self._db = db
        self._node = node

    async def place_call(self, request: OutboundCallRequest) -> PlacementResult:
        async with self._db.write() as session:
            inserted = await session.execute(
                text(
                    "INSERT INTO test_dials (call_id, callback_id, node) VALUES (:c, :b, :n) "
                    "ON CONFLICT (call_id) DO NOTHING"
                ),
                {"c": request.call_session_id, "b": request.scheduled_callback_id, "n": self._node},
            )
        if not getattr(inserted, "rowcount", 0):
            return PlacementResult(placed=False, reason="Uniqueid already in use.")
        return PlacementResult(placed=True, telephony_call_id=str(request.call_session_id))


def params(node: str) -> SchedulerParams:
    """Fast passes and short leases; the calling window and the caps off (the rows are due
    now, and the test's calls never end)."""
    return SchedulerParams(
        node=node,
        poll_interval_s=0.05,
        lease_s=2.0,
        batch=25,
        policy=DialPolicy(
            check_window=False,
            max_attempts_24h=0,
            max_calls_per_agent=0,
            max_calls_per_client=0,
        ),
    )


async def main(url: str, node: str) -> None:
    db = Database(url)
    scheduler = Scheduler(db, LedgerPlacer(db, node), params(node))
    print(f"node {node} {uuid.uuid4()} running", flush=True)
    await scheduler.run()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
