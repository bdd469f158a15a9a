"""JobsQueries.thing_executions: one thing's executions across deployments (the console's
device page), on both databases."""

from __future__ import annotations

from jobs.kit import Kit


async def test_a_things_executions_across_deployments_newest_first(kit: Kit) -> None:
    await kit.add_things("t1", "t2")
    first = await kit.deploy("t1", "t2")
    kit.clock.advance(10)
    await kit.add_firmware(version="2.0.0")
    second = await kit.deploy("t1")
    executions = await kit.queries.thing_executions("t1")
    assert [e.job_id for e in executions] == [second, first]
    assert {e.thing_name for e in executions} == {"t1"}
    assert executions[0].document["firmwareVersion"] == "2.0.0"
    assert [e.job_id for e in await kit.queries.thing_executions("t1", limit=1)] == [second]
    assert await kit.queries.thing_executions("nobody") == []
