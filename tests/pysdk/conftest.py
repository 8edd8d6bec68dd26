"""Fixtures of the SDK's unit tests (the fakes themselves are in fakes.py)."""
from __future__ import annotations

import pytest

from pysdk import _retry

from .fakes import FakeBackend


@pytest.fixture
def backend() -> FakeBackend:
    return FakeBackend()


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Replace the retry sleep; the delays asked for are collected."""
    delays: list[float] = []

    async def fake_sleep(delay: float) -> None:
        delays.append(delay)

    monkeypatch.setattr(_retry, "sleep", fake_sleep)
    return delays
