"""``callagent clients create|keys|revoke``: clients (tenants) and their API keys (docs/api.md)."""

from __future__ import annotations

import uuid
from typing import Literal

import msgspec

from callagent.app.errors import UsageError
from callagent.settings import Settings
from callagent.store.db import Database
from callagent.store.errors import DomainError
from callagent.store.services import clients

ClientsCommand = Literal["create", "keys", "revoke"]


async def run_clients_command(settings: Settings, command: ClientsCommand, argument: str) -> int:
    """Create a client named ``argument`` (printing its first API key), list the API keys of
    client ``argument``, or revoke API key ``argument``; prints JSON. Returns the exit code."""
    database = Database(settings.database.url)
    try:
        await database.migrate()
        if command == "create":
            created = await clients.create_client(database, argument)
            print(msgspec.json.encode(created).decode())
        elif command == "keys":
            keys = await clients.list_api_keys(database, uuid.UUID(argument))
            print(msgspec.json.encode(keys).decode())
        else:
            revoked = await clients.revoke_api_key(database, uuid.UUID(argument))
            print(msgspec.json.encode(revoked).decode())
    except ValueError as error:  # a malformed UUID
        raise UsageError(f"not a valid id: {error}") from error
    except DomainError as error:
        raise UsageError(error.detail) from error
    finally:
        await database.dispose()
    return 0
