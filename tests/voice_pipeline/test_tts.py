"""The real voices of the ``ci`` profile: Piper joe speaks at its own rate and Whisper hears the
words on a phone line; the female voice (hibari heart) is really another voice, heard as well;
the voice library loads each voice once (docs/models.md, "Voices")."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callagent.modelfiles import ModelProfile, installed_voices
from callagent.voice_pipeline.audio import resample, rms_dbfs
from callagent.voice_pipeline.stt import WhisperSpeechToText
from callagent.voice_pipeline.tts import PiperTextToSpeech, TextToSpeech, VoiceFiles, VoiceLibrary

from helpers.pitch import median_pitch_hz
from helpers.voices import word_set

MODELS = Path(__file__).resolve().parents[2] / "models"

pytestmark = pytest.mark.real_models


@pytest.fixture(scope="module")
def stt(ci_models: ModelProfile) -> WhisperSpeechToText:
    return WhisperSpeechToText(ci_models.stt_dir)


@pytest.fixture(scope="module")
def tts(ci_models: ModelProfile) -> PiperTextToSpeech:
    return PiperTextToSpeech(ci_models.tts_model, ci_models.tts_config)


async def test_piper_speaks_at_its_own_rate_and_whisper_hears_the_words(
    tts: PiperTextToSpeech, stt: WhisperSpeechToText
) -> None:
    assert tts.sample_rate == 22050
    chunks = [c async for c in tts.synthesize("Our panels come with a twenty five year warranty.")]
    pcm = b"".join(chunks)
    seconds = len(pcm) / 2 / tts.sample_rate
    assert 1.5 < seconds < 6
    assert rms_dbfs(pcm) > -30
    phone = resample(pcm, tts.sample_rate, 8000)
    transcript = await stt.transcribe(phone, 8000)
    assert {"panels", "warranty"} <= word_set(transcript.text), transcript


GREETING = "Hello, this is Anna from Brightline Solar. How can I help you today?"


def voice_library(default: PiperTextToSpeech) -> VoiceLibrary:
    """Every voice installed for ``ci`` (docs/models.md, "Voices"), joe (``default``) loaded."""
    catalog = installed_voices(MODELS, "ci")
    files = [
        VoiceFiles(v.name, v.engine, v.model_path, v.config_path, v.aliases) for v in catalog.voices
    ]
    return VoiceLibrary(files, default, default_name=catalog.default)


async def _phone(tts: TextToSpeech, text: str) -> bytes:
    pcm = b"".join([chunk async for chunk in tts.synthesize(text)])
    return resample(pcm, tts.sample_rate, 8000)


async def test_the_two_voices_differ_and_whisper_hears_each_on_a_phone_line(
    tts: PiperTextToSpeech, stt: WhisperSpeechToText
) -> None:
    library = voice_library(tts)
    joe = await library.tts_for("joe")
    heart = await library.tts_for("heart")
    assert (joe.sample_rate, heart.sample_rate) == (22050, 24000)
    joe_pcm, heart_pcm = await _phone(joe, GREETING), await _phone(heart, GREETING)
    # A male and a female voice, an octave apart (measured: joe ~100 Hz, heart ~200 Hz).
    assert median_pitch_hz(joe_pcm, 8000) < 150
    assert median_pitch_hz(heart_pcm, 8000) > 170
    for pcm in (joe_pcm, heart_pcm):
        assert rms_dbfs(pcm) > -30
        transcript = await stt.transcribe(pcm, 8000)
        assert {"anna", "brightline", "solar", "help"} <= word_set(transcript.text), transcript


async def test_each_voice_loads_once_and_unknown_ones_get_the_default(
    tts: PiperTextToSpeech,
) -> None:
    library = voice_library(tts)
    assert library.names == ["en_US-joe-medium", "en_US-heart-hibari"]
    assert library.loads == 0
    # Two calls of the same agent start at once: one load, one engine.
    first, second = await asyncio.gather(
        library.tts_for("en_US-heart-hibari"), library.tts_for("HEART")
    )
    assert first is second
    assert await library.tts_for("heart") is first
    assert library.loads == 1
    # The default voice is the engine loaded at start, never a second copy.
    assert await library.tts_for("joe") is tts
    assert await library.tts_for("") is tts
    # A voice removed after an agent chose it: the call is still answered, by the default.
    assert await library.tts_for("en_US-lessac-medium") is tts
    assert library.loads == 1
