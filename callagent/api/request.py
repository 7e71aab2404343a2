"""The request class of the API: what every JSON body goes through before a route sees it.

Litestar decodes a JSON body into Python values before msgspec converts them to the route's
schema; :class:`ApiRequest` looks at those values once, in this one place, for what no schema
can express and the database would choke on (DESIGN.md practice 2: payload sizes are bounded):

* **nesting deeper than** :data:`MAX_JSON_DEPTH`: free-form objects (``business_info``,
  ``preferences``, ``context``) are stored as JSON and read back into prompts; nothing a CRM
  sends needs more than a few levels, and a deep enough body makes the decoder itself overflow
  (a ``RecursionError`` at about 1,000 levels, which would be a 500);
* **NUL characters** (U+0000) in any string or key: PostgreSQL refuses them in text and in
  ``jsonb``, so one would turn a valid request into a 500 on that backend only.

Both are a 400 ``validation_error`` naming the field (docs/api.md "Conventions").
"""

from __future__ import annotations

from typing import Any, Final

from litestar import Request

from callagent.store.errors import NUL_REASON, ValidationFailed

MAX_JSON_DEPTH: Final = 32
"""Containers (objects and arrays) a JSON body may nest, the body itself counting as one."""


def _child(path: str, key: str | int) -> str:
    """The field name of ``key`` inside ``path``, as msgspec writes it (``a.b[0]``)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = key.replace("\x00", "\\u0000")
    return f"{path}.{key}" if path else key


def check_json(value: Any) -> None:
    """Raise :class:`ValidationFailed` naming the first field (in document order) that nests
    too deep or holds a NUL character. Iterative: the check itself cannot overflow."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                raise ValidationFailed(path or "body", NUL_REASON)
            continue
        if isinstance(item, dict):
            children: list[tuple[str | int, Any]] = list(item.items())
        elif isinstance(item, list):
            children = list(enumerate(item))
        else:
            continue
        if depth > MAX_JSON_DEPTH:
            raise ValidationFailed(
                path or "body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
            )
        for key, _ in children:
            if isinstance(key, str) and "\x00" in key:
                raise ValidationFailed(_child(path, key), f"the name {NUL_REASON}")
        stack.extend((child, _child(path, key), depth + 1) for key, child in reversed(children))


class ApiRequest(Request[Any, Any, Any]):
    """Litestar's request, with :func:`check_json` applied to the decoded JSON body."""

    async def json(self) -> Any:
        """The decoded JSON body, checked; a 400 naming the field when it fails the check."""
        try:
            value = await super().json()
        except RecursionError:
            raise ValidationFailed(
                "body", f"JSON nested deeper than {MAX_JSON_DEPTH} levels"
            ) from None
        check_json(value)
        return value
