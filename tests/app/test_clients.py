"""``callagent clients create|keys|revoke``: clients and their API keys (docs/api.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callagent.cli import main


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
