"""Row ids: UUID version 7, time-ordered and unique."""

from __future__ import annotations

from callagent.store.ids import new_id


def test_ids_are_time_ordered_and_unique() -> None:
    ids = [new_id() for _ in range(10_000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert {i.version for i in ids} == {7}
