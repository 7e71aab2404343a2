"""Prometheus metrics of one node's calls, served at ``GET /metrics`` (docs/metrics.md).

:class:`CallMetrics` owns a registry of its own (not prometheus-client's global one), so two
nodes - or two tests - in one process never share counts. The call runner feeds it: every
finished turn's stage timings (DESIGN.md "Contracts": speech end → transcript → first LLM token
→ first TTS audio → first frame), barge-ins, the gaps between the agent's frames on the wire,
and how each call ended. The admission's counts (active, capacity, refused) are read when
Prometheus scrapes (:meth:`CallMetrics.watch_admission`). No label carries a client, agent,
number or call id: the figures are the node's, and stay coarse.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from callagent.telephony.admission import CallAdmission
from callagent.telephony.asterisk.call_tracker import CallEvent, DialOutcome, OriginateResult
from callagent.voice_pipeline.frames import FRAME_MS
from callagent.voice_pipeline.pipeline import BargeIn, TurnRecord

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus' text exposition format."""

STAGES: Final = ("end_of_turn", "stt", "llm_first_token", "tts_first_audio", "wire")
"""The stages of ``TurnRecord.latency_ms`` (docs/pipeline.md "Latency accounting")."""

LATENCY_BUCKETS: Final = (
    0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 20.0,
)  # fmt: skip
"""Seconds: a warm stage takes tens of ms, a whole answer ~1 s, an overloaded node 5-10 s."""

GAP_BUCKETS: Final = (0.015, 0.02, 0.025, 0.03, 0.04, 0.06, 0.1, 0.25, 1.0)
"""Seconds between two agent frames: 20 ms when paced; 45 ms at p99 was measured with 4
calls on 2 cores, where pacing broke."""

LATE_GAP_S: Final = 0.04
"""A frame later than this after the one before left the caller without audio for a whole
frame: Asterisk plays what arrives at once and buffers nothing (DESIGN.md "Contracts")."""


class _AdmissionCollector(Collector):
    """Reads the admission's counts when Prometheus scrapes."""

    def __init__(self, admission: CallAdmission) -> None:
        self._admission = admission

    def collect(self) -> Iterator[Metric]:
        admission = self._admission
        yield GaugeMetricFamily(
            "callagent_active_calls", "Calls connected and admitted on this node", admission.active
        )
        yield GaugeMetricFamily(
            "callagent_call_capacity",
            "Most calls this node takes at once (routing.max_active_calls)",
            admission.capacity,
        )
        yield GaugeMetricFamily(
            "callagent_reserved_calls", "Slots held for calls start-call is placing",
            admission.reserved,
        )  # fmt: skip
        refused = CounterMetricFamily(
            "callagent_calls_refused",
            "Calls turned away because the node was at capacity, by how they came",
            labels=["via"],
        )
        for via in ("audiosocket", "sip", "start_call"):
            refused.add_metric([via], admission.refused[via])
        yield refused

    def describe(self) -> Iterator[Metric]:
        return iter(())  # collected at scrape time only


class FrameGaps:
    """Times the gaps between one call's outbound frames (one per call)."""

    def __init__(self, metrics: CallMetrics) -> None:
        self._metrics = metrics
        self._last: float | None = None

    def sent(self, at: float) -> None:
        """An agent frame left at ``at`` (the pipeline's clock, seconds)."""
        if self._last is not None:
            self._metrics.frame_gap(at - self._last)
        self._last = at


class CallMetrics:
    """This node's call metrics (see the module docstring). Also a pipeline observer: hand it
    to the call's observers and it records every turn and barge-in."""

    def __init__(self) -> None:
        self.registry: Final = CollectorRegistry(auto_describe=True)
        self._turn = Histogram(
            "callagent_turn_stage_seconds",
            "Duration of each stage of a caller turn (docs/pipeline.md Latency accounting)",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._voice_to_voice = Histogram(
            "callagent_voice_to_voice_seconds",
            "Caller speech end to the agent's first frame on the wire, per turn",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._barge_ins = Counter(
            "callagent_barge_ins", "Times a caller spoke over the agent", registry=self.registry
        )
        self._barge_in_stop = Histogram(
            "callagent_barge_in_stop_seconds",
            "Caller speech onset to the agent's audio stopping",
            buckets=(0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0),
            registry=self.registry,
        )
        self._gaps = Histogram(
            "callagent_outbound_frame_gap_seconds",
            "Time between two agent frames sent to the line (20 ms when paced)",
            buckets=GAP_BUCKETS,
            registry=self.registry,
        )
        self._late = Counter(
            "callagent_outbound_frames_late",
            f"Agent frames sent more than {LATE_GAP_S * 1000:.0f} ms after the one before",
            registry=self.registry,
        )
        self._missed = Counter(
            "callagent_outbound_slots_missed",
            "20 ms slots in which no agent frame went out (the caller heard nothing)",
            registry=self.registry,
        )
        self._calls = Counter(
            "callagent_calls",
            "Calls that ended on this node, by how they ended",
            ["outcome"],
            registry=self.registry,
        )

    def watch_admission(self, admission: CallAdmission) -> None:
        """Expose ``admission``'s counts: active calls, capacity, reservations, refusals."""
        self.registry.register(_AdmissionCollector(admission))

    # --- the pipeline observer ------------------------------------------------------------------

    def turn_finished(self, record: TurnRecord) -> None:
        """Observe the turn's stage durations (those the turn reached)."""
        if record.hung_up:
            return  # the caller's last words, never answered: no stage to measure
        latency = record.latency_ms()
        for stage in STAGES:
            value = latency[stage]
            if value is not None:
                self._turn.labels(stage).observe(value / 1000)
        total = latency["voice_to_voice"]
        if total is not None:
            self._voice_to_voice.observe(total / 1000)

    def barge_in(self, event: BargeIn) -> None:
        """Count the barge-in and how fast the agent stopped."""
        self._barge_ins.inc()
        self._barge_in_stop.observe(event.stop_ms / 1000)

    def agent_spoke(self, text: str) -> None:
        """Nothing to count."""

    # --- the rest of the call ---------------------------------------------------------------

    def frame_gap(self, seconds: float) -> None:
        """Observe one gap between outbound frames."""
        self._gaps.observe(seconds)
        if seconds > LATE_GAP_S:
            self._late.inc()
            self._missed.inc(round(seconds * 1000 / FRAME_MS) - 1)

    def call_ended(self, outcome: str) -> None:
        """A call on this node ended: ``completed``, ``failed`` (the handler broke) or
        ``refused`` (at capacity: it heard the busy prompt)."""
        self._calls.labels(outcome).inc()

    def on_call_event(self, event: CallEvent) -> None:
        """AMI's word on placed calls nobody answered (subscribe it to ``AmiClient``)."""
        if isinstance(event, OriginateResult) and event.outcome != DialOutcome.ANSWERED:
            self._calls.labels(f"not_answered_{event.outcome.value}").inc()

    def exposition(self) -> bytes:
        """Everything, in Prometheus' text format."""
        return generate_latest(self.registry)
