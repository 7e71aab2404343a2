"""The node's Prometheus metrics (docs/metrics.md): what a turn, a barge-in, a late frame, an
ended or refused call adds, read back through prometheus-client's own parser."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from callagent.telephony.admission import AtCapacity, CallAdmission
from callagent.telephony.asterisk.call_tracker import DialOutcome, OriginateResult
from callagent.telephony.metrics import CallMetrics, FrameGaps
from callagent.voice_pipeline.pipeline import BargeIn, TurnRecord


def samples(metrics: CallMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, by name and labels."""
    text = metrics.exposition().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_turn_adds_each_stage_and_voice_to_voice() -> None:
    metrics = CallMetrics()
    record = TurnRecord(
        caller_text="hi",
        agent_text="hello",
        speech_end=10.0,
        turn_end=10.45,
        transcript_at=10.6,
        first_token_at=10.8,
        first_audio_at=11.0,
        first_frame_at=11.02,
    )
    metrics.turn_finished(record)
    metrics.turn_finished(record)
    got = samples(metrics)
    for stage, seconds in [
        ("end_of_turn", 0.45),
        ("stt", 0.15),
        ("llm_first_token", 0.2),
        ("tts_first_audio", 0.2),
        ("wire", 0.02),
    ]:
        assert got[("callagent_turn_stage_seconds_count", (("stage", stage),))] == 2
        total = got[("callagent_turn_stage_seconds_sum", (("stage", stage),))]
        assert abs(total - 2 * seconds) < 1e-3, stage
    assert got[("callagent_voice_to_voice_seconds_count", ())] == 2
    assert abs(got[("callagent_voice_to_voice_seconds_sum", ())] - 2.04) < 1e-3
    # 1.02 s is in the 1.5 s bucket and not the 1 s one.
    assert got[("callagent_voice_to_voice_seconds_bucket", (("le", "1.0"),))] == 0
    assert got[("callagent_voice_to_voice_seconds_bucket", (("le", "1.5"),))] == 2


def test_a_turn_that_never_reached_the_wire_counts_only_the_stages_it_reached() -> None:
    metrics = CallMetrics()
    metrics.turn_finished(TurnRecord(speech_end=1.0, turn_end=1.45, transcript_at=1.6))
    got = samples(metrics)
    assert got[("callagent_turn_stage_seconds_count", (("stage", "stt"),))] == 1
    assert ("callagent_turn_stage_seconds_count", (("stage", "wire"),)) not in got
    assert got[("callagent_voice_to_voice_seconds_count", ())] == 0


def test_barge_ins_late_frames_and_ended_calls_are_counted() -> None:
    metrics = CallMetrics()
    metrics.barge_in(BargeIn(onset=5.0, stopped_at=5.12, heard_text="Sure"))
    gaps = FrameGaps(metrics)
    for at in (0.0, 0.02, 0.04, 0.06, 0.16, 0.18):  # one stall: 100 ms, 4 slots without audio
        gaps.sent(at)
    metrics.call_ended("completed")
    metrics.call_ended("refused")
    metrics.on_call_event(OriginateResult(uuid.uuid4(), DialOutcome.BUSY, reason=0, cause=17))
    metrics.on_call_event(OriginateResult(uuid.uuid4(), DialOutcome.ANSWERED))
    got = samples(metrics)
    assert got[("callagent_barge_ins_total", ())] == 1
    assert abs(got[("callagent_barge_in_stop_seconds_sum", ())] - 0.12) < 1e-6
    assert got[("callagent_outbound_frame_gap_seconds_count", ())] == 5
    assert got[("callagent_outbound_frames_late_total", ())] == 1
    assert got[("callagent_outbound_slots_missed_total", ())] == 4
    assert got[("callagent_calls_total", (("outcome", "completed"),))] == 1
    assert got[("callagent_calls_total", (("outcome", "refused"),))] == 1
    assert got[("callagent_calls_total", (("outcome", "not_answered_busy"),))] == 1
    assert ("callagent_calls_total", (("outcome", "not_answered_answered"),)) not in got


def test_the_admission_is_read_when_scraped() -> None:
    metrics = CallMetrics()
    admission = CallAdmission(1)
    metrics.watch_admission(admission)
    got = samples(metrics)
    assert got[("callagent_call_capacity", ())] == 1
    assert got[("callagent_active_calls", ())] == 0
    admission.admit(uuid.uuid4(), "audiosocket")
    admission.admit(uuid.uuid4(), "sip")
    with pytest.raises(AtCapacity):
        admission.reserve()
    got = samples(metrics)
    assert got[("callagent_active_calls", ())] == 1
    assert got[("callagent_calls_refused_total", (("via", "sip"),))] == 1
    assert got[("callagent_calls_refused_total", (("via", "start_call"),))] == 1
    assert got[("callagent_calls_refused_total", (("via", "audiosocket"),))] == 0


def test_two_nodes_in_one_process_keep_their_own_counts() -> None:
    first, second = CallMetrics(), CallMetrics()
    first.call_ended("completed")
    assert samples(first)[("callagent_calls_total", (("outcome", "completed"),))] == 1
    assert ("callagent_calls_total", (("outcome", "completed"),)) not in samples(second)
