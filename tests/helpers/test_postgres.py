"""The PostgreSQL tests must run in CI: a missing server fails there, and skips elsewhere."""

from __future__ import annotations

import pytest

from helpers import postgres


def test_missing_postgres_fails_in_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postgres, "_server", None)
    monkeypatch.setattr(postgres, "find_bin_dir", lambda: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run"):
        postgres.start()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        postgres.start()
