"""Clients (tenants) and their API keys (docs/api.md, "Conventions").

A key is ``ca_`` + 43 characters of ``secrets.token_urlsafe(32)`` (256 random bits). Only its
SHA-256 is stored: with that much entropy a fast hash is as safe as a slow one, and each request
checks a key with one indexed lookup.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid

from sqlalchemy import select

from callagent.store.db import Database
from callagent.store.errors import NotFound, Unauthorized, ValidationFailed
from callagent.store.models import ApiKey, Client, utcnow
from callagent.store.schemas import ApiKeyView, CreatedClient
from callagent.store.services._common import to_view

KEY_PREFIX = "ca_"


def hash_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


def _new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _key_row(client_id: uuid.UUID, key: str) -> ApiKey:
    return ApiKey(client_id=client_id, prefix=key[:10], key_hash=hash_key(key))


async def create_client(db: Database, name: str) -> CreatedClient:
    """A new client with its first API key."""
    if not name.strip() or len(name) > 200:
        raise ValidationFailed("name", "must be 1 to 200 characters")
    key = _new_key()
    async with db.write() as session:
        client = Client(name=name.strip())
        session.add(client)
        await session.flush()
        session.add(_key_row(client.id, key))
    return CreatedClient(client_id=client.id, api_key=key)


async def create_api_key(db: Database, client_id: uuid.UUID) -> str:
    """Another key for an existing client (keys can be rotated without downtime)."""
    key = _new_key()
    async with db.write() as session:
        if await session.get(Client, client_id) is None:
            raise NotFound(f"client {client_id} not found")
        session.add(_key_row(client_id, key))
    return key


async def list_api_keys(db: Database, client_id: uuid.UUID) -> list[ApiKeyView]:
    """A client's keys, oldest first (without the keys themselves)."""
    async with db.read() as session:
        if await session.get(Client, client_id) is None:
            raise NotFound(f"client {client_id} not found")
        rows = await session.scalars(
            select(ApiKey).where(ApiKey.client_id == client_id).order_by(ApiKey.id)
        )
        return [to_view(row, ApiKeyView) for row in rows]


async def revoke_api_key(
    db: Database, key_id: uuid.UUID, now: dt.datetime | None = None
) -> ApiKeyView:
    """Revoke a key: from the next request on it is refused. Revoking twice keeps the first
    revocation time."""
    async with db.write() as session:
        row = await session.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"API key {key_id} not found")
        if row.revoked_at is None:
            row.revoked_at = now or utcnow()
        return to_view(row, ApiKeyView)


async def authenticate(db: Database, key: str) -> uuid.UUID:
    """The client a key belongs to; Unauthorized for unknown or revoked keys."""
    if not key.startswith(KEY_PREFIX) or len(key) > 100:
        raise Unauthorized("invalid API key")
    async with db.read() as session:
        row = (
            await session.execute(
                select(ApiKey.client_id, ApiKey.revoked_at).where(ApiKey.key_hash == hash_key(key))
            )
        ).one_or_none()
    if row is None or row.revoked_at is not None:
        raise Unauthorized("invalid or revoked API key")
    return row.client_id
