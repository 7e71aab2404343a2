"""Alembic migrations from empty and over data, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select

from callagent.store.db import Database
from callagent.store.models import (
    Base,
    CallAnalysisJob,
    CallSession,
    ContactNote,
    CustomerProfile,
    PhoneNumber,
)
from callagent.store.services import analytics

from helpers.store_fixtures import fresh_url


def _column_type(value: Any) -> Any:
    """A column type for a plain value (rows are written with the schema of 0001, not today's
    models)."""
    kinds: list[tuple[type, Any]] = [
        (uuid.UUID, sa.Uuid()),
        (bool, sa.Boolean()),
        (int, sa.Integer()),
        (float, sa.Float()),
        (str, sa.String()),
        (dt.datetime, sa.DateTime(timezone=True)),
        (dt.time, sa.Time()),
        (dict, sa.JSON()),
        (list, sa.JSON()),
    ]
    return next(kind for python_type, kind in kinds if isinstance(value, python_type))


async def test_migrations_from_empty_match_the_models(backend: str) -> None:
    database = Database(fresh_url(backend))
    try:
        await database.migrate()
        await database.migrate()  # a second run is a no-op

        def check(connection: Any) -> tuple[list[Any], set[str], str | None]:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
            return diff, set(inspect(connection).get_table_names()), context.get_current_revision()

        async with database.write_engine.connect() as connection:
            diff, tables, revision = await connection.run_sync(check)
        assert diff == [], "models and migrations differ: add a migration"
        assert set(Base.metadata.tables) <= tables
        assert revision == "0013"
    finally:
        await database.dispose()


def _rows_0001(ids: dict[str, uuid.UUID], now: dt.datetime) -> dict[str, dict[str, Any]]:
    """A client with an agent, a customer and a completed call, as the schema of 0001 stores
    them."""
    common = {"created_at": now, "updated_at": now}
    return {
        "clients": {"id": ids["client"], "name": "old", "created_at": now},
        "ai_agents": {
            **common,
            **dict.fromkeys(("calls_handled", "successful_conversions", "training_level"), 0),
            **{k: {} for k in ("business_info", "sales_goals", "training_coverage")},
            **{k: {} for k in ("conversation_memory", "customer_preferences")},
            "performance_metrics": {},
            "id": ids["agent"],
            "client_id": ids["client"],
            "agent_name": "A",
            "personality_type": "friendly",
            "voice_model": "v",
            "working_hours_start": dt.time(9),
            "working_hours_end": dt.time(17),
            "timezone": "UTC",
            "status": "training",
        },
        "customer_profiles": {
            **common,
            **dict.fromkeys(("name", "email", "company", "call_preference_time"), ""),
            **dict.fromkeys(("total_calls", "answered_calls"), 0),
            "id": ids["customer"],
            "client_id": ids["client"],
            "phone_number": "+14155550123",
            "interest_level": "cold",
            "total_talk_time_s": 0.0,
            "conversation_notes": "",
            "preferences": {},
            "objections": [],
            "do_not_call": False,
            "converted": False,
        },
        "call_sessions": {
            **dict.fromkeys(("purpose", "failure_reason", "customer_response"), ""),
            **dict.fromkeys(("conversation_notes", "recording_ref"), ""),
            **dict.fromkeys(("telephony_channel", "telephony_call_id"), ""),
            "id": ids["call"],
            "client_id": ids["client"],
            "agent_id": ids["agent"],
            "customer_id": ids["customer"],
            "call_type": "outbound",
            "context": {},
            "phone_number": "+14155550123",
            "status": "completed",
            "transcript": [],
            "latency": {},
            "created_at": now,
        },
    }


async def _insert(database: Database, rows: dict[str, dict[str, Any]]) -> None:
    """Write ``rows`` (table → one row) with plain SQL, whatever the models say today."""
    async with database.write_engine.begin() as connection:
        for name, values in rows.items():
            columns = [sa.column(key, _column_type(value)) for key, value in values.items()]
            await connection.execute(sa.insert(sa.table(name, *columns)).values(**values))


async def test_0002_upgrades_a_filled_0001_database(backend: str) -> None:
    """Migration 0002 (telephony) adds columns to existing call sessions: they get empty values."""
    database = Database(fresh_url(backend))
    try:
        await database.migrate("0001")
        ids = {name: uuid.uuid4() for name in ("client", "agent", "customer", "call")}
        now = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
        await _insert(database, _rows_0001(ids, now))
        await database.migrate()
        async with database.read() as session:
            call = await session.get(CallSession, ids["call"])
            assert call is not None
            assert (call.did, call.amd_status, call.dtmf, call.hangup_cause) == ("", "", "", None)
            assert await session.scalar(select(func.count()).select_from(PhoneNumber)) == 0
    finally:
        await database.dispose()


async def test_0003_gives_existing_calls_their_last_sign_of_life(backend: str) -> None:
    """Migration 0003 (crash recovery): a call gets its latest known time as its last activity,
    so a call a crash left live before the upgrade is settled by the first sweep."""
    database = Database(fresh_url(backend))
    try:
        await database.migrate("0002")
        ids = {name: uuid.uuid4() for name in ("client", "agent", "customer", "call")}
        created = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
        started, ended = created + dt.timedelta(seconds=5), created + dt.timedelta(seconds=65)
        rows = _rows_0001(ids, created)
        rows["call_sessions"] |= {"started_at": started, "ended_at": ended}
        await _insert(database, rows)
        live_id = uuid.uuid4()
        live = rows["call_sessions"] | {"id": live_id, "status": "in_progress"}
        live |= {"started_at": started, "ended_at": None}
        await _insert(database, {"call_sessions": {k: v for k, v in live.items() if v is not None}})
        await database.migrate()
        async with database.read() as session:
            finished = await session.get(CallSession, ids["call"])
            stuck = await session.get(CallSession, live_id)
        assert finished is not None
        assert stuck is not None
        assert finished.last_activity_at == ended
        assert stuck.last_activity_at == started
    finally:
        await database.dispose()


async def test_0004_leaves_existing_calls_unanalysed_and_customers_with_no_memory(
    backend: str,
) -> None:
    """Migration 0004 (post-call analysis, docs/analysis.md): existing calls have no analysis
    and no job (nothing is analysed behind the operator's back), existing customers an empty
    memory."""
    database = Database(fresh_url(backend))
    try:
        await database.migrate("0003")
        ids = {name: uuid.uuid4() for name in ("client", "agent", "customer", "call")}
        now = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
        rows = _rows_0001(ids, now)
        rows["call_sessions"] |= {"last_activity_at": now}
        await _insert(database, rows)
        await database.migrate()
        async with database.read() as session:
            call = await session.get(CallSession, ids["call"])
            customer = await session.get(CustomerProfile, ids["customer"])
            jobs = await session.scalar(select(func.count()).select_from(CallAnalysisJob))
        assert call is not None
        assert customer is not None
        assert (call.analysis, call.analyzed_at) == (None, None)
        assert customer.conversation_memory == []
        assert jobs == 0
    finally:
        await database.dispose()


async def test_0005_gives_existing_calls_no_actions(backend: str) -> None:
    """Migration 0005 (in-call actions, docs/dialog.md): existing calls took none."""
    database = Database(fresh_url(backend))
    try:
        await database.migrate("0004")
        ids = {name: uuid.uuid4() for name in ("client", "agent", "customer", "call")}
        now = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
        rows = _rows_0001(ids, now)
        rows["call_sessions"] |= {"last_activity_at": now}
        rows["customer_profiles"] |= {"conversation_memory": []}
        await _insert(database, rows)
        await database.migrate()
        async with database.read() as session:
            call = await session.get(CallSession, ids["call"])
        assert call is not None
        assert call.actions_taken == []
    finally:
        await database.dispose()


async def test_upgrades_keep_every_link_to_a_call(backend: str) -> None:
    """A migration that rebuilds ``call_sessions`` on SQLite (batch "move and copy") drops the
    old table with foreign keys on, and ``ON DELETE SET NULL`` then empties every note's link
    to its call: upgrades must not rebuild it."""
    database = Database(fresh_url(backend))
    try:
        await database.migrate("0002")
        now = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
        ids = {name: uuid.uuid4() for name in ("client", "agent", "customer", "call")}
        note_id = uuid.uuid4()
        await _insert(database, _rows_0001(ids, now))
        note = {
            "id": note_id,
            "client_id": ids["client"],
            "customer_id": ids["customer"],
            "call_id": ids["call"],
            "kind": "call_summary",
            "body": "called about the roof",
            "created_at": now,
        }
        await _insert(database, {"contact_notes": note})
        await database.migrate()
        async with database.read() as session:
            stored = await session.get(ContactNote, note_id)
        assert stored is not None
        assert stored.call_id == ids["call"]
    finally:
        await database.dispose()


async def test_0013_the_analytics_window_is_read_from_an_index_in_order(db: Database) -> None:
    """Migration 0013: the analytics page's query (a client's calls since a day, newest first)
    is served by ``ix_call_sessions_client_created`` - a range read in the index's order, no
    sort of all the client's calls. The plan is asked for the very SQL the service sends;
    PostgreSQL is told to avoid scans and sorts it would pick only on a tiny table."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM call_sessions" in statement:
            seen.append((statement, parameters))

    sa.event.listen(db.read_engine.sync_engine, "before_cursor_execute", record)
    now = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
    await analytics.analytics(db, uuid.uuid4(), now, days=30, timezone="Europe/Berlin")
    [(statement, parameters)] = seen
    async with db.read_engine.connect() as connection:
        if db.dialect == "postgresql":
            for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
                await connection.exec_driver_sql(f"SET LOCAL {setting} = off")
            explain = "EXPLAIN (COSTS OFF) "
        else:
            explain = "EXPLAIN QUERY PLAN "
        rows = (await connection.exec_driver_sql(explain + statement, parameters)).all()
    plan = "\n".join(str(row[-1]) for row in rows)
    assert "ix_call_sessions_client_created" in plan, plan
    assert "Sort" not in plan, plan
    assert "TEMP B-TREE" not in plan, plan
