"""``callagent users create|list|disable``: the people who sign in to a client's dashboard
(docs/dashboard.md, "Users").

The password is read from a prompt (twice, not echoed) or, when standard input is not a
terminal, from its first line - never from the command line, where ``ps`` and the shell's
history would show it to others.
"""

from __future__ import annotations

import getpass
import sys
import uuid
from collections.abc import Callable
from typing import Literal

import msgspec

from callagent.app.errors import UsageError
from callagent.settings import Settings
from callagent.store.db import Database
from callagent.store.errors import DomainError
from callagent.store.services import users

UsersCommand = Literal["create", "list", "disable"]


def read_password(prompt: Callable[[str], str] = getpass.getpass) -> str:
    """The new user's password: asked twice on a terminal, else the first line of stdin."""
    if sys.stdin.isatty():
        first = prompt("Password: ")
        if prompt("Password again: ") != first:
            raise UsageError("the two passwords differ; nothing was created")
        return first
    line = sys.stdin.readline()
    if not line:
        raise UsageError("give the password on standard input (one line) or at the prompt")
    return line.rstrip("\r\n")


async def run_users_command(
    settings: Settings,
    command: UsersCommand,
    *,
    email: str | None = None,
    client: str | None = None,
    password: Callable[[], str] = read_password,
) -> int:
    """Create a user of ``client`` named ``email`` (password from ``password()``), list the
    users (of ``client`` when given), or disable ``email``; prints JSON. Returns the exit
    code; a bad id, a taken e-mail or a short password is a :class:`UsageError`."""
    database = Database(settings.database.url)
    try:
        client_id = uuid.UUID(client) if client else None
    except ValueError as error:
        raise UsageError(f"--client: not a valid client id: {client}") from error
    try:
        await database.migrate()
        if command == "create":
            if client_id is None or not email:
                raise UsageError("users create needs --client CLIENT_ID and an e-mail address")
            created = await users.create_user(database, client_id, email, password())
            print(msgspec.json.encode(created).decode())
        elif command == "list":
            print(msgspec.json.encode(await users.list_users(database, client_id)).decode())
        else:
            if not email:
                raise UsageError("users disable needs an e-mail address")
            print(msgspec.json.encode(await users.disable_user(database, email)).decode())
    except DomainError as error:
        raise UsageError(error.detail) from error
    finally:
        await database.dispose()
    return 0
