"""Keyset pagination (issue #3 "Scale": lists must not slow down as tables grow).

A page ends with an opaque ``next_cursor``: the sort key of its last row. The next page asks
for rows strictly after it, which an index on ``(client_id, [filter,] sort key)`` answers by a
range scan, however deep the page. ``LIMIT/OFFSET`` would scan every skipped row.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, TypeVar

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
