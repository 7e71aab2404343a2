"""Scheduler tests run on SQLite and on a real PostgreSQL server, each on a database of its own
(the claim spans every client, so another test's due rows must not be there)."""

from __future__ import annotations

from helpers import analysis_data, store_fixtures

backend = store_fixtures.backend
own_db = analysis_data.own_db
