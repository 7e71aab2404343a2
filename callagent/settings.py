"""Settings: one module, per-concern sections, validated at start (DESIGN.md practice 12).

Sources, later ones winning: built-in defaults (the embedded mode), a TOML config file,
``CALLAGENT_*`` environment variables, command-line flags. Only the CLI reads them; every
component gets an explicit parameter object.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range; the message names it."""


class NetworkSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where callagent listens. Loopback by default: the embedded mode exposes nothing."""

    host: str = "127.0.0.1"
    audiosocket_port: int = 9092
    http_port: int = 8000

    def __post_init__(self) -> None:
        for name in ("audiosocket_port", "http_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise SettingsError(f"network.{name} must be a port number 0..65535, got {port}")


class ModelSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Which model profile of models/manifest.json to run, and how many threads it gets."""

    profile: str = "ci"
    models_dir: Path = Path("models")
    llm_threads: int = 2
    stt_threads: int = 2

    def __post_init__(self) -> None:
        if self.llm_threads < 1 or self.stt_threads < 1:
            raise SettingsError("models.llm_threads and models.stt_threads must be at least 1")


class AgentSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The agent definition file; none means the built-in demo agent."""

    file: Path | None = None


class TurnTakingSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Turn-taking knobs (see docs/pipeline.md)."""

    end_silence_s: float = 0.45
    vad_aggressiveness: int = 2

    def __post_init__(self) -> None:
        if not 0.1 <= self.end_silence_s <= 5.0:
            raise SettingsError(
                f"turn_taking.end_silence_s must be 0.1..5.0 s, got {self.end_silence_s}"
            )
        if not 0 <= self.vad_aggressiveness <= 3:
            raise SettingsError(
                f"turn_taking.vad_aggressiveness must be 0..3, got {self.vad_aggressiveness}"
            )


class Settings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """All settings, one section per concern."""

    network: NetworkSettings = msgspec.field(default_factory=NetworkSettings)
    models: ModelSettings = msgspec.field(default_factory=ModelSettings)
    agent: AgentSettings = msgspec.field(default_factory=AgentSettings)
    turn_taking: TurnTakingSettings = msgspec.field(default_factory=TurnTakingSettings)


# Environment variable → (section, field).
ENVIRONMENT: Mapping[str, tuple[str, str]] = {
    "CALLAGENT_HOST": ("network", "host"),
    "CALLAGENT_AUDIOSOCKET_PORT": ("network", "audiosocket_port"),
    "CALLAGENT_HTTP_PORT": ("network", "http_port"),
    "CALLAGENT_MODELS": ("models", "profile"),
    "CALLAGENT_MODELS_DIR": ("models", "models_dir"),
    "CALLAGENT_LLM_THREADS": ("models", "llm_threads"),
    "CALLAGENT_AGENT": ("agent", "file"),
    "CALLAGENT_END_SILENCE_S": ("turn_taking", "end_silence_s"),
}


def load_settings(
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[tuple[str, str], Any] | None = None,
) -> Settings:
    """Merge defaults, config file, environment and overrides into validated settings."""
    raw: dict[str, dict[str, Any]] = {}
    if config_file is not None:
        try:
            loaded = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except OSError as error:
            raise SettingsError(f"cannot read config file {config_file}: {error}") from error
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"config file {config_file} is not valid TOML: {error}") from error
        for section, values in loaded.items():
            if not isinstance(values, dict):
                raise SettingsError(f"config file {config_file}: [{section}] must be a table")
            raw[section] = dict(values)
    for variable, (section, name) in ENVIRONMENT.items():
        value = (environ if environ is not None else os.environ).get(variable)
        if value is not None and value != "":
            raw.setdefault(section, {})[name] = value
    for (section, name), value in (overrides or {}).items():
        if value is not None:
            raw.setdefault(section, {})[name] = value
    try:
        # strict=False lets "9092" from the environment become an int; types are still checked.
        return msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as error:
        raise SettingsError(f"invalid setting: {error}") from error
    except SettingsError:
        raise
