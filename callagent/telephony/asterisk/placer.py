"""Outbound calls for the API and the scheduler, placed through Asterisk (docs/telephony.md).

:class:`AmiCallPlacer` implements :class:`~callagent.telephony.outbound.CallPlacer`: it starts
an AMI Originate and returns at once. The call session id *is* the call id - the channel's
``ChannelId``/Uniqueid and the AudioSocket UUID - so the AudioSocket connection that Asterisk opens
when the callee answers, and every AMI event of the call, name the call session directly: an
outbound call session and its AudioSocket connection are matched by UUID. How the call turns out
arrives later as call events (:meth:`~.ami.AmiClient.subscribe`), by id.
"""

from __future__ import annotations

from callagent.telephony.asterisk.ami import AmiDialer, AmiNotConnected
from callagent.telephony.outbound import OutboundCallRequest, PlacementResult


class AmiCallPlacer:
    """A ``CallPlacer`` over :class:`~.ami.AmiDialer`; never raises for ordinary failures."""

    def __init__(self, dialer: AmiDialer) -> None:
        self._dialer = dialer

    async def place_call(self, request: OutboundCallRequest) -> PlacementResult:
        """Start dialling ``request.phone_number``; ``placed=False`` with a reason when the
        number is unusable or Asterisk cannot be reached right now."""
        try:
            self._dialer.start_originate(
                request.phone_number,
                call_id=request.call_session_id,
                # The client's own number, not one id shared by every client (None: the
                # dialer's trunk_caller_id).
                caller_id=request.caller_id or None,
            )
        except ValueError as error:
            return PlacementResult(placed=False, reason=str(error))
        except AmiNotConnected:
            return PlacementResult(placed=False, reason="Asterisk's AMI is not connected")
        return PlacementResult(placed=True, telephony_call_id=str(request.call_session_id))
