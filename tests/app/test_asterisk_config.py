"""``callagent asterisk-config --out DIR``: the checked configuration written from the settings, or
one line naming what is missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from callagent.cli import main
from callagent.telephony.asterisk.config_check import check_asterisk_config

from helpers.asterisk_settings import BASE, SECRET


def test_cli_writes_the_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in BASE.items():
        monkeypatch.setenv(key, value)
    assert main(["asterisk-config", "--out", str(tmp_path / "conf")]) == 0
    files = {p.name: p.read_text() for p in (tmp_path / "conf").iterdir()}
    assert check_asterisk_config(files) == []
    assert SECRET in files["manager.conf"]


def test_cli_names_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in BASE:
        monkeypatch.delenv(key, raising=False)
    assert main(["asterisk-config", "--out", str(tmp_path / "conf")]) == 2
    assert "asterisk.ami_secret" in capsys.readouterr().err
    assert not (tmp_path / "conf").exists()
