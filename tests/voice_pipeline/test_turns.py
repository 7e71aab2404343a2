"""The end-of-turn policy: a complete sentence ends the turn after a short pause, an unfinished
one ("and…", "um", a number being dictated) waits longer - on a fake clock (DESIGN.md practice
6) - and, with the real Whisper of the ``ci`` profile, a caller pausing after "and" is not cut
off."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from callagent.modelfiles import ModelProfile
from callagent.voice_pipeline.frames import AudioFrame, frame_bytes
from callagent.voice_pipeline.stt import WhisperSpeechToText
from callagent.voice_pipeline.turns import EndOfTurnPolicy, TurnSettings, WordsSay, judge_words
from callagent.voice_pipeline.vad import SpeechEnded, SpeechStarted, VoiceActivityDetector

from helpers.voices import flite_available

SETTINGS = TurnSettings(
    end_silence_s=0.45, complete_silence_s=0.25, incomplete_silence_s=1.5, use_words=True
)


@pytest.mark.parametrize(
    "text",
    [
        "Can I pay for it monthly?",
        "Where would the installer park?",
        "Who is this call from?",
        "We'd rather wait until the summer.",
        "Sure.",
        "Um, no thank you.",
        "I think so.",
    ],
)
def test_questions_answers_and_finished_sentences_are_complete(text: str) -> None:
    assert judge_words(text) is WordsSay.COMPLETE


@pytest.mark.parametrize(
    "text",
    [
        "I'd like the bigger battery and",
        "We were going to call you but",
        "Um.",
        "Hmm...",
        "",  # speech Whisper found no words in: a hesitation sound
        "My policy number is 3 3 8",
        "It's oh seven seven, double four",
        "I wanted to ask about the",
        "The thing is",
        "Is there a fee for?",  # a yes/no question cannot end on its preposition
    ],
)
def test_trailing_conjunctions_fillers_and_dictated_numbers_are_incomplete(text: str) -> None:
    assert judge_words(text) is WordsSay.INCOMPLETE


def test_a_whole_phone_number_is_no_longer_being_dictated() -> None:
    assert judge_words("You can reach me on 555 867 5309.") is WordsSay.COMPLETE


def paused(policy: EndOfTurnPolicy, at: float) -> None:
    """The caller spoke from 0 s until ``at`` and fell silent."""
    policy.speech_started(0.0)
    policy.speech_ended(at)


def first_end(policy: EndOfTurnPolicy, start: float, until: float) -> float | None:
    """The first 10 ms tick in [start, until] at which the policy ends the turn."""
    tick = start
    while tick <= until + 1e-9:
        if policy.turn_complete(round(tick, 3)):
            return round(tick, 3)
        tick += 0.01
    return None


def test_a_complete_question_ends_the_turn_after_the_short_pause() -> None:
    policy = EndOfTurnPolicy(SETTINGS)
    paused(policy, 2.0)
    # Until its words are known, the turn stays open: the answer needs them anyway.
    assert first_end(policy, 2.0, 2.2) is None
    assert policy.words_heard("Can I pay for it monthly?", 2.0) is WordsSay.COMPLETE
    assert first_end(policy, 2.2, 3.0) == 2.25
    assert policy.text == "Can I pay for it monthly?"  # the turn's transcript, ready


def test_a_trailing_and_keeps_the_turn_open_through_a_long_pause() -> None:
    policy = EndOfTurnPolicy(SETTINGS)
    paused(policy, 2.0)
    policy.words_heard("I'd like the bigger battery and", 2.0)
    assert first_end(policy, 2.0, 3.4) is None  # far past the old 0.45 s pause
    assert first_end(policy, 3.4, 4.0) == 3.5


def test_words_that_say_nothing_either_way_end_the_turn_after_the_default_pause() -> None:
    policy = EndOfTurnPolicy(SETTINGS)
    paused(policy, 2.0)
    policy.words_heard("not interested", 2.0)
    assert first_end(policy, 2.0, 3.0) == 2.45


def test_a_failed_transcription_falls_back_to_the_default_pause() -> None:
    policy = EndOfTurnPolicy(SETTINGS)
    paused(policy, 2.0)
    assert policy.words_heard(None, 2.0) is WordsSay.UNSURE
    assert first_end(policy, 2.0, 3.0) == 2.45


def test_words_that_never_come_end_the_turn_after_the_longest_pause() -> None:
    policy = EndOfTurnPolicy(SETTINGS)
    paused(policy, 2.0)
    assert first_end(policy, 2.0, 4.0) == 3.5


def test_words_of_an_earlier_pause_are_ignored_once_the_caller_went_on() -> None:
    policy = EndOfTurnPolicy(SETTINGS)
    paused(policy, 1.0)
    policy.speech_started(1.3)  # the caller resumed before the words of the pause came
    assert policy.words_heard("Sure.", 1.0) is None
    policy.speech_ended(2.0)
    assert policy.words_heard("Sure.", 1.0) is None  # still another pause's words
    assert first_end(policy, 2.0, 2.5) is None
    policy.words_heard("Sure, and", 2.0)
    assert first_end(policy, 2.0, 3.4) is None


def test_resuming_speech_keeps_the_turn_open_whatever_the_words_said() -> None:
    policy = EndOfTurnPolicy(SETTINGS)
    paused(policy, 1.0)
    policy.words_heard("Yes.", 1.0)
    policy.speech_started(1.2)
    assert first_end(policy, 1.2, 5.0) is None
    assert policy.words is None


def test_without_words_every_pause_is_the_fixed_one() -> None:
    policy = EndOfTurnPolicy(TurnSettings(end_silence_s=0.45, use_words=False))
    paused(policy, 2.0)
    policy.words_heard("I'd like the bigger battery and", 2.0)
    assert first_end(policy, 2.0, 3.0) == 2.45


def test_a_turn_that_goes_on_too_long_is_ended() -> None:
    policy = EndOfTurnPolicy(TurnSettings(max_turn_s=10.0))
    policy.speech_started(0.0)
    assert not policy.turn_complete(9.99)
    assert policy.turn_complete(10.0)


@pytest.mark.parametrize("name", ["end_silence_s", "complete_silence_s", "incomplete_silence_s"])
def test_a_pause_that_is_not_positive_is_refused_by_name(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        TurnSettings(**{name: 0.0})


# --- real Whisper -----------------------------------------------------------------------------

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data" / "turn_ends"))


@pytest.mark.real_models
@pytest.mark.skipif(
    not flite_available() and not os.environ.get("CI"), reason="needs Debian's flite"
)
async def test_with_real_whisper_a_pause_after_and_inside_a_turn_does_not_end_it(
    ci_models: ModelProfile, tmp_path: Path
) -> None:
    """A flite voice over a µ-law line says "… panels on the garage and", pauses 0.9 s -
    twice the old fixed pause - and goes on. The real VAD finds the pause, the real tiny.en
    transcribes the turn so far, and the policy, given the words at once (the earliest they
    could come), keeps the turn open until the caller goes on; it then ends after the end."""
    from generate import RATE, render

    turn = render(
        {
            "id": "test",
            "voice": "slt",
            "split": "tune",
            "segments": ["I'd like two panels on the garage and", "one more on the shed."],
            "pauses_ms": [900],
        },
        tmp_path,
    )
    stt = WhisperSpeechToText(ci_models.stt_dir)
    vad = VoiceActivityDetector(RATE)
    policy = EndOfTurnPolicy(SETTINGS)
    size = frame_bytes(RATE)
    utterance = bytearray()
    judged: list[tuple[str, WordsSay]] = []
    ended_at = None
    for i in range(0, len(turn.pcm) - size + 1, size):
        now = i / 2 / RATE + 0.02
        event = vad.process(AudioFrame(turn.pcm[i : i + size], RATE, now - 0.02))
        if isinstance(event, SpeechStarted):
            policy.speech_started(event.onset)
            utterance += event.audio
        elif policy.turn_open:
            utterance += turn.pcm[i : i + size]
        if isinstance(event, SpeechEnded):
            policy.speech_ended(event.end)
            transcript = await stt.transcribe(bytes(utterance), RATE)
            words = policy.words_heard(transcript.text, event.end)
            assert words is not None
            judged.append((transcript.text, words))
        if policy.turn_complete(now):
            ended_at = now
            break
    assert judged, "the VAD found no pause"
    assert judged[0][1] is WordsSay.INCOMPLETE, judged
    assert ended_at is not None, judged
    assert ended_at > turn.turn_end, (ended_at, turn.speech, judged)
    assert "shed" in judged[-1][0].lower()
