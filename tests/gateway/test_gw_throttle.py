"""The failed-authentication throttle on a fake clock, and the bounded password-check pool."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lantern.gateway import password_pool
from lantern.gateway.password_pool import PasswordChecker
from lantern.gateway.passwords import hash_password
from lantern.gateway.throttle import AuthThrottle, FailureTable, source_key


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_is_blocked_at_the_limit_until_its_window_ends() -> None:
    table = FailureTable(limit=3, window=60, max_entries=10)
    assert [table.failed("a", t) for t in (0, 1, 2)] == [False, False, True]
    assert table.blocked("a", 2) and table.blocked("a", 59.9)
    assert not table.blocked("b", 2)
    assert not table.blocked("a", 60)  # the window (from the first failure) is over
    assert not table.failed("a", 60)  # a new window opens with one failure
    assert not table.blocked("a", 61)


def test_failures_below_the_limit_expire_with_their_window() -> None:
    table = FailureTable(limit=2, window=10, max_entries=10)
    table.failed("a", 0)
    table.failed("a", 11)  # the first one's window is over: this is the first of a new one
    assert not table.blocked("a", 12)
    table.failed("a", 12)
    assert table.blocked("a", 12)


def test_limit_zero_turns_the_throttle_off() -> None:
    table = FailureTable(limit=0, window=10, max_entries=10)
    for t in range(100):
        assert not table.failed("a", t)
    assert not table.blocked("a", 100) and len(table) == 0


def test_tables_are_bounded_and_forget_the_oldest_window_first() -> None:
    table = FailureTable(limit=1, window=10, max_entries=100)
    for i in range(100):
        table.failed(f"old-{i}", 0)
    for i in range(1000):  # the old windows are over at t=20: forgotten without eviction
        table.failed(f"new-{i}", 20 + i / 1000)
    assert len(table) == 100
    assert table.evicted == 900  # 1000 new keys, 100 slots, windows still open
    assert table.blocked("new-999", 21) and not table.blocked("new-0", 21)


def test_address_and_user_limits_and_success_clears_the_user_only() -> None:
    clock = Clock()
    throttle = AuthThrottle(
        window=60, max_per_address=5, max_per_user=3, max_entries=100, clock=clock
    )
    for _ in range(3):
        assert throttle.refused("10.0.0.1", "user:alice") is None
        throttle.failed("10.0.0.1", "user:alice")
    # alice is blocked from everywhere; the address is not blocked for other users yet
    assert throttle.refused("10.0.0.9", "user:alice") == "user"
    assert throttle.refused("10.0.0.1", "user:bob") is None
    throttle.failed("10.0.0.1", "user:bob")
    assert throttle.failed("10.0.0.1", "user:bob") == ["address"]  # 5th failure of the address
    assert throttle.refused("10.0.0.1", "user:carol") == "address"
    assert throttle.refused("10.0.0.1", None) == "address"
    throttle.succeeded("user:alice")  # e.g. from another address
    assert throttle.refused("10.0.0.9", "user:alice") is None
    assert throttle.refused("10.0.0.1", "user:alice") == "address"  # the address stays blocked
    clock.now += 60
    assert throttle.refused("10.0.0.1", "user:carol") is None


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        ("127.0.0.2:51234", "127.0.0.2"),
        ("[2001:db8:1:2:3:4:5:6]:8883", "2001:db8:1:2::/64"),
        ("[2001:db8:1:2:ffff::1]:1", "2001:db8:1:2::/64"),
        ("[::ffff:192.0.2.7]:1883", "192.0.2.7"),
        ("[fe80::1%eth0]:1", "fe80::/64"),
        ("?", "?"),
    ],
)
def test_source_keys(peer: str, key: str) -> None:
    assert source_key(peer) == key


async def test_password_checks_are_bounded_and_overflow_is_refused_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = threading.Event()
    threads: set[str] = set()

    def slow_verify(password: str, stored: str) -> bool:
        threads.add(threading.current_thread().name)
        gate.wait(5)
        return password == "right"

    monkeypatch.setattr(password_pool, "verify_password", slow_verify)
    checker = PasswordChecker(threads=1, max_pending=2)
    try:
        running = asyncio.ensure_future(checker.verify("right", "h"))
        queued = asyncio.ensure_future(checker.verify("wrong", "h"))
        await asyncio.sleep(0.05)
        assert await checker.verify("x", "h") is None  # both slots taken: busy at once
        queued.cancel()  # its CONNECT went away while it waited: its slot is free at once
        await asyncio.sleep(0.01)
        later = asyncio.ensure_future(checker.verify("right", "h"))
        await asyncio.sleep(0.01)
        assert not later.done()
        running.cancel()  # a running check holds its slot until its thread finishes it
        await asyncio.sleep(0.01)
        assert await checker.verify("x", "h") is None
        gate.set()
        assert await later is True
        assert len(threads) == 1 and next(iter(threads)).startswith("lantern-password")
    finally:
        gate.set()
        checker.close()


async def test_password_checker_checks_real_hashes() -> None:
    checker = PasswordChecker()
    try:
        stored = hash_password("secret")
        assert await checker.verify("secret", stored) is True
        assert await checker.verify("nope", stored) is False
    finally:
        checker.close()
