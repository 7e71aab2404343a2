"""Identifiers: time-ordered UUIDs (the layout of UUID version 7, RFC 9562).

Why: ids are generated without a round trip on any node (scale-out mode), reveal nothing about
other clients (no global counters to probe), and sort by creation time, so "newest first" lists
page on the primary key alone (keyset pagination, docs/api.md "Conventions").
"""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_sequence = 0


def new_id() -> uuid.UUID:
    """A new UUIDv7: 48-bit Unix milliseconds, then a 12-bit counter that keeps ids made within
    one millisecond in order, then 62 random bits."""
    global _last_ms, _sequence
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms <= _last_ms:
            _sequence += 1
            if _sequence > 0xFFF:  # 4096 ids in one millisecond: borrow the next millisecond
                _last_ms += 1
                _sequence = 0
            now_ms = _last_ms
        else:
            _last_ms = now_ms
            _sequence = 0
        sequence = _sequence
    random_bits = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (now_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= sequence << 64
    value |= 0b10 << 62
    value |= random_bits
    return uuid.UUID(int=value)


def id_at(timestamp_s: float, sequence: int = 0) -> uuid.UUID:
    """A UUIDv7 for a past moment (the benchmark back-dates its rows with it)."""
    random_bits = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (int(timestamp_s * 1000) & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76 | (sequence & 0xFFF) << 64 | 0b10 << 62 | random_bits
    return uuid.UUID(int=value)
