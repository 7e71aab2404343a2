"""Settings: defaults, file, environment and flags, validated with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from callagent.settings import SettingsError, load_settings


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
        ({"CALLAGENT_LLM_THREADS": "0"}, "llm_threads"),
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
