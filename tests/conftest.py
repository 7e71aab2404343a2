"""Suite-wide rules: no async test may leak asyncio tasks (DESIGN.md practice 9)."""

from __future__ import annotations

import asyncio
import inspect
import os

import pytest

# Tests never reach a model hub; a code path that tries must fail here as it would offline.
os.environ["HF_HUB_OFFLINE"] = "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        function = getattr(item, "function", None)
        if function is not None and inspect.iscoroutinefunction(function):
            item.fixturenames.append("_no_leaked_tasks")  # type: ignore[attr-defined]


@pytest.fixture
async def _no_leaked_tasks() -> object:
    before = asyncio.all_tasks()
    yield None
    for _ in range(10):  # tasks finishing right now get a chance to do so
        await asyncio.sleep(0)
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() - before if t is not current and not t.done()]
    for task in leaked:
        task.cancel()
    assert not leaked, f"test leaked asyncio tasks: {[t.get_name() for t in leaked]}"


@pytest.fixture(scope="session")
def ci_models() -> object:
    """The ``ci`` profile's model files (make test downloads them first)."""
    from pathlib import Path

    from callagent.modelfiles import resolve_profile

    return resolve_profile("ci", Path(__file__).resolve().parents[1] / "models")
