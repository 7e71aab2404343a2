"""Split streamed LLM text into pieces worth speaking.

Piper synthesises one sentence at a time (DESIGN.md, known traps), so waiting for whole
sentences delays the first audio. We cut at sentence ends, and at clause boundaries (comma,
semicolon, colon, dash) once a clause is long enough to sound natural on its own.
"""

from __future__ import annotations

import re

_SENTENCE_END = re.compile(r"[.!?…]+[\"')\]]*(?=\s)")
_CLAUSE_END = re.compile(r"[,;:—–]+(?=\s)")


class ClauseChunker:
    """Accumulates text deltas and returns speakable chunks as soon as they are complete."""

    def __init__(
        self,
        min_clause_words: int = 4,
        max_words: int = 24,
        first_min_clause_words: int = 1,
        first_max_words: int = 8,
    ) -> None:
        self.min_clause_words = min_clause_words
        self.max_words = max_words
        # The first piece decides when the caller hears anything: "Sure," may go alone, and a
        # long first sentence is cut at a word boundary rather than waited for.
        self.first_min_clause_words = first_min_clause_words
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
        sentence = _SENTENCE_END.search(self._buffer)
        if sentence is not None:
            return sentence.end()
        min_words = self.min_clause_words if self._emitted else self.first_min_clause_words
        for clause in _CLAUSE_END.finditer(self._buffer):
            if len(self._buffer[: clause.end()].split()) >= min_words:
                return clause.end()
        words = self._buffer.split(" ")
        max_words = self.max_words if self._emitted else self.first_max_words
        if len(words) > max_words:
            # No punctuation for a long stretch: cut at a word boundary rather than wait.
            return len(" ".join(words[:max_words]))
        return None
