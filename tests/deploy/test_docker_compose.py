"""docker-compose.yml and deploy/callagent.env.example (docs/telephony.md).

The file is parsed and its structure checked here; where a compose client exists (Debian's
``docker-compose`` v1, or the ``docker compose`` plugin) its own ``config`` command validates it
too - no Docker engine is needed for that. The example env file is loaded through the real
settings and rendered into an Asterisk configuration that must pass the config check.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from callagent.settings import ENVIRONMENT, load_settings
from callagent.telephony.asterisk.config import AsteriskConfigError, render_asterisk_config
from callagent.telephony.asterisk.config_check import check_asterisk_config

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
EXAMPLE = REPO / "deploy" / "callagent.env.example"
FILLED = {
    "POSTGRES_PASSWORD": "pg-secret-123",
    "CALLAGENT_TRUNK_HOST": "sip.provider.example",
    "CALLAGENT_TRUNK_USERNAME": "u4930123",
    "CALLAGENT_TRUNK_PASSWORD": "trunk-secret-123",
    "CALLAGENT_AMI_SECRET": "0123456789abcdef0123456789abcdef",
}


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def compose() -> dict[str, object]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def test_services_images_and_volumes() -> None:
    data = compose()
    services = data["services"]
    assert isinstance(services, dict)
    assert set(services) == {"postgres", "asterisk-config", "asterisk", "callagent"}
    for name, service in services.items():
        image = service.get("image", "")
        assert image, name
        assert ":" in image, f"{name}: pin the image"
        assert not image.endswith(":latest"), f"{name}: pin the image"
    asterisk = services["asterisk"]
    # The rendered configuration is what Asterisk runs with.
    assert "asterisk-config:/etc/asterisk:ro" in asterisk["volumes"]
    assert "asterisk-config:/asterisk-config" in services["asterisk-config"]["volumes"]
    assert "callagent asterisk-config --out /asterisk-config" in " ".join(
        services["asterisk-config"]["command"]
    )
    assert asterisk["depends_on"]["asterisk-config"]["condition"] == (
        "service_completed_successfully"
    )
    callagent = services["callagent"]
    assert "./models:/models:ro" in callagent["volumes"]
    assert any(v.startswith("recordings:") for v in callagent["volumes"])
    assert callagent["env_file"] == "deploy/callagent.env"
    assert callagent["environment"]["CALLAGENT_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert callagent["depends_on"]["postgres"]["condition"] == "service_healthy"
    # AMI and AudioSocket stay on loopback: both share the host network, and PostgreSQL is
    # published on 127.0.0.1 only.
    assert asterisk["network_mode"] == callagent["network_mode"] == "host"
    assert all(p.startswith("127.0.0.1:") for p in services["postgres"]["ports"])
    assert set(data["volumes"]) >= {"postgres-data", "asterisk-config", "recordings"}


def test_every_variable_of_the_example_is_a_setting_or_a_compose_variable() -> None:
    compose_variables = set(re.findall(r"\$\{?(\w+)", COMPOSE.read_text()))
    compose_variables.add("COMPOSE_PROJECT_NAME")  # read by the compose client itself
    for key in env_file(EXAMPLE):
        assert key in ENVIRONMENT or key in compose_variables, key
    # The example covers the whole trunk / AMI / transfer surface an operator fills in.
    assert {
        "CALLAGENT_TRUNK_HOST",
        "CALLAGENT_TRUNK_PASSWORD",
        "CALLAGENT_DIDS",
        "CALLAGENT_AMI_SECRET",
        "CALLAGENT_TRANSFER_TARGETS",
    } <= set(env_file(EXAMPLE))


def test_the_example_as_shipped_refuses_to_render_its_placeholders() -> None:
    settings = load_settings(environ=env_file(EXAMPLE))
    with pytest.raises(AsteriskConfigError, match="placeholder"):
        render_asterisk_config(settings.asterisk, audiosocket_port=9092)


def test_the_filled_in_example_renders_a_configuration_that_passes_the_check() -> None:
    settings = load_settings(environ={**env_file(EXAMPLE), **FILLED})
    files = render_asterisk_config(
        settings.asterisk, audiosocket_port=settings.network.audiosocket_port
    )
    assert check_asterisk_config(files) == []


def _compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


@pytest.mark.skipif(
    _compose_client() is None and not os.environ.get("CI"),
    reason="no docker compose client (Debian package docker-compose)",
)
def test_the_compose_client_accepts_the_file(tmp_path: Path) -> None:
    client = _compose_client()
    assert client is not None
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    (tmp_path / "deploy").mkdir()
    env = tmp_path / "deploy" / "callagent.env"
    env.write_text(
        EXAMPLE.read_text()
        + "".join(f"{key}={value}\n" for key, value in FILLED.items())  # later lines win
    )
    result = subprocess.run(
        [*client, "--env-file", str(env), "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith(("POSTGRES", "ASTERISK"))},
    )
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    callagent = rendered["services"]["callagent"]
    assert "pg-secret-123@127.0.0.1:5432" in callagent["environment"]["CALLAGENT_DATABASE_URL"]
    assert rendered["services"]["asterisk"]["image"] == "andrius/asterisk:22.8.2_debian-trixie"
    # Without the password the file refuses to start rather than run an open database.
    env.write_text(EXAMPLE.read_text().replace("POSTGRES_PASSWORD=", "#"))
    missing = subprocess.run(
        [*client, "--env-file", str(env), "config"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("POSTGRES")},
    )
    assert missing.returncode != 0
    assert "POSTGRES_PASSWORD" in missing.stderr
