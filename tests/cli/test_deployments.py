"""Deployment ids cannot be mistaken for firmware ids, and ``deployments show`` says which
number is the firmware version and which the execution's version."""

from __future__ import annotations

from cli.conftest import Fleet


def test_deployment_id_is_not_a_firmware_id(fleet: Fleet) -> None:
    ids = fleet.ids
    assert ids["firmware"].startswith("fw-") and ids["deployment"].startswith("dep-2_0_1-")
    code, out, err = fleet.run(
        "deployments", "create", "--firmware", ids["firmware"], "--things", ids["thing"],
        "--id", "fw-mine",
    )  # fmt: skip
    assert code == 1 and out == ""
    assert "may not start with 'fw-' (firmware ids do)" in err
    assert [d["deploymentId"] for d in fleet.json("deployments", "list")] == [  # type: ignore[index, union-attr]
        ids["deployment"]
    ]


def test_deployments_show_labels_firmware_and_execution_versions(fleet: Fleet) -> None:
    ids = fleet.ids
    out = fleet.ok("deployments", "show", ids["deployment"])
    assert f"Deployment {ids['deployment']}" in out
    assert f"firmware id       {ids['firmware']}" in out
    assert "firmware version  2.0.1" in out
    assert "target            group ward-3  (1 thing(s))" in out
    assert "execution version" in out and "not the firmware version" in out
    assert ids["thing"] in out
