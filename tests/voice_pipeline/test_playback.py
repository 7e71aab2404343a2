"""What the caller heard of an interrupted reply."""

from __future__ import annotations

from callagent.voice_pipeline.playback import SpokenSegment, heard_text


def test_whole_segments_then_the_played_share_of_the_cut_one() -> None:
    segments = [
        SpokenSegment("Our panels come with a warranty,", total_frames=50, played_frames=50),
        SpokenSegment("and the survey is free of charge.", total_frames=70, played_frames=35),
        SpokenSegment("It takes an hour.", total_frames=40, played_frames=0),
    ]
    assert heard_text(segments) == "Our panels come with a warranty, and the survey"


def test_nothing_played_is_nothing_heard() -> None:
    assert heard_text([SpokenSegment("Hello there.", total_frames=30)]) == ""
