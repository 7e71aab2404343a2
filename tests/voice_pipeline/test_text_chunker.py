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
    assert chunker.push("Yes we do install") == []
    assert chunker.push(". Where do") == ["Yes we do install."]
    assert chunker.push(" you live? Okay") == ["Where do you live?"]
    assert chunker.flush() == ["Okay"]


def test_long_clauses_are_cut_at_commas_but_short_ones_wait() -> None:
    assert stream("Well, our panels, we think, come with a warranty, and it is free.") == [
        "Well,",
        "our panels,",
        "we think, come with a warranty,",
        "and it is free.",
    ]


def test_the_first_word_goes_at_once_and_the_next_piece_is_short() -> None:
    # "Sure," is heard at once; the piece after it is at most four words, so it is written and
    # spoken before "Sure," has ended: a normal clause after it left the caller in silence
    # (docs/pipeline.md "First audio").
    assert stream("Sure, our panels come with a twenty five year warranty, okay.") == [
        "Sure,",
        "our panels come with",
        "a twenty five year warranty,",
        "okay.",
    ]
    assert stream("Sure, we can do that, and the survey is free.") == [
        "Sure,",
        "we can do that,",
        "and the survey is free.",
    ]


def test_a_long_first_sentence_is_not_waited_for() -> None:
    # Four words are spoken while the LLM writes the rest of the sentence.
    assert stream("Our panels come with a twenty five year warranty.") == [
        "Our panels come with",
        "a twenty five year",
        "warranty.",
    ]


def test_a_short_whole_answer_is_spoken() -> None:
    assert stream("Sure.") == ["Sure."]
    assert stream("Yes, of course.") == ["Yes,", "of course."]


def test_unpunctuated_rambling_is_cut_at_a_word_boundary() -> None:
    pieces = stream(
        " ".join(["word"] * 60), ClauseChunker(max_words=24, first_max_words=8, opening_pieces=1)
    )
    assert [len(p.split()) for p in pieces] == [8, 24, 24, 4]


def test_numbers_with_decimal_points_are_not_sentence_ends() -> None:
    assert stream("It is 9.5 dollars. Okay?") == [
        "It is 9.5 dollars.",
        "Okay?",
    ]


def test_a_greeting_known_in_full_is_spoken_sentence_by_sentence() -> None:
    # Text that arrives whole (a greeting, a fixed message) gains nothing from a short first
    # piece, and a sentence cut in pieces is synthesised as several sentences.
    chunker = ClauseChunker()
    pieces = chunker.push("Hello, this is Bea from Bravo Solar. How can I help you today? ")
    assert pieces == ["Hello, this is Bea from Bravo Solar.", "How can I help you today?"]
