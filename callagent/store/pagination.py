"""Keyset pagination: lists must not slow down as tables grow (docs/api.md "Conventions":
"Page 1000 costs what page 1 costs").

A page ends with an opaque ``next_cursor``: the sort key of its last row. The next page asks
for rows strictly after it, which an index on ``(client_id, [filter,] sort key)`` answers by a
range scan, however deep the page. ``LIMIT/OFFSET`` would scan every skipped row. Every list
goes through :func:`paginate`.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession

from callagent.store.errors import ValidationFailed

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


def encode_cursor(*parts: Any) -> str:
    """An opaque cursor for a row whose sort key is ``parts`` (strings)."""
    raw = json.dumps([str(part) for part in parts], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[str]:
    """The parts of a cursor made by :func:`encode_cursor`; a 400 on ``cursor`` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed("cursor", "malformed cursor") from None
    if not isinstance(parts, list) or len(parts) != arity:
        raise ValidationFailed("cursor", "malformed cursor")
    return [str(part) for part in parts]


def check_limit(limit: int) -> int:
    """``limit`` if it is 1..MAX_LIMIT."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed("limit", f"must be between 1 and {MAX_LIMIT}")
    return limit


def split_page(rows: Sequence[T], limit: int) -> tuple[Sequence[T], bool]:
    """Rows fetched with ``limit + 1``: the page, and whether more follow."""
    return rows[:limit], len(rows) > limit


def cursor_uuid(text: str) -> uuid.UUID:
    """A cursor part that is a row id."""
    try:
        return uuid.UUID(text)
    except ValueError:
        raise ValidationFailed("cursor", "not a valid id") from None


def cursor_datetime(text: str) -> dt.datetime:
    """A cursor part that is a time (ISO 8601)."""
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValidationFailed("cursor", "malformed cursor") from None


@dataclass(frozen=True)
class SortKey:
    """One column of a list's sort key: how its value goes into a cursor and comes back."""

    column: Any
    """The mapped attribute (``CallSession.id``); its value is read from the page's last row."""
    parse: Callable[[str], Any] = cursor_uuid
    format: Callable[[Any], str] = str


@dataclass(frozen=True)
class Page:
    """The rows of one page (entities, or tuples when the statement selects several) and the
    cursor of the next page (None on the last)."""

    rows: list[Any]
    next_cursor: str | None


def _after(keys: Sequence[SortKey], values: Sequence[Any], descending: bool) -> Any:
    """Rows strictly after ``values`` in the order of ``keys``, spelt out column by column
    (``a > x OR (a = x AND b > y)``) so the sort key's index answers it on every backend."""
    clauses = []
    for i, (key, value) in enumerate(zip(keys, values, strict=True)):
        beyond = key.column < value if descending else key.column > value
        equal = [earlier.column == v for earlier, v in zip(keys[:i], values[:i], strict=True)]
        clauses.append(and_(*equal, beyond))
    return or_(*clauses)


async def paginate(
    session: AsyncSession,
    statement: Select[Any],
    keys: Sequence[SortKey],
    *,
    cursor: str | None,
    limit: int,
    descending: bool = False,
) -> Page:
    """One page of ``statement`` (already filtered and scoped to the client), ordered by
    ``keys``, starting after ``cursor``. ``limit`` and ``cursor`` are checked (400s naming
    them) before the query runs. The sort key is read from the first entity the statement
    selects."""
    check_limit(limit)
    if cursor is not None:
        parts = decode_cursor(cursor, len(keys))
        values = [key.parse(part) for key, part in zip(keys, parts, strict=True)]
        statement = statement.where(_after(keys, values, descending))
    order = [key.column.desc() if descending else key.column for key in keys]
    result = await session.execute(statement.order_by(*order).limit(limit + 1))
    rows: list[Any] = list(result.all())
    page, more = split_page(rows, limit)
    next_cursor = None
    if more:
        last = page[-1][0]
        next_cursor = encode_cursor(*(key.format(getattr(last, key.column.key)) for key in keys))
    if len(statement.column_descriptions) == 1:
        return Page(rows=[row[0] for row in page], next_cursor=next_cursor)
    return Page(rows=[tuple(row) for row in page], next_cursor=next_cursor)
