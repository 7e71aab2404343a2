"""Split streamed LLM text into pieces worth speaking.

Piper synthesises one sentence at a time (DESIGN.md, known traps), so waiting for whole
sentences delays the first audio. We cut at sentence ends, and at clause boundaries (comma,
semicolon, colon, dash) once a clause is long enough to sound natural on its own.

The opening decides when the caller hears anything, and whether the answer then flows: the
first piece goes at its first clause or sentence end, even one word ("Sure,"), and the second
too, each cut after four words at the latest. A lone "Sure," followed by a normal clause left
the caller waiting while the LLM wrote that clause and the TTS spoke it (default model: up to
0.6 s on a quiet machine, 1.9 s p50 under load); a second piece of at most four words is ready
before the first has been heard, and waiting for three words first cost ~0.5 s of first audio
(docs/pipeline.md "First audio", bench/bench_first_audio.py).
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)")
_CLAUSE_END = re.compile(r"[,;:—–]+(?=\s)")


class ClauseChunker:
    """Accumulates text deltas and returns speakable chunks as soon as they are complete.

    A whole sentence goes as soon as its end is here. Otherwise, for the first
    ``opening_pieces`` pieces: a clause end once the piece has ``first_min_words`` words (a
    shorter opening joins what follows), or a word boundary after ``first_max_words``; after
    them: a clause boundary once the clause has ``min_clause_words`` words, or a word boundary
    after ``max_words`` words without either.
    """

    def __init__(
        self,
        min_clause_words: int = 4,
        max_words: int = 24,
        first_min_words: int = 1,
        first_max_words: int = 4,
        opening_pieces: int = 2,
    ) -> None:
        self.min_clause_words = min_clause_words
        self.max_words = max_words
        self.first_min_words = first_min_words
        self.first_max_words = first_max_words
        # How many pieces follow the first-piece rules (the opening of the answer).
        self.opening_pieces = opening_pieces
        self._buffer = ""
        self._emitted = False
        self._pieces = 0

    def push(self, delta: str) -> list[str]:
        """Add streamed text; return the chunks that became complete."""
        self._buffer += delta
        chunks: list[str] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                break
            chunk, self._buffer = self._buffer[:cut].strip(), self._buffer[cut:].lstrip()
            if chunk:
                chunks.append(chunk)
                self._emitted = True
                self._pieces += 1
        return chunks

    def flush(self) -> list[str]:
        """Return whatever text is left (the end of the reply)."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []

    def _find_cut(self) -> int | None:
        sentence = _SENTENCE_END.search(self._buffer)
        if sentence is not None:
            # A whole sentence is here already (text known in full - a greeting, a fixed line
            # - or a fast burst): nothing is gained by waiting, and a sentence spoken whole
            # keeps its intonation, where a cut one is synthesised as several sentences.
            return sentence.end()
        if self._pieces < self.opening_pieces:
            for boundary in _CLAUSE_END.finditer(self._buffer):
                if len(self._buffer[: boundary.end()].split()) >= self.first_min_words:
                    return boundary.end()
            return self._word_cut(self.first_max_words)
        for clause in _CLAUSE_END.finditer(self._buffer):
            if len(self._buffer[: clause.end()].split()) >= self.min_clause_words:
                return clause.end()
        return self._word_cut(self.max_words)

    def _word_cut(self, max_words: int) -> int | None:
        words = self._buffer.split(" ")
        if len(words) > max_words:
            # No punctuation for a long stretch: cut at a word boundary rather than wait.
            return len(" ".join(words[:max_words]))
        return None
