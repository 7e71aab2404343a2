"""Dashboard users and their sessions (docs/dashboard.md, "Login").

A user belongs to one client and signs in with an e-mail address and a password. Passwords are
hashed with argon2id (``argon2-cffi``'s defaults, RFC 9106's second recommended setting); a
wrong e-mail costs the same hash as a wrong password, so the time of a failed login does not
tell whether the address exists. A session is a random 256-bit token in an HttpOnly cookie;
the database keeps its SHA-256 and the session's CSRF secret, and ends it at logout, when the
user is disabled, or when it expires.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select

from callagent.store.db import Database
from callagent.store.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from callagent.store.models import Client, utcnow
from callagent.store.schemas import CreatedClient
from callagent.store.services.clients import _key_row, _new_key
from callagent.store.user_models import DashboardSession, DashboardUser

SESSION_LIFETIME = dt.timedelta(hours=12)
"""How long a sign-in lasts: a working day, then the password again."""

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # argon2 hashes any length; this bounds the work one request causes

_hasher = PasswordHasher()
# Verified against when the e-mail is unknown, so both failures cost one argon2 hash.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class UserView:
    """A dashboard user as listed (never the hash)."""

    id: uuid.UUID
    client_id: uuid.UUID
    email: str
    created_at: dt.datetime
    disabled_at: dt.datetime | None
    last_login_at: dt.datetime | None


@dataclass(frozen=True)
class SignedIn:
    """Who a session is: the user, their client, and the session's CSRF secret."""

    user_id: uuid.UUID
    client_id: uuid.UUID
    email: str
    csrf_token: str


@dataclass(frozen=True)
class NewSession:
    """A session just opened: ``token`` goes into the cookie, and is stored nowhere."""

    token: str
    signed_in: SignedIn
    expires_at: dt.datetime


def _view(row: DashboardUser) -> UserView:
    return UserView(
        id=row.id,
        client_id=row.client_id,
        email=row.email,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
        last_login_at=row.last_login_at,
    )


def normalize_email(email: str) -> str:
    """The stored form of a login name: trimmed and lower-cased."""
    return email.strip().lower()


def _check_email(email: str) -> str:
    email = normalize_email(email)
    local, at, domain = email.partition("@")
    if (
        not at
        or not local
        or "." not in domain
        or len(email) > 320
        or any(c.isspace() for c in email)
    ):
        raise ValidationFailed("email", "must be an e-mail address like name@example.com")
    return email


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed("password", f"must be at most {MAX_PASSWORD_LENGTH} characters")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_user(db: Database, client_id: uuid.UUID, email: str, password: str) -> UserView:
    """A new user of ``client_id``. The e-mail must be unused on this installation."""
    email = _check_email(email)
    _check_password(password)
    password_hash = _hasher.hash(password)
    async with db.write() as session:
        if await session.get(Client, client_id) is None:
            raise NotFound(f"client {client_id} not found")
        taken = await session.scalar(select(DashboardUser.id).where(DashboardUser.email == email))
        if taken is not None:
            raise Conflict(f"a user with e-mail {email} already exists")
        row = DashboardUser(client_id=client_id, email=email, password_hash=password_hash)
        session.add(row)
        await session.flush()
        return _view(row)


@dataclass(frozen=True)
class FirstUser:
    """The installation's first client (with its first API key, shown once) and user."""

    client: CreatedClient
    user: UserView


async def has_users(db: Database) -> bool:
    """Whether this installation has any dashboard user (a disabled one counts)."""
    async with db.read() as session:
        return await session.scalar(select(DashboardUser.id).limit(1)) is not None


async def create_first_user(
    db: Database, business_name: str, email: str, password: str
) -> FirstUser:
    """The first-run set-up (docs/dashboard.md, "First start"): a client named
    ``business_name``, its first API key and its first user, in one transaction, so a refusal
    leaves nothing half-made. Conflict once any user exists: the set-up is then over."""
    name = business_name.strip()
    if not name or len(name) > 200:
        raise ValidationFailed("business_name", "must be 1 to 200 characters")
    email = _check_email(email)
    _check_password(password)
    # argon2 is CPU-bound (tens of ms): off the event loop (DESIGN.md practice 5).
    password_hash = await asyncio.to_thread(_hasher.hash, password)
    key = _new_key()
    async with db.write() as session:
        if await session.scalar(select(DashboardUser.id).limit(1)) is not None:
            raise Conflict("this installation is set up already: sign in")
        client = Client(name=name)
        session.add(client)
        await session.flush()
        session.add(_key_row(client.id, key))
        row = DashboardUser(client_id=client.id, email=email, password_hash=password_hash)
        session.add(row)
        await session.flush()
        return FirstUser(CreatedClient(client_id=client.id, api_key=key), _view(row))


async def list_users(db: Database, client_id: uuid.UUID | None = None) -> list[UserView]:
    """Every user (of ``client_id`` when given), oldest first."""
    statement = select(DashboardUser).order_by(DashboardUser.id)
    if client_id is not None:
        statement = statement.where(DashboardUser.client_id == client_id)
    async with db.read() as session:
        return [_view(row) for row in await session.scalars(statement)]


async def disable_user(db: Database, email: str, now: dt.datetime | None = None) -> UserView:
    """Disable a user: their sessions end now and they can no longer sign in."""
    email = normalize_email(email)
    async with db.write() as session:
        row = await session.scalar(select(DashboardUser).where(DashboardUser.email == email))
        if row is None:
            raise NotFound(f"no user with e-mail {email}")
        if row.disabled_at is None:
            row.disabled_at = now or utcnow()
        await session.execute(delete(DashboardSession).where(DashboardSession.user_id == row.id))
        await session.flush()
        return _view(row)


async def sign_in(db: Database, email: str, password: str, now: dt.datetime) -> NewSession:
    """Check the password and open a session; Unauthorized (one message for every reason)."""
    email = normalize_email(email)
    async with db.read() as session:
        row = (
            await session.scalar(select(DashboardUser).where(DashboardUser.email == email))
            if len(email) <= 320
            else None
        )
        user = _view(row) if row is not None else None
        stored = row.password_hash if row is not None else _DUMMY_HASH
    try:
        # argon2 verification compares in constant time; it is CPU-bound (tens of ms) and
        # runs off the event loop like any other heavy work (DESIGN.md practice 5).
        ok = await asyncio.to_thread(_hasher.verify, stored, password[:MAX_PASSWORD_LENGTH])
    except (VerificationError, InvalidHashError):
        ok = False
    if not ok or user is None or user.disabled_at is not None:
        raise Unauthorized("wrong e-mail or password")
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    expires = now + SESSION_LIFETIME
    async with db.write() as session:
        session.add(
            DashboardSession(
                user_id=user.id,
                client_id=user.client_id,
                token_hash=_token_hash(token),
                csrf_token=csrf,
                created_at=now,
                expires_at=expires,
            )
        )
        row = await session.get(DashboardUser, user.id)
        if row is not None:
            row.last_login_at = now
    return NewSession(
        token=token,
        signed_in=SignedIn(user.id, user.client_id, user.email, csrf),
        expires_at=expires,
    )


async def session_user(db: Database, token: str, now: dt.datetime) -> SignedIn:
    """Who holds ``token``; Unauthorized when it is unknown, expired, or its user disabled."""
    if not token or len(token) > 100:
        raise Unauthorized("not signed in")
    async with db.read() as session:
        row = (
            await session.execute(
                select(DashboardSession, DashboardUser.email, DashboardUser.disabled_at)
                .join(DashboardUser, DashboardUser.id == DashboardSession.user_id)
                .where(DashboardSession.token_hash == _token_hash(token))
            )
        ).one_or_none()
    if row is None:
        raise Unauthorized("not signed in")
    record, email, disabled_at = row
    if disabled_at is not None or record.expires_at <= now:
        raise Unauthorized("your session has ended; sign in again")
    return SignedIn(record.user_id, record.client_id, email, record.csrf_token)


async def sign_out(db: Database, token: str) -> None:
    """End the session of ``token`` (nothing happens for an unknown one)."""
    async with db.write() as session:
        await session.execute(
            delete(DashboardSession).where(DashboardSession.token_hash == _token_hash(token))
        )


def same_secret(given: str, expected: str) -> bool:
    """Compare a submitted CSRF token with the session's in constant time."""
    return secrets.compare_digest(given.encode(), expected.encode())
