"""The error every engine client raises when its engine cannot answer (docs/inference.md)."""

from __future__ import annotations


class EngineUnavailable(RuntimeError):
    """The engine that should answer this request is gone or not (yet) running.

    Raised to every request in flight when its worker process dies, to requests made while the
    worker restarts, and by remote engine clients when their server cannot be reached. The call
    treats it as "this call cannot go on with its agent": the caller hears an apology and is
    handed to a person or hung up on, and the stored call names ``engine`` as the reason.
    """

    def __init__(self, engine: str, reason: str) -> None:
        super().__init__(f"{engine} engine unavailable: {reason}")
        #: Which engine failed: ``"stt"``, ``"llm"`` or ``"tts"``.
        self.engine = engine
        #: What happened, for the log and the stored call (e.g. ``"worker killed by SIGKILL"``).
        self.reason = reason
