"""Speech detection: a pure state machine on PCM frames (DESIGN.md practice 6).

Each 20 ms frame is classified as speech when webrtcvad says so *and* its level stands above
the line's running noise floor. Speech starts once most of a short window is speech and some
of it is periodic (voiced): that confirms an onset within ~100 ms — the barge-in budget is
150 ms (docs/pipeline.md) — while a cough or a noise burst, which webrtcvad often calls speech but
which has no pitch, does not start a turn or interrupt the agent.
"""

from __future__ import annotations

import collections
import math
from dataclasses import dataclass

import numpy as np
import webrtcvad

from callagent.voice_pipeline.audio import StreamResampler, rms_dbfs
from callagent.voice_pipeline.frames import BYTES_PER_SAMPLE, FRAME_MS, AudioFrame, frame_bytes

WEBRTC_RATES = (8000, 16000, 32000, 48000)


@dataclass(frozen=True, slots=True)
class VadSettings:
    """Tuning of the detector; the defaults were chosen on phone audio (docs/pipeline.md)."""

    aggressiveness: int = 2
    onset_window_ms: int = 120
    onset_speech_ms: int = 100
    onset_voiced_ms: int = 40
    hangover_ms: int = 160
    pre_roll_ms: int = 300
    snr_db: float = 9.0
    min_level_dbfs: float = -50.0
    periodicity_threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.aggressiveness <= 3:
            raise ValueError(f"VAD aggressiveness must be 0..3, got {self.aggressiveness}")
        if self.onset_speech_ms > self.onset_window_ms:
            raise ValueError("onset_speech_ms cannot exceed onset_window_ms")


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Confirmed speech onset. ``audio`` holds the pre-roll and the onset window."""

    onset: float
    confirmed_at: float
    audio: bytes


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """Speech stopped; ``end`` is when the last speech frame ended."""

    end: float


VadEvent = SpeechStarted | SpeechEnded


@dataclass(slots=True)
class _Classified:
    pcm: bytes
    timestamp: float
    speech: bool
    voiced: bool


class VoiceActivityDetector:
    """Turns a stream of audio frames into speech-started / speech-ended events."""

    def __init__(self, sample_rate: int, settings: VadSettings | None = None) -> None:
        self.settings = settings or VadSettings()
        self.sample_rate = sample_rate
        # webrtcvad only knows a few rates; other AudioSocket rates are analysed at 16 kHz.
        self._analysis_rate = sample_rate if sample_rate in WEBRTC_RATES else 16000
        self._to_analysis = StreamResampler(sample_rate, self._analysis_rate)
        self._vad = webrtcvad.Vad(self.settings.aggressiveness)
        self._frame_bytes = frame_bytes(sample_rate)
        self._analysis_bytes = frame_bytes(self._analysis_rate)
        self._carry = b""
        self._analysis_carry = b""
        self._noise_db = -60.0
        self._window: collections.deque[_Classified] = collections.deque(
            maxlen=self.settings.onset_window_ms // FRAME_MS
        )
        self._pre_roll: collections.deque[bytes] = collections.deque(
            maxlen=max(1, self.settings.pre_roll_ms // FRAME_MS)
        )
        self._previous_samples = np.zeros(0, dtype=np.float32)
        self._in_speech = False
        self._silent_frames = 0
        self._last_speech_end = 0.0

    @property
    def in_speech(self) -> bool:
        """True between a confirmed onset and the end of the hang-over."""
        return self._in_speech

    @property
    def noise_floor_dbfs(self) -> float:
        """The running estimate of the line's background level."""
        return self._noise_db

    def reset(self) -> None:
        """Forget the current utterance (keeps the noise floor, which belongs to the line)."""
        self._window.clear()
        self._in_speech = False
        self._silent_frames = 0

    def process(self, frame: AudioFrame) -> VadEvent | None:
        """Feed one frame (any length); returns an event when the state changes."""
        if frame.sample_rate != self.sample_rate:
            raise ValueError(
                f"VAD was set up for {self.sample_rate} Hz, got a {frame.sample_rate} Hz frame"
            )
        data = self._carry + frame.pcm
        event: VadEvent | None = None
        offset = 0
        # Asterisk's last frame of a file can be short: re-chunk to exact 20 ms frames.
        while len(data) - offset >= self._frame_bytes:
            chunk = data[offset : offset + self._frame_bytes]
            # The chunk's time: the frame's timestamp minus the carried-over part.
            carried = len(self._carry) / (BYTES_PER_SAMPLE * self.sample_rate)
            start = frame.timestamp - carried + offset / (BYTES_PER_SAMPLE * self.sample_rate)
            offset += self._frame_bytes
            new_event = self._process_chunk(chunk, start)
            if new_event is not None:
                event = new_event
        self._carry = data[offset:]
        return event

    def _process_chunk(self, pcm: bytes, timestamp: float) -> VadEvent | None:
        classified = self._classify(pcm, timestamp)
        s = self.settings
        if not self._in_speech:
            self._window.append(classified)
            speech_frames = sum(1 for c in self._window if c.speech)
            voiced_frames = sum(1 for c in self._window if c.voiced)
            if (
                speech_frames * FRAME_MS >= s.onset_speech_ms
                and voiced_frames * FRAME_MS >= s.onset_voiced_ms
            ):
                self._in_speech = True
                self._silent_frames = 0
                onset = next(c.timestamp for c in self._window if c.speech)
                audio = b"".join(self._pre_roll) + b"".join(c.pcm for c in self._window)
                self._pre_roll.clear()
                self._window.clear()
                return SpeechStarted(
                    onset=onset, confirmed_at=timestamp + FRAME_MS / 1000, audio=audio
                )
            if len(self._window) == self._window.maxlen:
                self._pre_roll.append(self._window[0].pcm)
            return None
        if classified.speech:
            self._silent_frames = 0
            self._last_speech_end = timestamp + FRAME_MS / 1000
            return None
        self._silent_frames += 1
        if self._silent_frames * FRAME_MS >= s.hangover_ms:
            self._in_speech = False
            self._silent_frames = 0
            return SpeechEnded(end=self._last_speech_end)
        return None

    def _classify(self, pcm: bytes, timestamp: float) -> _Classified:
        level = rms_dbfs(pcm)
        s = self.settings
        loud_enough = level > max(self._noise_db + s.snr_db, s.min_level_dbfs)
        analysis = self._analysis_carry + self._to_analysis.process(pcm)
        vad_says = False
        # The resampler may hold a few samples back; classify whole analysis frames only.
        if len(analysis) >= self._analysis_bytes:
            vad_says = self._vad.is_speech(analysis[: self._analysis_bytes], self._analysis_rate)
            analysis = analysis[self._analysis_bytes :]
        self._analysis_carry = analysis[-self._analysis_bytes * 2 :]
        speech = loud_enough and vad_says
        voiced = speech and self._periodicity(pcm) >= s.periodicity_threshold
        if not speech and not self._in_speech:
            self._track_noise(level)
        if self._in_speech and speech:
            self._last_speech_end = timestamp + FRAME_MS / 1000
        return _Classified(pcm=pcm, timestamp=timestamp, speech=speech, voiced=voiced)

    def _track_noise(self, level: float) -> None:
        if math.isinf(level):
            return
        # Fall fast, rise slowly: the floor follows quiet stretches, not the caller's voice.
        alpha = 0.3 if level < self._noise_db else 0.02
        self._noise_db += alpha * (level - self._noise_db)

    def _periodicity(self, pcm: bytes) -> float:
        """Peak normalised autocorrelation in the 60–400 Hz pitch range (0 = noise, 1 = tone)."""
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
        window = np.concatenate([self._previous_samples, samples])
        self._previous_samples = samples
        window = window - window.mean()
        min_lag = self.sample_rate // 400
        max_lag = min(self.sample_rate // 60, len(window) // 2)
        n = len(window)
        spectrum = np.fft.rfft(window, 2 * n)
        autocorr = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
        if autocorr[0] <= 0.0 or max_lag <= min_lag:
            return 0.0
        lags = np.arange(min_lag, max_lag)
        # Unbiased estimate: a lag of L only overlaps n - L samples.
        normalised = autocorr[lags] / autocorr[0] * n / (n - lags)
        return float(normalised.max())
