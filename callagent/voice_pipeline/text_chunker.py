"""Split streamed LLM text into pieces worth speaking.

Piper synthesises one sentence at a time (DESIGN.md, known traps), so waiting for whole
sentences delays the first audio. We cut at sentence ends, and at clause boundaries (comma,
semicolon, colon, dash) once a clause is long enough to sound natural on its own.

The first piece decides when the caller hears anything, and whether the answer then flows:
it goes to the TTS at its first clause or sentence end once it has three words, or after six
words without one. A one-word opening ("Sure,") went alone before, and the caller then waited
while the LLM wrote the next clause and the TTS spoke it: measured with the default model, a
1.9 s silence after it (p50); three to six words first came sooner at p95 and left no silence
inside the answer (docs/pipeline.md "First audio", bench/bench_first_audio.py).
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)")
_CLAUSE_END = re.compile(r"[,;:—–]+(?=\s)")
_BOUNDARY = re.compile(rf"{_SENTENCE_END.pattern}|{_CLAUSE_END.pattern}")


class ClauseChunker:
    """Accumulates text deltas and returns speakable chunks as soon as they are complete.

    After the first piece: every sentence end, a clause boundary once the clause has
    ``min_clause_words`` words, or a word boundary after ``max_words`` words without either.
    The first piece: the first sentence or clause end once it has ``first_min_words`` words
    (a shorter opening joins what follows), or a word boundary after ``first_max_words``.
    """

    def __init__(
        self,
        min_clause_words: int = 4,
        max_words: int = 24,
        first_min_words: int = 3,
        first_max_words: int = 6,
    ) -> None:
        self.min_clause_words = min_clause_words
        self.max_words = max_words
        self.first_min_words = first_min_words
        self.first_max_words = first_max_words
        self._buffer = ""
        self._emitted = False

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
        return chunks

    def flush(self) -> list[str]:
        """Return whatever text is left (the end of the reply)."""
        rest, self._buffer = self._buffer.strip(), ""
        return [rest] if rest else []

    def _find_cut(self) -> int | None:
        if not self._emitted:
            for boundary in _BOUNDARY.finditer(self._buffer):
                if len(self._buffer[: boundary.end()].split()) >= self.first_min_words:
                    return boundary.end()
            return self._word_cut(self.first_max_words)
        sentence = _SENTENCE_END.search(self._buffer)
        if sentence is not None:
            return sentence.end()
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
