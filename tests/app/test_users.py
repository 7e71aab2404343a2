"""``callagent users create|list|disable``: who signs in to a client's dashboard
(docs/dashboard.md). The password comes from standard input, never the command line."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from callagent.cli import main
from callagent.store.db import Database
from callagent.store.errors import Unauthorized
from callagent.store.models import utcnow
from callagent.store.services import users


def test_users_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    assert main(["clients", "--database-url", url, "create", "Acme Solar"]) == 0
    client_id = json.loads(capsys.readouterr().out)["client_id"]

    monkeypatch.setattr("sys.stdin", io.StringIO("correct horse battery\n"))
    command = ["users", "--database-url", url, "create", "--client", client_id, "Dana@Acme.example"]
    assert main(command) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["email"] == "dana@acme.example"
    assert created["client_id"] == client_id
    assert "password" not in json.dumps(created)

    async def sign_in() -> None:
        database = Database(url)
        try:
            await users.sign_in(database, "dana@acme.example", "correct horse battery", utcnow())
        finally:
            await database.dispose()

    asyncio.run(sign_in())  # the password from stdin is the one that signs in

    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert (
        main(["users", "--database-url", url, "create", "--client", client_id, "x@y.example"]) == 2
    )
    assert "password: must be at least 10 characters" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("another good password\n"))
    assert (
        main(["users", "--database-url", url, "create", "--client", client_id, "DANA@acme.example"])
        == 2
    )
    assert "already exists" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("another good password\n"))
    assert main(["users", "--database-url", url, "create", "--client", "nope", "e@f.example"]) == 2
    assert "not a valid client id" in capsys.readouterr().err

    assert main(["users", "--database-url", url, "list", "--client", client_id]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["email"] == "dana@acme.example"
    assert listed["disabled_at"] is None

    assert main(["users", "--database-url", url, "disable", "dana@acme.example"]) == 0
    assert json.loads(capsys.readouterr().out)["disabled_at"] is not None
    with pytest.raises(Unauthorized):
        asyncio.run(sign_in())
    assert main(["users", "--database-url", url, "disable", "nobody@acme.example"]) == 2
    assert "no user" in capsys.readouterr().err
