"""Fixtures and helpers of the dashboard tests (tests/api/pages): people signed in to one
client's pages. A conftest.py makes the fixtures available by naming them."""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from callagent.store.db import Database
from callagent.store.services import clients, users

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class Person:
    """A dashboard user of a fresh client, with that client's API key."""

    client_id: uuid.UUID
    email: str
    password: str
    api_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


@pytest.fixture
def new_person(db: Database) -> Callable[[str], Awaitable[Person]]:
    async def make(name: str = "Acme Solar") -> Person:
        created = await clients.create_client(db, name)
        email = f"{uuid.uuid4().hex[:8]}@{name.split()[0].lower()}.example"
        await users.create_user(db, created.client_id, email, PASSWORD)
        return Person(created.client_id, email, PASSWORD, created.api_key)

    return make


@pytest.fixture
async def person(new_person: Callable[[str], Awaitable[Person]]) -> Person:
    return await new_person("Acme Solar")


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


async def sign_in(client: AsyncTestClient[Any], who: Person) -> str:
    """Sign ``who`` in on ``client`` (its cookie jar keeps the session); the CSRF token."""
    form = await client.get("/dashboard/login")
    secret = re.search(r'name="login_secret" value="([^"]+)"', form.text)
    assert secret
    response = await client.post(
        "/dashboard/login",
        data={"email": who.email, "password": who.password, "login_secret": secret.group(1)},
        follow_redirects=True,
    )
    assert response.status_code == 200, response.text
    return csrf_of(response.text)
