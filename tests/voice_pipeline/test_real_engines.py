"""The real speech models of the ``ci`` profile: faster-whisper and Piper."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from callagent.app.audio_files import read_caller_audio
from callagent.modelfiles import ModelProfile
from callagent.voice_pipeline.audio import resample, rms_dbfs
from callagent.voice_pipeline.stt import WhisperSpeechToText
from callagent.voice_pipeline.tts import PiperTextToSpeech

from helpers.audio import noise, silence
from helpers.voices import flite_available, flite_phone_wav, word_set

pytestmark = pytest.mark.real_models


@pytest.fixture(scope="module")
def stt(ci_models: ModelProfile) -> WhisperSpeechToText:
    return WhisperSpeechToText(ci_models.stt_dir)


@pytest.fixture(scope="module")
def tts(ci_models: ModelProfile) -> PiperTextToSpeech:
    return PiperTextToSpeech(ci_models.tts_model, ci_models.tts_config)


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
