"""What a call handler needs from a call, whichever way it arrived (Asterisk or direct SIP).

:class:`~callagent.telephony.asterisk.server.AudioSocketConnection` (Asterisk) and
:class:`~callagent.telephony.sip.endpoint.SipCallConnection` (direct SIP) both satisfy
:class:`CallConnection`, so one :class:`~callagent.telephony.call_runner.CallRunner` serves both.
Every connection yields the voice pipeline's own frames; a transport's wire messages stay private
to it (DESIGN.md practice 3), so this module imports only the pipeline's frames, neither
transport imports the other and the runner imports neither.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from callagent.voice_pipeline.frames import InboundFrame
from callagent.voice_pipeline.pipeline import PipelineObserver


class CallConnection(Protocol):
    """One live call: the caller's audio and keys in, the agent's audio out."""

    @property
    def call_id(self) -> uuid.UUID:
        """The call's id: the AudioSocket UUID (= the call session id), or a fresh one."""
        ...

    @property
    def remote(self) -> str:
        """Who is on the other end, for logs (an address or a SIP URI)."""
        ...

    @property
    def sample_rate(self) -> int:
        """The call's rate in Hz, known when it connects: :meth:`frames` yields audio and
        :meth:`send_audio` takes it at this rate. The agent speaks at once, without waiting
        for the caller's first frame (DESIGN.md "Known traps": Asterisk sends none until the
        caller's RTP arrives)."""
        ...

    @property
    def closed(self) -> bool:
        """True once the call is over, whoever ended it."""
        ...

    def frames(self) -> AsyncIterator[InboundFrame]:
        """The caller's audio and DTMF frames, stamped on the pipeline's clock, then one
        :class:`~callagent.voice_pipeline.frames.HangUpFrame` when the call ends."""
        ...

    async def send_audio(self, pcm: bytes) -> None:
        """Agent audio for the caller (16-bit mono PCM at the call's rate)."""
        ...

    async def hang_up(self) -> None:
        """End the call; does nothing once it is over."""
        ...


@runtime_checkable
class AddressedCall(Protocol):
    """A call that says itself which number was dialled and who is calling (direct SIP: the
    To and From user parts). AudioSocket calls learn this over AMI instead."""

    @property
    def caller(self) -> str:
        """The caller id ("" when withheld)."""
        ...

    @property
    def dialed(self) -> str:
        """The number that was called (the DID), "" when unknown."""
        ...


@runtime_checkable
class ClientTestCall(Protocol):
    """A call a client's own person makes to their agent from the dashboard (the browser
    phone, docs/dashboard.md "Talk to your agent"): it names its client, and it watches the
    call (the transcript goes back to the page as the call goes)."""

    @property
    def client_id(self) -> uuid.UUID:
        """The signed-in person's client, whose agent answers."""
        ...

    @property
    def observer(self) -> PipelineObserver:
        """Told every finished turn, barge-in and greeting, like the call's journal."""
        ...
