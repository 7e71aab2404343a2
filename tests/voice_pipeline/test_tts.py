"""Piper, the real voice of the ``ci`` profile: it speaks at its own rate, and Whisper hears the
words on a phone line."""

from __future__ import annotations

import pytest

from callagent.modelfiles import ModelProfile
from callagent.voice_pipeline.audio import resample, rms_dbfs
from callagent.voice_pipeline.stt import WhisperSpeechToText
from callagent.voice_pipeline.tts import PiperTextToSpeech

from helpers.voices import word_set

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
