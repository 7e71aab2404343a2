"""faster-whisper, the real model of the ``ci`` profile: it hears a phone line, and invents
nothing on silence or line noise."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from callagent.app.audio_files import read_caller_audio
from callagent.modelfiles import ModelProfile
from callagent.voice_pipeline.stt import WhisperSpeechToText

from helpers.audio import noise, silence
from helpers.voices import flite_available, flite_phone_wav, word_set

pytestmark = pytest.mark.real_models


@pytest.fixture(scope="module")
def stt(ci_models: ModelProfile) -> WhisperSpeechToText:
    return WhisperSpeechToText(ci_models.stt_dir)


@pytest.mark.skipif(
    not flite_available() and not os.environ.get("CI"), reason="needs Debian's flite"
)
async def test_whisper_understands_another_voice_over_a_mu_law_phone_line(
    stt: WhisperSpeechToText, tmp_path: Path
) -> None:
    wav = flite_phone_wav(
        "I would like to book a site survey for next Tuesday morning.", tmp_path / "c.wav"
    )
    transcript = await stt.transcribe(read_caller_audio(wav, 8000), 8000)
    assert {"book", "survey", "tuesday", "morning"} <= word_set(transcript.text), transcript


@pytest.mark.parametrize("sound", [silence(2.0), noise(2.0, level=0.02)])
async def test_whisper_invents_nothing_on_silence_or_line_noise(
    stt: WhisperSpeechToText, sound: bytes
) -> None:
    transcript = await stt.transcribe(sound, 8000)
    assert len(word_set(transcript.text)) <= 1, transcript
