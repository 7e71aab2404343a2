"""End-of-turn policy: when has the caller finished speaking?

Kept apart from the VAD so the policy can change (or become a model) without touching speech
detection, and so tests drive it with an injected clock (DESIGN.md practice 6).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TurnSettings:
    """How long a pause ends the caller's turn, and the longest turn we wait for."""

    end_silence_s: float = 0.45
    max_turn_s: float = 30.0

    def __post_init__(self) -> None:
        if self.end_silence_s <= 0:
            raise ValueError(f"end_silence_s must be positive, got {self.end_silence_s}")


class EndOfTurnPolicy:
    """Decides the end of a caller turn from speech start/end times and the clock."""

    def __init__(self, settings: TurnSettings | None = None) -> None:
        self.settings = settings or TurnSettings()
        self._turn_started: float | None = None
        self._speech_ended: float | None = None
        self._speaking = False

    @property
    def turn_open(self) -> bool:
        """True while a caller turn has begun and not yet been closed."""
        return self._turn_started is not None

    def speech_started(self, onset: float) -> None:
        """The caller started (or resumed) speaking."""
        if self._turn_started is None:
            self._turn_started = onset
        self._speaking = True
        self._speech_ended = None

    def speech_ended(self, end: float) -> None:
        """The caller stopped speaking at ``end``."""
        self._speaking = False
        self._speech_ended = end

    def turn_complete(self, now: float) -> bool:
        """True once the pause after the caller's speech is long enough (or the turn too long)."""
        if self._turn_started is None:
            return False
        if now - self._turn_started >= self.settings.max_turn_s:
            return True
        return (
            not self._speaking
            and self._speech_ended is not None
            and now - self._speech_ended >= self.settings.end_silence_s
        )

    @property
    def speech_end(self) -> float | None:
        """When the caller's last speech ended, if it has."""
        return self._speech_ended

    def reset(self) -> None:
        """Start waiting for a new turn."""
        self._turn_started = None
        self._speech_ended = None
        self._speaking = False
