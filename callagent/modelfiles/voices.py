"""The voices an agent can speak with: the manifest's ``tts`` models whose files are installed.

A voice is named after its ``.onnx`` file (``en_US-joe-medium``, Piper's own naming: language,
speaker, quality) and answers to its speaker's name too (``joe``) and to its manifest model name
(``piper-joe-medium``), in any case. An agent's ``voice_model`` names one of them; empty means
the profile's ``tts`` model, the default voice (docs/models.md, "Voices"; docs/api.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from callagent.modelfiles.manifest import ModelSpec, load_manifest, voice_name

# The hibari engine speaks at one rate (hibari.dsp.SR); Piper voices say theirs in the config.
HIBARI_SAMPLE_RATE = 24_000


@dataclass(frozen=True)
class Voice:
    """One installed voice: its names, its engine and the files the engine loads."""

    name: str
    """The name a user picks it by, e.g. ``en_US-joe-medium``."""
    speaker: str
    """The short name it also answers to, e.g. ``joe``."""
    model: str
    """The manifest's model name, e.g. ``piper-joe-medium``."""
    engine: str
    model_path: Path
    config_path: Path | None
    size: int
    """Bytes on disk, all files."""
    sample_rate: int
    license: str = ""
    description: str = ""

    @property
    def aliases(self) -> tuple[str, ...]:
        """Every name that picks this voice (compared without regard to case)."""
        return (self.name, self.speaker, self.model)


@dataclass(frozen=True)
class VoiceCatalog:
    """The installed voices and the default one (the profile's ``tts`` model)."""

    voices: tuple[Voice, ...]
    default: str
    """The default voice's name; empty when the default voice is not installed."""

    def find(self, choice: str) -> Voice | None:
        """The voice ``choice`` names (any alias, any case), or None."""
        wanted = choice.strip().lower()
        for voice in self.voices:
            if wanted in (alias.lower() for alias in voice.aliases):
                return voice
        return None

    def canonical(self, choice: str) -> str | None:
        """The name of the voice ``choice`` names, or None: what an agent's setup stores."""
        voice = self.find(choice)
        return None if voice is None else voice.name

    def describe(self) -> str:
        """``en_US-joe-medium (joe, default), en_US-heart-hibari (heart)``: for messages."""
        if not self.voices:
            return "none"
        return ", ".join(
            f"{v.name} ({v.speaker}{', default' if v.name == self.default else ''})"
            for v in self.voices
        )


def installed_voices(
    models_dir: Path, profile: str, *, manifest_path: Path | None = None
) -> VoiceCatalog:
    """Every ``tts`` model of the manifest whose files are in ``models_dir`` with the size the
    manifest says (a stat() each; the sha256 is checked at start-up for the profile's files),
    in manifest order, with ``profile``'s ``tts`` model as the default."""
    manifest = load_manifest(models_dir, manifest_path=manifest_path)
    default_model = manifest.profile(profile)["tts"]
    voices = tuple(
        voice
        for model in manifest.models.values()
        if model.kind == "tts" and _present(model, models_dir)
        if (voice := _voice(model, models_dir)) is not None
    )
    default = next((v.name for v in voices if v.model == default_model), "")
    return VoiceCatalog(voices, default)


def _present(model: ModelSpec, models_dir: Path) -> bool:
    for spec in model.files:
        try:
            if (models_dir / spec.path).stat().st_size != spec.size:
                return False
        except OSError:
            return False
    return True


def _voice(model: ModelSpec, models_dir: Path) -> Voice | None:
    """The voice of ``model``, or None when its Piper config cannot be read (a broken voice is
    not offered: it could not speak)."""
    name = voice_name(model)
    onnx = next(spec for spec in model.files if spec.path.endswith(".onnx"))
    config = next((spec for spec in model.files if spec.path.endswith(".json")), None)
    config_path = models_dir / config.path if config is not None else None
    if model.engine == "hibari" or config_path is None:
        rate = HIBARI_SAMPLE_RATE
    else:
        try:
            config_data = json.loads(config_path.read_text(encoding="utf-8"))
            rate = int(config_data["audio"]["sample_rate"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
    parts = name.split("-")
    return Voice(
        name=name,
        speaker=parts[1] if len(parts) >= 3 else name,
        model=model.name,
        engine=model.engine,
        model_path=models_dir / onnx.path,
        config_path=config_path,
        size=sum(spec.size for spec in model.files),
        sample_rate=rate,
        license=model.license,
        description=model.description,
    )
