"""The ``callagent`` command line: arguments, dispatch and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from callagent.cli import _build_parser, _overrides, main
from callagent.settings import load_settings

REPO = Path(__file__).resolve().parents[1]


def test_bad_settings_are_one_clear_line_not_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "callagent.cli", "serve", "--http-port", "99999"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 2
    assert "http_port" in done.stderr
    assert "Traceback" not in done.stderr


def test_flags_override_the_settings_they_name() -> None:
    args = _build_parser().parse_args(
        [
            "serve",
            "--host",
            "0.0.0.0",
            "--audiosocket-port",
            "9100",
            "--http-port",
            "8100",
            "--models",
            "ci",
            "--models-dir",
            "/srv/models",
            "--agent",
            "agents/example.yaml",
            "--database-url",
            "sqlite+aiosqlite:///x.db",
        ]
    )
    settings = load_settings(environ={"CALLAGENT_HTTP_PORT": "8200"}, overrides=_overrides(args))
    assert settings.network.host == "0.0.0.0"
    assert settings.network.audiosocket_port == 9100
    assert settings.network.http_port == 8100  # flags win over the environment
    assert settings.models.profile == "ci"
    assert settings.models.models_dir == "/srv/models"
    assert settings.agent.file == "agents/example.yaml"
    assert settings.database.url == "sqlite+aiosqlite:///x.db"
    # Flags a command does not have leave the settings alone.
    call = load_settings(environ={}, overrides=_overrides(_build_parser().parse_args(["call"])))
    assert call == load_settings(environ={})


def test_call_without_a_simulated_caller_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["call"]) == 2
    assert "use --simulate CALLER.wav" in capsys.readouterr().err


def test_models_passes_its_arguments_to_the_model_files_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["models", "list", "--models-dir", str(REPO / "models")]) == 0
    assert "profile ci:" in capsys.readouterr().out
