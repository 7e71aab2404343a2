"""The check of Asterisk configuration files: Asterisk's config syntax as its parser reads it,
and the mistakes a template change could bring into the rendered files."""

from __future__ import annotations

import pytest

from callagent.telephony.asterisk.config_check import (
    ConfSyntaxError,
    check_asterisk_config,
    parse_conf,
)

from helpers.asterisk_settings import render


@pytest.mark.parametrize(
    ("name", "old", "new", "expected"),
    [
        ("extensions.conf", "n,Hangup()", "n,System(rm -rf /)", "unknown or malformed"),
        ("extensions.conf", "Gosub(callagent-connect,s,1)", "Gosub(nowhere,s,1)", "does not exist"),
        ("extensions.conf", "Dial(PJSIP/+4930111@trunk", "Dial(PJSIP/+4930111@nope", "endpoint"),
        ("extensions.conf", "Set(CALLAGENT_DID=+4930123456)", "Set(X=${A)", "unbalanced"),
        ("pjsip.conf", "rtp_symmetric = yes", "rtp_symetric = yes", "unknown option"),
        ("pjsip.conf", "aors = trunk", "aors = trunks", "names no aor"),
        ("manager.conf", "write = call,originate", "write = all", "more than callagent needs"),
        ("asterisk.conf", "transmit_silence = yes", "transmit_silence = no", "transmit_silence"),
        ("modules.conf", "noload = chan_iax2.so", "noload = chan_iax2", "not a module file"),
        ("amd.conf", "greeting = 2000", "greeting = 2s", "whole number"),
    ],
)
def test_the_check_catches_mistakes(name: str, old: str, new: str, expected: str) -> None:
    files = render()
    assert old in files[name]
    files[name] = files[name].replace(old, new, 1)
    problems = check_asterisk_config(files)
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize(
    "text",
    ["key = value\n", "[general\n", "[general]\njust words\n", "[general]\n#include x.conf\n"],
)
def test_the_parser_refuses_what_asterisk_would_not_read(text: str) -> None:
    with pytest.raises(ConfSyntaxError):
        parse_conf(text)


def test_comments_and_escaped_semicolons() -> None:
    (sec,) = parse_conf("[a](!)\nx = 1 ; comment\ny => a\\;b\n; whole line\n")
    assert sec.options == ("!",)
    assert sec.entries == [("x", "1"), ("y", "a\\;b")]
