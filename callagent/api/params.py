"""Query parameters that several controllers share, declared once so the OpenAPI document and
the validation agree everywhere."""

from __future__ import annotations

from typing import Annotated

from litestar.params import QueryParameter

from callagent.store.pagination import MAX_LIMIT

#: The page size of every keyset-paginated list (docs/api.md "Conventions": 1..200).
Limit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT, description="page size")]
