"""Dashboard users: argon2 hashes, one login message for every failure, sessions that end at
logout, on disabling and at expiry; and the customer search the pages use."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from sqlalchemy import select

from callagent.store.db import Database
from callagent.store.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from callagent.store.schemas import CustomerCreate
from callagent.store.services import clients, customer_search, customers, users
from callagent.store.user_models import DashboardUser

NOW = dt.datetime(2026, 3, 4, 10, 0, tzinfo=dt.UTC)
PASSWORD = "correct horse battery"


async def _client(db: Database) -> uuid.UUID:
    return (await clients.create_client(db, "Acme")).client_id


def _email() -> str:
    return f"{uuid.uuid4().hex[:8]}@acme.example"


async def test_only_an_argon2_hash_is_stored(db: Database) -> None:
    email = _email()
    user = await users.create_user(db, await _client(db), email.upper(), PASSWORD)
    assert user.email == email  # stored lower-cased: the login name is any case
    async with db.read() as session:
        stored = await session.scalar(
            select(DashboardUser.password_hash).where(DashboardUser.id == user.id)
        )
    assert stored is not None
    assert stored.startswith("$argon2id$")
    assert PASSWORD not in stored


async def test_bad_input_names_the_field_and_writes_nothing(db: Database) -> None:
    client_id = await _client(db)
    with pytest.raises(ValidationFailed, match="password"):
        await users.create_user(db, client_id, _email(), "short")
    with pytest.raises(ValidationFailed, match="email"):
        await users.create_user(db, client_id, "not an address", PASSWORD)
    with pytest.raises(NotFound):
        await users.create_user(db, uuid.uuid4(), _email(), PASSWORD)
    email = _email()
    await users.create_user(db, client_id, email, PASSWORD)
    with pytest.raises(Conflict):
        await users.create_user(db, await _client(db), email, PASSWORD)
    assert [u.email for u in await users.list_users(db, client_id)] == [email]


async def test_sign_in_opens_a_session_of_the_users_client(db: Database) -> None:
    client_id = await _client(db)
    email = _email()
    await users.create_user(db, client_id, email, PASSWORD)
    opened = await users.sign_in(db, f"  {email.upper()} ", PASSWORD, NOW)
    who = await users.session_user(db, opened.token, NOW)
    assert who.client_id == client_id
    assert who.email == email
    assert who.csrf_token == opened.signed_in.csrf_token
    for wrong_email, wrong_password in [(email, "wrong password"), (_email(), PASSWORD)]:
        with pytest.raises(Unauthorized, match="wrong e-mail or password"):
            await users.sign_in(db, wrong_email, wrong_password, NOW)


async def test_sessions_end_at_logout_expiry_and_disabling(db: Database) -> None:
    email = _email()
    await users.create_user(db, await _client(db), email, PASSWORD)
    first = await users.sign_in(db, email, PASSWORD, NOW)
    await users.sign_out(db, first.token)
    with pytest.raises(Unauthorized):
        await users.session_user(db, first.token, NOW)
    second = await users.sign_in(db, email, PASSWORD, NOW)
    with pytest.raises(Unauthorized):
        await users.session_user(db, second.token, NOW + users.SESSION_LIFETIME)
    third = await users.sign_in(db, email, PASSWORD, NOW)
    disabled = await users.disable_user(db, email, NOW)
    assert disabled.disabled_at == NOW
    with pytest.raises(Unauthorized):
        await users.session_user(db, third.token, NOW)
    with pytest.raises(Unauthorized):
        await users.sign_in(db, email, PASSWORD, NOW)


async def test_search_finds_names_and_numbers_of_one_client_only(db: Database) -> None:
    mine, theirs = await _client(db), await _client(db)
    for client_id, name in [(mine, "Dana O'Hara"), (theirs, "Dana Other")]:
        await customers.create_customer(
            db, client_id, CustomerCreate(phone_number="+14155550123", name=name)
        )
    by_name = await customer_search.search_customers(db, mine, "dana")
    assert [c.name for c in by_name] == ["Dana O'Hara"]
    by_number = await customer_search.search_customers(db, mine, "(415) 555")
    assert [c.name for c in by_number] == ["Dana O'Hara"]
    assert await customer_search.search_customers(db, mine, "%") == []
    assert await customer_search.search_customers(db, mine, "  ") == []
