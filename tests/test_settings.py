"""Settings: defaults, file, environment and flags, validated with clear errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import msgspec
import pytest

from callagent.settings import (
    ENVIRONMENT,
    AsteriskSettings,
    NetworkSettings,
    Settings,
    SettingsError,
    SipSettings,
    environment_names,
    load_settings,
)

from helpers.asterisk_settings import settings_for


def test_embedded_defaults_listen_on_loopback_only() -> None:
    settings = load_settings(environ={})
    assert settings.network.host == "127.0.0.1"
    assert settings.network.audiosocket_port == 9092
    assert settings.network.http_port == 8000
    assert settings.models.profile == "default"


def test_later_sources_win_file_then_environment_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "callagent.toml"
    config.write_text(
        '[network]\nhttp_port = 8100\naudiosocket_port = 9100\n[models]\nprofile = "default"\n'
    )
    settings = load_settings(
        config_file=config,
        environ={"CALLAGENT_AUDIOSOCKET_PORT": "9200"},
        overrides={("models", "profile"): "server"},
    )
    assert settings.network.http_port == 8100
    assert settings.network.audiosocket_port == 9200
    assert settings.models.profile == "server"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"CALLAGENT_HTTP_PORT": "eighty"}, "http_port"),
        ({"CALLAGENT_AUDIOSOCKET_PORT": "70000"}, "audiosocket_port"),
        ({"CALLAGENT_END_SILENCE_S": "9"}, "end_silence_s"),
        ({"CALLAGENT_COMPLETE_SILENCE_S": "0.6"}, "complete_silence_s"),
        ({"CALLAGENT_INCOMPLETE_SILENCE_S": "0.3"}, "incomplete_silence_s"),
        ({"CALLAGENT_LLM_THREADS": "0"}, "llm_threads"),
        ({"CALLAGENT_SILENCE_PROMPT_S": "1"}, "silence_prompt_s"),
        ({"CALLAGENT_SILENCE_END_S": "0"}, "silence_end_s"),
        ({"CALLAGENT_MAX_CALL_S": "30"}, "max_call_s"),
        ({"CALLAGENT_SILENCE_PROMPT": "x" * 301}, "silence_prompt"),
    ],
)
def test_bad_values_are_refused_naming_the_setting(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ=environ)


def test_unknown_keys_and_broken_files_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[network]\nhots = '0.0.0.0'\n")
    with pytest.raises(SettingsError, match="hots"):
        load_settings(config_file=config, environ={})
    config.write_text("[network\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(config_file=config, environ={})
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(config_file=tmp_path / "missing.toml", environ={})


def test_database_url_setting() -> None:
    assert load_settings(environ={}).database.url == "sqlite+aiosqlite:///var/callagent.db"
    url = "postgresql+asyncpg://callagent@db/callagent"
    assert load_settings(environ={"CALLAGENT_DATABASE_URL": url}).database.url == url
    with pytest.raises(SettingsError, match=r"database\.url"):
        load_settings(environ={"CALLAGENT_DATABASE_URL": "mysql://x"})


# --- environment variable names ---------------------------------------------------------------

REPO = Path(__file__).resolve().parents[1]

# The names in use before they were derived from the sections (deploy/callagent.env.example,
# docker-compose.yml, docs/telephony.md and sites' own env files rely on them): each must keep
# naming the same setting.
NAMES_BEFORE_THE_RULE = {
    "CALLAGENT_HOST": ("network", "host"),
    "CALLAGENT_AUDIOSOCKET_PORT": ("network", "audiosocket_port"),
    "CALLAGENT_HTTP_PORT": ("network", "http_port"),
    "CALLAGENT_MODELS": ("models", "profile"),
    "CALLAGENT_MODELS_DIR": ("models", "models_dir"),
    "CALLAGENT_LLM_THREADS": ("models", "llm_threads"),
    "CALLAGENT_AGENT": ("agent", "file"),
    "CALLAGENT_END_SILENCE_S": ("turn_taking", "end_silence_s"),
    "CALLAGENT_DATABASE_URL": ("database", "url"),
    "CALLAGENT_ASTERISK_AUDIOSOCKET_HOST": ("asterisk", "audiosocket_host"),
    "CALLAGENT_AUDIOSOCKET_FORMAT": ("asterisk", "audiosocket_format"),
    "CALLAGENT_AMI_HOST": ("asterisk", "ami_host"),
    "CALLAGENT_AMI_PORT": ("asterisk", "ami_port"),
    "CALLAGENT_AMI_BIND": ("asterisk", "ami_bind"),
    "CALLAGENT_AMI_PERMIT": ("asterisk", "ami_permit"),
    "CALLAGENT_AMI_USERNAME": ("asterisk", "ami_username"),
    "CALLAGENT_AMI_SECRET": ("asterisk", "ami_secret"),
    "CALLAGENT_ASTERISK_SIP_PORT": ("asterisk", "sip_port"),
    "CALLAGENT_EXTERNAL_ADDRESS": ("asterisk", "external_address"),
    "CALLAGENT_LOCAL_NET": ("asterisk", "local_net"),
    "CALLAGENT_RTP_PORT_START": ("asterisk", "rtp_port_start"),
    "CALLAGENT_RTP_PORT_END": ("asterisk", "rtp_port_end"),
    "CALLAGENT_CODECS": ("asterisk", "codecs"),
    "CALLAGENT_TRUNK_HOST": ("asterisk", "trunk_host"),
    "CALLAGENT_TRUNK_TRANSPORT": ("asterisk", "trunk_transport"),
    "CALLAGENT_TRUNK_USERNAME": ("asterisk", "trunk_username"),
    "CALLAGENT_TRUNK_PASSWORD": ("asterisk", "trunk_password"),
    "CALLAGENT_TRUNK_REGISTER": ("asterisk", "trunk_register"),
    "CALLAGENT_TRUNK_CALLER_ID": ("asterisk", "trunk_caller_id"),
    "CALLAGENT_DIDS": ("asterisk", "dids"),
    "CALLAGENT_TRANSFER_TARGETS": ("asterisk", "transfer_targets"),
    "CALLAGENT_AMD": ("asterisk", "amd_enabled"),
    "CALLAGENT_AMD_ON_MACHINE": ("asterisk", "amd_on_machine"),
    "CALLAGENT_SIP": ("sip", "enabled"),
    "CALLAGENT_SIP_HOST": ("sip", "host"),
    "CALLAGENT_SIP_PORT": ("sip", "port"),
    "CALLAGENT_SIP_PUBLIC_ADDRESS": ("sip", "public_address"),
    "CALLAGENT_SIP_REGISTRAR": ("sip", "registrar"),
    "CALLAGENT_SIP_USERNAME": ("sip", "username"),
    "CALLAGENT_SIP_PASSWORD": ("sip", "password"),
    "CALLAGENT_RECORDINGS": ("recording", "enabled"),
    "CALLAGENT_RECORDINGS_DIR": ("recording", "folder"),
    "CALLAGENT_RECORDING_RETENTION_DAYS": ("recording", "retention_days"),
    "CALLAGENT_UNKNOWN_NUMBER": ("routing", "unknown_number"),
    "CALLAGENT_UNKNOWN_NUMBER_MESSAGE": ("routing", "unknown_number_message"),
}

# Asterisk channel variables the dialplan sets (docs/telephony.md), not environment variables.
CHANNEL_VARIABLES = {"CALLAGENT_UUID", "CALLAGENT_DID", "CALLAGENT_CALLER", "CALLAGENT_AUDIOSOCKET"}


def _shown(value: object) -> str:
    """A default as docs/configuration.md writes it: in backticks, booleans as in env files."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    return f"`{value}`"


def test_derived_names_equal_the_documented_ones() -> None:
    rows = re.findall(
        r"^\| `(CALLAGENT_\w+)` \| `(\w+)\.(\w+)` \| (.*?) \|$",
        (REPO / "docs" / "configuration.md").read_text(encoding="utf-8"),
        flags=re.MULTILINE,
    )
    documented = {variable: (section, field) for variable, section, field, _ in rows}
    assert len(documented) == len(rows), "docs/configuration.md lists a variable twice"
    assert documented == dict(ENVIRONMENT)
    defaults = Settings()
    for variable, section, field, default in rows:
        assert default == _shown(getattr(getattr(defaults, section), field)), variable


def test_every_name_used_before_the_rule_names_the_same_setting() -> None:
    for variable, setting in NAMES_BEFORE_THE_RULE.items():
        assert ENVIRONMENT.get(variable) == setting, variable
    settings = load_settings(
        environ={
            "CALLAGENT_MODELS": "server",
            "CALLAGENT_AGENT": "agents/example.yaml",
            "CALLAGENT_ASTERISK_SIP_PORT": "5070",
            "CALLAGENT_AMD": "false",
            "CALLAGENT_SIP": "true",
            "CALLAGENT_RECORDINGS": "false",
            "CALLAGENT_RECORDINGS_DIR": "/srv/recordings",
        }
    )
    assert settings.models.profile == "server"
    assert settings.agent.file == "agents/example.yaml"
    assert settings.asterisk.sip_port == 5070
    assert settings.asterisk.amd_enabled is False
    assert settings.sip.enabled is True
    assert settings.recording.enabled is False
    assert settings.recording.folder == "/srv/recordings"


def test_every_variable_the_docs_and_deployment_files_use_is_a_setting() -> None:
    files = [
        REPO / "README.md",
        REPO / "docker-compose.yml",
        *sorted((REPO / "docs").glob("*.md")),
        *sorted(path for path in (REPO / "deploy").iterdir() if path.is_file()),
    ]
    for path in files:
        used = set(re.findall(r"CALLAGENT_[A-Z0-9_]*[A-Z0-9]", path.read_text(encoding="utf-8")))
        unknown = used - set(ENVIRONMENT) - CHANNEL_VARIABLES
        assert not unknown, f"{path.relative_to(REPO)} names no setting: {sorted(unknown)}"


class _Clashing(msgspec.Struct, frozen=True):
    env_prefix: ClassVar[str] = ""
    host: str = ""


class _Broken(msgspec.Struct, frozen=True):
    network: NetworkSettings = msgspec.field(default_factory=NetworkSettings)
    other: _Clashing = msgspec.field(default_factory=_Clashing)


def test_two_settings_never_share_a_variable() -> None:
    clash = r"CALLAGENT_HOST would name both network\.host and other\.host"
    with pytest.raises(RuntimeError, match=clash):
        environment_names(_Broken)


# Asterisk's settings (the rest of a valid environment: helpers/asterisk_settings.py). A value
# that would inject config or dialplan syntax is refused at start.
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("CALLAGENT_DIDS", "+4930123,1234;Dial(PJSIP/900@trunk)"),
        ("CALLAGENT_DIDS", "_X."),  # a pattern would answer every number
        ("CALLAGENT_DIDS", "123\nexten => 9,1,Dial(x)"),
        ("CALLAGENT_TRANSFER_TARGETS", "sales=+4930111,evil=00900123(x)"),
        ("CALLAGENT_TRANSFER_TARGETS", "sales=+49 30 111"),
        ("CALLAGENT_TRANSFER_TARGETS", "i=+4930111"),  # i/s/t/h are special extensions
        ("CALLAGENT_TRANSFER_TARGETS", "sales"),
        ("CALLAGENT_TRANSFER_TARGETS", "sales=1234,sales=5678"),
        ("CALLAGENT_TRUNK_HOST", "sip.example.net\n[evil]"),
        ("CALLAGENT_TRUNK_HOST", "sip.example.net;transport=tcp"),
        ("CALLAGENT_TRUNK_USERNAME", "u@x"),
        ("CALLAGENT_TRUNK_PASSWORD", "pass word"),
        ("CALLAGENT_TRUNK_PASSWORD", "pa;ss"),
        ("CALLAGENT_AMI_SECRET", "${SHELL(id)}0123456789"),
        ("CALLAGENT_AMI_PERMIT", "0.0.0.0/0,evil"),
        ("CALLAGENT_ASTERISK_AUDIOSOCKET_HOST", "callagent:9092/x"),
        ("CALLAGENT_TRUNK_CALLER_ID", "Sales <123>"),
        ("CALLAGENT_CODECS", "ulaw,evil"),
        ("CALLAGENT_AUDIOSOCKET_FORMAT", "ulaw"),
        ("CALLAGENT_RTP_PORT_START", "20000"),
    ],
)
def test_values_that_could_inject_syntax_are_refused_at_start(variable: str, value: str) -> None:
    with pytest.raises(SettingsError):
        settings_for(**{variable: value})


def test_ami_must_permit_someone() -> None:
    with pytest.raises(SettingsError, match="ami_permit"):
        AsteriskSettings(ami_permit=" , ")


def test_a_secret_is_never_echoed_in_the_error() -> None:
    with pytest.raises(SettingsError) as error:
        settings_for(CALLAGENT_TRUNK_PASSWORD="top secret")
    assert "top secret" not in str(error.value)


def test_recording_and_routing_settings_come_from_the_environment() -> None:
    defaults = load_settings(environ={})
    assert (defaults.recording.enabled, defaults.recording.folder) == (True, "var/recordings")
    assert defaults.recording.retention_days == 30
    assert defaults.routing.unknown_number == "file_agent"
    settings = load_settings(
        environ={
            "CALLAGENT_RECORDINGS": "false",
            "CALLAGENT_RECORDINGS_DIR": "/srv/rec",
            "CALLAGENT_RECORDING_RETENTION_DAYS": "7.5",
            "CALLAGENT_UNKNOWN_NUMBER": "message",
            "CALLAGENT_UNKNOWN_NUMBER_MESSAGE": "Wrong number, sorry.",
        }
    )
    assert (settings.recording.enabled, settings.recording.folder) == (False, "/srv/rec")
    assert settings.recording.retention_days == 7.5
    assert settings.routing.unknown_number == "message"
    assert settings.routing.unknown_number_message == "Wrong number, sorry."


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("CALLAGENT_RECORDING_RETENTION_DAYS", "-1", "recording.retention_days"),
        ("CALLAGENT_RECORDINGS_DIR", " ", "recording.folder"),
        ("CALLAGENT_UNKNOWN_NUMBER", "ring_forever", "unknown_number"),
        ("CALLAGENT_UNKNOWN_NUMBER_MESSAGE", "x" * 501, "routing.unknown_number_message"),
    ],
)
def test_bad_recording_and_routing_settings_are_named(
    variable: str, value: str, named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(environ={variable: value})


def test_crash_recovery_settings_come_from_the_environment() -> None:
    settings = load_settings(
        environ={
            "CALLAGENT_RECOVERY_HEARTBEAT_INTERVAL_S": "5",
            "CALLAGENT_RECOVERY_STALE_AFTER_S": "30",
            "CALLAGENT_RECOVERY_SWEEP_INTERVAL_S": "10",
        }
    )
    recovery = settings.recovery
    assert (recovery.heartbeat_interval_s, recovery.stale_after_s) == (5.0, 30.0)
    assert recovery.sweep_interval_s == 10.0


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CALLAGENT_RECOVERY_HEARTBEAT_INTERVAL_S": "0"}, "recovery.heartbeat_interval_s"),
        ({"CALLAGENT_RECOVERY_SWEEP_INTERVAL_S": "0"}, "recovery.sweep_interval_s"),
        # A call counts as lost only after more than two heartbeats failed to come.
        (
            {
                "CALLAGENT_RECOVERY_HEARTBEAT_INTERVAL_S": "20",
                "CALLAGENT_RECOVERY_STALE_AFTER_S": "40",
            },
            "recovery.stale_after_s",
        ),
    ],
)
def test_crash_recovery_settings_that_would_settle_live_calls_are_refused(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(environ=environ)


def test_the_sip_endpoint_answers_only_listed_networks() -> None:
    default = load_settings(environ={}).sip
    assert [str(n) for n in default.allowed_network_list()] == ["127.0.0.0/8", "::1/128"]
    listed = load_settings(environ={"CALLAGENT_SIP_ALLOWED_NETWORKS": "10.1.0.0/16, 192.0.2.7"})
    assert [str(n) for n in listed.sip.allowed_network_list()] == ["10.1.0.0/16", "192.0.2.7/32"]
    for bad in ("10.0.0.0/33", "example.net", "10.0.0.0/8;evil", "::1/129"):
        with pytest.raises(SettingsError, match=r"sip\.allowed_networks"):
            load_settings(environ={"CALLAGENT_SIP_ALLOWED_NETWORKS": bad})
    with pytest.raises(SettingsError, match="no call could be answered"):
        SipSettings(allowed_networks="")
    assert SipSettings(allowed_networks="", registrar="sip.example.net", username="u")


def test_webhook_settings_come_from_the_file_and_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "callagent.toml"
    config.write_text("[webhooks]\nmax_attempts = 5\nretention_days = 7\ntimeout_s = 4\n")
    settings = load_settings(
        config_file=config,
        environ={"CALLAGENT_WEBHOOKS": "false", "CALLAGENT_WEBHOOKS_BACKOFF_MAX_S": "600"},
    )
    webhooks = settings.webhooks
    assert webhooks.enabled is False
    assert (webhooks.max_attempts, webhooks.retention_days, webhooks.timeout_s) == (5, 7.0, 4.0)
    assert (webhooks.backoff_base_s, webhooks.backoff_max_s) == (15.0, 600.0)


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({"CALLAGENT_WEBHOOKS_POLL_INTERVAL_S": "0"}, "webhooks.poll_interval_s"),
        ({"CALLAGENT_WEBHOOKS_MAX_ATTEMPTS": "0"}, "webhooks.max_attempts"),
        ({"CALLAGENT_WEBHOOKS_TIMEOUT_S": "600"}, "webhooks.timeout_s"),
        # The lease must outlast the POST, or another node sends the delivery meanwhile.
        ({"CALLAGENT_WEBHOOKS_TIMEOUT_S": "40", "CALLAGENT_WEBHOOKS_LEASE_S": "60"}, "lease_s"),
        ({"CALLAGENT_WEBHOOKS_BACKOFF_MAX_S": "10"}, "webhooks.backoff_max_s"),
        ({"CALLAGENT_WEBHOOKS_RETENTION_DAYS": "0.5"}, "webhooks.retention_days"),
        ({"CALLAGENT_WEBHOOKS_MAX_ATTEMPTS": "many"}, "webhooks.max_attempts"),
    ],
)
def test_bad_webhook_settings_are_refused_naming_the_setting(
    environ: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        load_settings(environ=environ)


def test_calls_are_analysed_when_this_or_another_node_runs_the_analysis() -> None:
    assert load_settings(environ={}).analysis.analysed()
    off = load_settings(environ={"CALLAGENT_ANALYSIS": "false"}).analysis
    assert not off.analysed()
    elsewhere = load_settings(
        environ={"CALLAGENT_ANALYSIS": "false", "CALLAGENT_ANALYSIS_OTHER_NODES": "true"}
    ).analysis
    assert elsewhere.analysed()
