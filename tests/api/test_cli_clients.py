"""``callagent clients create|keys|revoke`` and the database setting (issue #3)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callagent.cli import main
from callagent.settings import SettingsError, load_settings


def test_clients_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'nested' / 'cli.db'}"
    assert main(["clients", "--database-url", url, "create", "Acme Solar"]) == 0
    created = json.loads(capsys.readouterr().out)
    assert created["api_key"].startswith("ca_")
    assert main(["clients", "--database-url", url, "keys", created["client_id"]]) == 0
    (key,) = json.loads(capsys.readouterr().out)
    assert key["revoked_at"] is None
    assert created["api_key"] not in json.dumps(key)
    assert main(["clients", "--database-url", url, "revoke", key["id"]]) == 0
    assert json.loads(capsys.readouterr().out)["revoked_at"] is not None
    assert main(["clients", "--database-url", url, "keys", "not-a-uuid"]) == 2
    assert "not a valid id" in capsys.readouterr().err


def test_database_url_setting() -> None:
    assert load_settings(environ={}).database.url == "sqlite+aiosqlite:///var/callagent.db"
    url = "postgresql+asyncpg://callagent@db/callagent"
    assert load_settings(environ={"CALLAGENT_DATABASE_URL": url}).database.url == url
    with pytest.raises(SettingsError, match=r"database\.url"):
        load_settings(environ={"CALLAGENT_DATABASE_URL": "mysql://x"})
