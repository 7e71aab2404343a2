"""Store tests run on SQLite and on a real PostgreSQL server (docs/api.md, "Tests")."""

from __future__ import annotations

from helpers import analysis_data, store_fixtures

# The shared database fixtures (one migrated database per backend).
backend = store_fixtures.backend
database_url = store_fixtures.database_url
db = store_fixtures.db
# A database of the test's own, for the analysis job queue (it spans all clients).
own_db = analysis_data.own_db
