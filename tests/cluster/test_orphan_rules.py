"""When the session sweeper takes a node process for dead (lantern.cluster.orphans), without a
network: the registry row and the NATS answer decide, and a node that listens but does not
answer (busy, or an older version during a rolling upgrade) is never taken for dead while its
heartbeat goes on."""

from __future__ import annotations

from typing import Any

from lantern.cluster.orphans import OrphanSweeper, node_of
from lantern.cluster.registry import STALE_SECONDS, NodeStatus


class _Directory:
    def __init__(self, answer: str) -> None:
        self.answer = answer

    async def ping(self, node: str) -> str:
        return self.answer


def _row(node_id: str, state: str) -> NodeStatus:
    return NodeStatus(node_id, state, "h", 1, "v", "h:8883", "http://h", 0.0, 1.0, 0.0, 0.0, 0)


def _sweeper(answer: str, rows: list[NodeStatus]) -> OrphanSweeper:
    async def nodes() -> list[NodeStatus]:
        return rows

    directory: Any = _Directory(answer)
    return OrphanSweeper(directory, nodes)


def test_node_of_a_process_id() -> None:
    assert node_of("node-a-w1-0123abcd") == "node-a-w1"


async def test_a_process_that_answers_is_alive_whatever_the_registry_says() -> None:
    sweeper = _sweeper("alive", [_row("node-a", "down")])
    assert not await sweeper._is_dead("node-a-0123abcd", 100.0)


async def test_gone_from_nats_and_down_or_unregistered_is_dead_at_once() -> None:
    for rows in ([_row("node-a", "down")], []):
        for answer in ("gone", "silent"):
            sweeper = _sweeper(answer, rows)
            assert await sweeper._is_dead("node-a-0123abcd", 100.0), (rows, answer)


async def test_no_listener_while_its_node_id_beats_is_dead_after_the_stale_time() -> None:
    # The node restarted under the same id: its old process no longer listens.
    sweeper = _sweeper("gone", [_row("node-a", "up")])
    assert not await sweeper._is_dead("node-a-0123abcd", 100.0)
    assert not await sweeper._is_dead("node-a-0123abcd", 100.0 + STALE_SECONDS - 0.5)
    assert await sweeper._is_dead("node-a-0123abcd", 100.0 + STALE_SECONDS)


async def test_listening_without_answer_while_its_node_beats_is_never_dead() -> None:
    sweeper = _sweeper("silent", [_row("node-a", "up")])
    for t in (100.0, 100.0 + STALE_SECONDS, 100.0 + 10 * STALE_SECONDS):
        assert not await sweeper._is_dead("node-a-0123abcd", t)
