"""Keyset pagination (``store/pagination.py``) on both backends: every row once, in order, ties
on the sort key broken by the id, and bad cursors and limits named in the 400."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from callagent.store.db import Database
from callagent.store.errors import ValidationFailed
from callagent.store.pagination import encode_cursor
from callagent.store.schemas import CallbackCreate, CustomerCreate
from callagent.store.services import callbacks, clients, customers

NOW = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)


async def _walk(fetch: Callable[[str | None], Awaitable[Any]]) -> list[Any]:
    """Every item of a list, page by page; each page but the last is full."""
    items: list[Any] = []
    cursor = None
    while True:
        page = await fetch(cursor)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        assert len(page.items) == 2
        cursor = page.next_cursor


async def test_pages_cover_every_row_once_in_order(db: Database) -> None:
    client_id = (await clients.create_client(db, "pagination")).client_id
    created = [
        await customers.create_customer(
            db, client_id, CustomerCreate(phone_number=f"+1415555{i:04d}")
        )
        for i in range(5)
    ]
    listed = await _walk(
        lambda cursor: customers.list_customers(db, client_id, cursor=cursor, limit=2)
    )
    assert [c.id for c in listed] == [c.id for c in reversed(created)]  # newest first

    # Three callbacks share one time: the id orders them, and no page boundary loses one.
    soon, later = NOW + dt.timedelta(hours=1), NOW + dt.timedelta(hours=2)
    made = [
        await callbacks.create_callback(
            db, client_id, CallbackCreate(customer_id=created[0].id, scheduled_at=at), NOW
        )
        for at in (later, soon, soon, soon, later)
    ]
    listed = await _walk(
        lambda cursor: callbacks.list_callbacks(db, client_id, NOW, cursor=cursor, limit=2)
    )
    expected = sorted(made, key=lambda cb: (cb.scheduled_at, cb.id))
    assert [cb.id for cb in listed] == [cb.id for cb in expected]


@pytest.mark.parametrize(
    ("cursor", "limit", "field"),
    [
        ("%%%", 10, "cursor"),
        (encode_cursor("not-an-id"), 10, "cursor"),
        (encode_cursor(uuid.uuid4(), uuid.uuid4()), 10, "cursor"),  # one part too many
        (None, 0, "limit"),
        (None, 201, "limit"),
    ],
)
async def test_a_bad_cursor_or_limit_is_a_400_naming_it(
    db: Database, cursor: str | None, limit: int, field: str
) -> None:
    client_id = (await clients.create_client(db, "pagination")).client_id
    with pytest.raises(ValidationFailed) as raised:
        await customers.list_customers(db, client_id, cursor=cursor, limit=limit)
    assert raised.value.field == field


@pytest.mark.parametrize(
    "cursor",
    [
        encode_cursor("yesterday", uuid.uuid4()),
        encode_cursor(NOW.isoformat(), "not-an-id"),
        encode_cursor(uuid.uuid4()),  # one part too few
    ],
)
async def test_a_bad_callback_cursor_is_a_400(db: Database, cursor: str) -> None:
    client_id = (await clients.create_client(db, "pagination")).client_id
    with pytest.raises(ValidationFailed) as raised:
        await callbacks.list_callbacks(db, client_id, NOW, cursor=cursor, limit=10)
    assert raised.value.field == "cursor"
