"""The sans-IO AMI protocol on byte strings: whole, byte by byte, with trailing bytes (DESIGN.md
practice 1), one table driving both directions.

``AmiMessage`` and ``check_header`` are production's; the connection codec is the AMI
simulator's (``fakes.ami_connection``), checked here because the simulator's fidelity rests on it.
"""

from __future__ import annotations

import pytest

from callagent.telephony.asterisk.ami_protocol import MAX_LINE, AmiMessage, check_header

from fakes.ami_connection import (
    MAX_MESSAGE,
    AmiConnection,
    AmiProtocolError,
    Banner,
    Role,
    encode_message,
)

BANNER = b"Asterisk Call Manager/11.0.0\r\n"

# (message, bytes) as the server sends it; the same table checks parsing and encoding.
SERVER_MESSAGES: list[tuple[AmiMessage, bytes]] = [
    (
        AmiMessage.build(
            ("Response", "Success"),
            ("ActionID", "a1"),
            ("Message", "Authentication accepted"),
        ),
        b"Response: Success\r\nActionID: a1\r\nMessage: Authentication accepted\r\n\r\n",
    ),
    (
        AmiMessage.build(
            ("Event", "OriginateResponse"),
            ("Privilege", "call,all"),
            ("ActionID", "o/1"),
            ("Response", "Failure"),
            ("Reason", "5"),
        ),
        b"Event: OriginateResponse\r\nPrivilege: call,all\r\nActionID: o/1\r\n"
        b"Response: Failure\r\nReason: 5\r\n\r\n",
    ),
    (
        AmiMessage.build(
            ("Event", "Hangup"),
            ("Uniqueid", "6f1c"),
            ("Cause", "16"),
            ("Cause-txt", "Normal Clearing"),
            ("Empty", ""),
        ),
        b"Event: Hangup\r\nUniqueid: 6f1c\r\nCause: 16\r\nCause-txt: Normal Clearing\r\n"
        b"Empty: \r\n\r\n",
    ),
]

CLIENT_MESSAGES: list[tuple[AmiMessage, bytes]] = [
    (
        AmiMessage.build(
            ("Action", "Originate"),
            ("ActionID", "o/1"),
            ("Variable", "A=1"),
            ("Variable", "B=x=y"),
        ),
        b"Action: Originate\r\nActionID: o/1\r\nVariable: A=1\r\nVariable: B=x=y\r\n\r\n",
    ),
]


def _events(conn: AmiConnection) -> list[Banner | AmiMessage]:
    events: list[Banner | AmiMessage] = []
    while (event := conn.next_event()) is not None:
        events.append(event)
    return events


def _server_stream() -> bytes:
    return BANNER + b"".join(data for _, data in SERVER_MESSAGES)


def test_client_parses_the_banner_and_every_message_whole() -> None:
    conn = AmiConnection(Role.CLIENT)
    conn.receive_data(_server_stream())
    assert _events(conn) == [Banner("11.0.0"), *(m for m, _ in SERVER_MESSAGES)]


def test_client_parses_byte_by_byte() -> None:
    conn = AmiConnection(Role.CLIENT)
    events: list[Banner | AmiMessage] = []
    for byte in _server_stream():
        conn.receive_data(bytes([byte]))
        events.extend(_events(conn))
    assert events == [Banner("11.0.0"), *(m for m, _ in SERVER_MESSAGES)]


def test_trailing_bytes_wait_for_the_rest_and_end_of_file_drops_them() -> None:
    conn = AmiConnection(Role.CLIENT)
    first, data = SERVER_MESSAGES[0]
    conn.receive_data(BANNER + data + b"Event: Hangup\r\nCause: 1")
    assert _events(conn) == [Banner("11.0.0"), first]
    conn.receive_data(b"6\r\n")
    assert conn.next_event() is None
    conn.receive_data(b"")  # closed mid-message: the half message is not acted upon
    assert conn.next_event() is None
    assert conn.closed


def test_server_parses_client_actions_and_encodes_its_side_from_the_same_table() -> None:
    server = AmiConnection(Role.SERVER)
    assert server.send_banner() == BANNER
    for message, data in SERVER_MESSAGES:
        assert server.send(message) == data
    server.receive_data(b"".join(data for _, data in CLIENT_MESSAGES))
    assert _events(server) == [m for m, _ in CLIENT_MESSAGES]
    client = AmiConnection(Role.CLIENT)
    for message, data in CLIENT_MESSAGES:
        assert client.send(message) == data


def test_bare_line_feeds_blank_lines_and_colonless_lines_are_tolerated() -> None:
    conn = AmiConnection(Role.SERVER)
    conn.receive_data(b"\r\n\nAction: Ping\nnonsense line\nActionID:x\n\n")
    (message,) = _events(conn)
    assert message == AmiMessage.build(("Action", "Ping"), ("ActionID", "x"))
    assert conn.dropped_lines == 1


def test_lookups_ignore_case_and_keep_repeated_keys() -> None:
    message = CLIENT_MESSAGES[0][0]
    assert message.kind == "action"
    assert message.name == "Originate"
    assert message["actionid"] == "o/1"
    assert message.get_all("VARIABLE") == ["A=1", "B=x=y"]
    assert message.variables() == {"A": "1", "B": "x=y"}
    assert "missing" not in message
    with pytest.raises(KeyError):
        message["missing"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("CallerID", "Eve\r\nAction: Originate"),  # the injection the check exists for
        ("CallerID", "line\nbreak"),
        ("Bad Key", "x"),
        ("Bad:Key", "x"),
        ("Long", "x" * MAX_LINE),
    ],
)
def test_values_that_would_break_the_framing_are_refused(key: str, value: str) -> None:
    with pytest.raises(ValueError, match="AMI"):
        check_header(key, value)
    with pytest.raises(ValueError, match="AMI"):
        encode_message([("Action", "Originate"), (key, value)])


def test_each_side_sends_only_its_own_kinds() -> None:
    client = AmiConnection(Role.CLIENT)
    with pytest.raises(ValueError, match="client sends actions"):
        client.send(SERVER_MESSAGES[0][0])
    with pytest.raises(ValueError, match="only the server"):
        client.send_banner()
    server = AmiConnection(Role.SERVER)
    with pytest.raises(ValueError, match="banner first"):
        server.send(SERVER_MESSAGES[0][0])
    server.send_banner()
    with pytest.raises(ValueError, match="already sent"):
        server.send_banner()
    with pytest.raises(ValueError, match="responses and events"):
        server.send(CLIENT_MESSAGES[0][0])


def test_a_wrong_banner_is_a_protocol_error() -> None:
    conn = AmiConnection(Role.CLIENT)
    conn.receive_data(b"SSH-2.0-OpenSSH\r\n")
    with pytest.raises(AmiProtocolError, match="banner"):
        conn.next_event()
    with pytest.raises(AmiProtocolError):  # stays failed
        conn.next_event()


@pytest.mark.parametrize(
    "data",
    [
        b"A" * (MAX_LINE + 1),  # no line end in sight
        b"Action: " + b"x" * MAX_LINE + b"\r\n",
        b"".join(b"Key%d: %s\r\n" % (i, b"v" * 200) for i in range(MAX_MESSAGE // 200)),
    ],
)
def test_oversized_lines_and_messages_end_the_connection(data: bytes) -> None:
    conn = AmiConnection(Role.SERVER)
    conn.receive_data(data)
    with pytest.raises(AmiProtocolError, match="longer than"):
        conn.next_event()


def test_receive_after_end_of_file_is_a_bug() -> None:
    conn = AmiConnection(Role.SERVER)
    conn.receive_data(b"")
    with pytest.raises(RuntimeError):
        conn.receive_data(b"x")
