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


@pytest.fixture
def caller_wav(tmp_path: Path) -> Path:
    from callagent.app.audio_files import write_wav

    path = tmp_path / "caller.wav"
    write_wav(path, bytes(16000), 8000)
    return path


def _client(database_url: str, *, agent: bool, numbers: list[str]) -> str:
    """A client in the database, with or without an agent (answering ``numbers``)."""
    import asyncio

    from callagent.store.db import Database
    from callagent.store.schemas import AgentSetup
    from callagent.store.services import agents, clients

    async def make() -> str:
        db = Database(database_url)
        try:
            created = await clients.create_client(db, "cli test")
            if agent:
                await agents.setup_agent(
                    db, created.client_id, AgentSetup(agent_name="Alex", phone_numbers=numbers)
                )
            return str(created.client_id)
        finally:
            await db.dispose()

    return asyncio.run(make())


CLIENT = ["--client", "01a232c9-7e9b-7000-8b77-0c854c423962"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--caller-number", "+12125550123"], "need --client"),
        (["--no-analysis"], "need --client"),
        (["--client", "acme"], "is not a client id"),
        (["--client", "01a232c9-7e9b-7000-8b77-0c854c423962"], "needs --caller-number"),
        (
            ["--client", "01a232c9-7e9b-7000-8b77-0c854c423962", "--caller-number", "12"],
            "is not a phone number",
        ),
        (
            # The default dialplan fixes slin16: 16 kHz.
            [*CLIENT, "--caller-number", "+12125550123", "--rate", "8000"],
            "runs at the dialplan's rate, 16000 Hz",
        ),
    ],
)
def test_call_with_a_client_checks_its_arguments_first(
    caller_wav: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["call", "--simulate", str(caller_wav), *extra]) == 2
    assert message in capsys.readouterr().err


def test_call_for_a_client_that_cannot_take_it_is_one_line(
    caller_wav: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from helpers import store_fixtures

    url = store_fixtures.migrated_url("sqlite")
    no_agent = _client(url, agent=False, numbers=[])
    no_number = _client(url, agent=True, numbers=[])
    cases = {
        "01a232c9-0000-7000-8b77-0c854c423962": "no client 01a232c9-0000",
        no_agent: "has no agent yet",
        no_number: "answers no phone number",
    }
    for client, message in cases.items():
        code = main(
            [
                "call",
                "--simulate",
                str(caller_wav),
                "--database-url",
                url,
                "--client",
                client,
                "--caller-number",
                "+12125550123",
            ]
        )
        assert code == 2
        assert message in capsys.readouterr().err


def test_call_for_a_client_refuses_a_number_that_is_not_its_own(
    caller_wav: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from helpers import store_fixtures

    url = store_fixtures.migrated_url("sqlite")
    client = _client(url, agent=True, numbers=["+493012345670"])
    args = ["--database-url", url, "--client", client, "--caller-number", "+12125550123"]
    code = main(["call", "--simulate", str(caller_wav), *args, "--did", "+493099999999"])
    assert code == 2
    error = capsys.readouterr().err
    assert "is not a number of client" in error
    assert "its numbers: +493012345670" in error
