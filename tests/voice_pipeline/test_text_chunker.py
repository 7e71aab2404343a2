"""Cutting streamed LLM text into speakable pieces."""

from __future__ import annotations

from callagent.voice_pipeline.text_chunker import ClauseChunker


def stream(text: str, chunker: ClauseChunker | None = None) -> list[str]:
    chunker = chunker or ClauseChunker()
    pieces: list[str] = []
    for word in text.split(" "):
        pieces += chunker.push(word + " ")
    return pieces + chunker.flush()


def test_sentences_are_spoken_as_soon_as_they_end() -> None:
    chunker = ClauseChunker()
    assert chunker.push("Yes we do") == []
    assert chunker.push(". Where do") == ["Yes we do."]
    assert chunker.flush() == ["Where do"]


def test_long_clauses_are_cut_at_commas_but_short_ones_wait() -> None:
    assert stream("Well, our panels, we think, come with a warranty, and it is free.") == [
        "Well,",
        "our panels, we think,",
        "come with a warranty,",
        "and it is free.",
    ]


def test_the_first_piece_may_be_short_so_the_caller_hears_something_sooner() -> None:
    assert stream("Sure, our panels come with a warranty, okay, and more.") == [
        "Sure,",
        "our panels come with a warranty,",
        "okay, and more.",
    ]


def test_unpunctuated_rambling_is_cut_at_a_word_boundary() -> None:
    pieces = stream(" ".join(["word"] * 60), ClauseChunker(max_words=24, first_max_words=8))
    assert [len(p.split()) for p in pieces] == [8, 24, 24, 4]


def test_numbers_with_decimal_points_are_not_sentence_ends() -> None:
    assert stream("It costs 9.5 thousand dollars. Okay?") == [
        "It costs 9.5 thousand dollars.",
        "Okay?",
    ]
