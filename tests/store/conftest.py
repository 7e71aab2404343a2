"""Store tests run on SQLite and on a real PostgreSQL server (docs/api.md, "Tests")."""

from __future__ import annotations

from helpers import store_fixtures

# The shared database fixtures (one migrated database per backend).
backend = store_fixtures.backend
database_url = store_fixtures.database_url
db = store_fixtures.db
