"""Model inference out of the call process: each engine (STT, LLM, TTS) in a supervised worker
process, reached through clients that implement the pipeline's own engine protocols
(docs/inference.md)."""
