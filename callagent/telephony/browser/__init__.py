"""The browser phone: a call from the dashboard's "Talk to your agent" page over a WebSocket
(docs/dashboard.md). :class:`~callagent.telephony.browser.connection.BrowserConnection` yields
the voice pipeline's own frames, like the AudioSocket and SIP connections, so one
:class:`~callagent.telephony.call_runner.CallRunner` serves it."""
