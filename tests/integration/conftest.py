"""Fixtures of the integration tests that go through the REST API (test_tenant_isolation.py):
the real Litestar app on a real database, once per backend."""

from __future__ import annotations

from helpers import api_fixtures

# The shared fixtures (helpers/api_fixtures.py), with the database ones they rest on.
backend = api_fixtures.backend
database_url = api_fixtures.database_url
db = api_fixtures.db
clock = api_fixtures.clock
placer = api_fixtures.placer
api_state = api_fixtures.api_state
client = api_fixtures.client
new_tenant = api_fixtures.new_tenant
tenant = api_fixtures.tenant
