"""RateLimitedLog: at most N lines per key per window, then one "suppressed K" line."""

from __future__ import annotations

import asyncio
import logging

import pytest

from lantern.ratelog import RateLimitedLog


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_caps_lines_per_key_and_summarises_on_the_next_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock()
    limited = RateLimitedLog(logging.getLogger("t.ratelog"), per_window=3, clock=clock)
    with caplog.at_level(logging.INFO, "t.ratelog"):
        logged = [limited.info("tls_x", "refused %d", i, peer=f"p{i}") for i in range(10)]
        assert logged == [True] * 3 + [False] * 7
        assert limited.info("connect_y", "other reason") is True  # its own budget
        assert [r.getMessage() for r in caplog.records] == [
            "refused 0",
            "refused 1",
            "refused 2",
            "other reason",
        ]
        assert caplog.records[0].peer == "p0"  # type: ignore[attr-defined]
        assert caplog.records[0].reason == "tls_x"  # type: ignore[attr-defined]
        caplog.clear()
        clock.now = 60.0
        assert limited.info("tls_x", "refused again") is True
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "tls_x: 7 more line(s) suppressed in the last 60 s (at most 3 per window)",
        "refused again",
    ]


async def test_summary_comes_when_the_window_ends_without_new_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    limited = RateLimitedLog(logging.getLogger("t.ratelog2"), per_window=1, window=0.2)
    with caplog.at_level(logging.INFO, "t.ratelog2"):
        for _ in range(4):
            limited.info("k", "line")
        await asyncio.sleep(0.4)
    assert [r.getMessage() for r in caplog.records] == [
        "line",
        "k: 3 more line(s) suppressed in the last 0.2 s (at most 1 per window)",
    ]


def test_zero_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    limited = RateLimitedLog(logging.getLogger("t.ratelog3"), per_window=0)
    with caplog.at_level(logging.INFO, "t.ratelog3"):
        assert limited.info("k", "line") is False
    assert not caplog.records
