"""Dashboard page tests: the API's app and database fixtures (tests/api/conftest.py), plus
people signed in to one client's pages (helpers/dashboard_fixtures.py)."""

from __future__ import annotations

from helpers import dashboard_fixtures

new_person = dashboard_fixtures.new_person
person = dashboard_fixtures.person
