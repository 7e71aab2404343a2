"""The dashboard's figures (``store/services/dashboard.py``) count the client's business: a call
from the dashboard's browser phone (docs/dashboard.md "Talk to your agent") is the client's own
person trying the agent, and counts neither as a handled call nor its "Browser test" customer
as a customer - whatever the post-call analysis makes of it."""

from __future__ import annotations

import datetime as dt
import uuid

from callagent.store.db import Database
from callagent.store.services import analysis_jobs, call_analysis, dashboard
from callagent.store.services.analysis_jobs import START_DELAY

from helpers.analysis_data import START, TALK, analysis, finished_browser_call, finished_call
from helpers.store_data import ready_client

DONE = START + TALK + START_DELAY
LEASE = dt.timedelta(minutes=5)


async def analyse_next(db: Database) -> None:
    lease = await analysis_jobs.claim(db, "test", DONE, LEASE)
    assert lease is not None
    await call_analysis.apply_analysis(
        db, lease, analysis(outcome="converted", bought=True, callback_requested=False), DONE
    )


async def figures(db: Database, client_id: uuid.UUID) -> dict[str, int]:
    board = await dashboard.dashboard(db, client_id, DONE)
    return {
        "calls handled": board.performance.calls_handled,
        "conversions": board.performance.successful_conversions,
        "customers": board.customer_statistics.total,
        "converted customers": board.customer_statistics.converted,
        "do-not-call customers": board.customer_statistics.do_not_call,
    }


async def test_a_browser_phone_call_counts_in_no_figure(own_db: Database) -> None:
    db = own_db
    client_id = await ready_client(db)
    await finished_browser_call(db, client_id)
    await analyse_next(db)
    assert set((await figures(db, client_id)).values()) == {0}

    # The same call from a real customer counts.
    await finished_call(db, client_id)
    await analyse_next(db)
    assert await figures(db, client_id) == {
        "calls handled": 1,
        "conversions": 1,
        "customers": 1,
        "converted customers": 1,
        "do-not-call customers": 0,
    }
