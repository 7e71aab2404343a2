"""Speech detection on synthetic voice, noise and coughs."""

from __future__ import annotations

import pytest

from callagent.voice_pipeline.frames import AudioFrame
from callagent.voice_pipeline.vad import (
    SpeechEnded,
    SpeechStarted,
    VadSettings,
    VoiceActivityDetector,
)

from helpers.audio import cough, frames, noise, silence, voice


def run(pcm: bytes, rate: int = 8000, frame_ms: int = 20) -> list[tuple[float, object]]:
    vad = VoiceActivityDetector(rate)
    events: list[tuple[float, object]] = []
    t = 0.0
    for frame in frames(pcm, rate, frame_ms):
        event = vad.process(AudioFrame(frame, rate, t))
        if event is not None:
            events.append((t, event))
        t += len(frame) / (2 * rate)
    return events


@pytest.mark.parametrize("rate", [8000, 16000])
def test_speech_onset_is_confirmed_within_100_ms_and_its_end_found(rate: int) -> None:
    events = run(silence(0.5, rate) + voice(1.0, rate) + silence(0.6, rate), rate)
    (_, started), (_, ended) = events
    assert isinstance(started, SpeechStarted)
    assert started.onset == pytest.approx(0.5, abs=0.021)
    assert started.confirmed_at - started.onset <= 0.1 + 1e-9
    assert isinstance(ended, SpeechEnded)
    assert ended.end == pytest.approx(1.5, abs=0.041)


def test_started_event_carries_pre_roll_so_the_first_syllable_is_not_lost() -> None:
    (_, started), *_ = run(silence(0.5) + voice(1.0) + silence(0.5))
    assert isinstance(started, SpeechStarted)
    # 300 ms of pre-roll before the 100 ms onset window.
    assert len(started.audio) >= int(0.4 * 8000) * 2 - 640


@pytest.mark.parametrize(
    "sound", [cough(0.4), noise(2.0), noise(2.0, level=0.3), silence(2.0), voice(0.06)]
)
def test_noise_coughs_and_clicks_are_not_speech(sound: bytes) -> None:
    assert run(silence(0.3) + sound + silence(0.5)) == []


def test_short_frames_are_rechunked() -> None:
    # Asterisk's last frame of a file can be short: 10 ms frames must work the same.
    events = run(silence(0.5) + voice(1.0) + silence(0.6), frame_ms=10)
    assert [type(e).__name__ for _, e in events] == ["SpeechStarted", "SpeechEnded"]


def test_wideband_rates_webrtcvad_lacks_are_analysed_at_16_khz() -> None:
    events = run(silence(0.5, 24000) + voice(1.0, 24000) + silence(0.6, 24000), 24000)
    assert [type(e).__name__ for _, e in events] == ["SpeechStarted", "SpeechEnded"]


def test_a_frame_at_the_wrong_rate_is_refused() -> None:
    vad = VoiceActivityDetector(8000)
    with pytest.raises(ValueError, match="16000 Hz frame"):
        vad.process(AudioFrame(bytes(640), 16000, 0.0))


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="aggressiveness"):
        VadSettings(aggressiveness=5)
