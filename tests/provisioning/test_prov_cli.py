"""The operator commands, in-process (typer's CliRunner) on a fresh data directory."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from typer.testing import CliRunner

from lantern.cli.main import app

runner = CliRunner()


def run(data_dir: Path, *args: str, input: str | None = None) -> tuple[int, str]:
    data_dir.mkdir(exist_ok=True)  # as `lantern serve` leaves it: commands never create it
    result = runner.invoke(app, [*args, "--data-dir", str(data_dir)], input=input)
    return result.exit_code, result.output


BODY = {
    "Parameters": {"Serial": {"Type": "String"}},
    "Resources": {
        "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "Serial"}}}
    },
}


def test_templates_create_show_update_and_bad_files(data_dir: Path, tmp_path: Path) -> None:
    code, out = run(data_dir, "templates", "list")
    assert code == 0 and "DefaultProvisioningTemplate" in out
    good = tmp_path / "t.json"
    good.write_text(json.dumps({"templateBody": json.dumps(BODY), "description": "sensors"}))
    code, out = run(data_dir, "templates", "create", "Sensors", "--file", str(good))
    assert code == 0, out
    assert "lantern claims create --template Sensors" in out
    code, out = run(data_dir, "templates", "create", "Sensors", "--file", str(good))
    assert code == 1 and "already exists" in out
    toml_file = tmp_path / "t.toml"
    toml_file.write_text('description = "x"\nenabled = "yes"\n')
    code, out = run(data_dir, "templates", "update", "Sensors", "--file", str(toml_file))
    assert code == 1 and "enabled must be true or false" in out
    bad_body = tmp_path / "bad.json"
    bad_body.write_text(json.dumps({"Resources": {"x": {"Type": "AWS::S3::Bucket"}}}))
    code, out = run(data_dir, "templates", "update", "Sensors", "--file", str(bad_body))
    assert code == 1 and "Type must be one of" in out
    code, out = run(data_dir, "templates", "create", "bad name!", "--file", str(good))
    assert code == 1 and "invalid" in out
    code, out = run(
        data_dir,
        "templates",
        "update",
        "Sensors",
        "--disable",
        "--hook-url",
        "https://hooks.example.org/p",
    )
    assert code == 0 and "DISABLED" in out
    code, out = run(data_dir, "templates", "show", "Sensors")
    shown = json.loads(out)
    assert shown["enabled"] is False and shown["description"] == "sensors"
    assert shown["templateBody"] == BODY  # the failed updates changed nothing
    assert shown["preProvisioningHookUrl"] == "https://hooks.example.org/p"
    code, out = run(data_dir, "templates", "show", "Nope")
    assert code == 1 and "does not exist" in out


def test_claims_create_list_revoke(data_dir: Path, tmp_path: Path) -> None:
    code, out = run(data_dir, "claims", "create", "--template", "Missing", "--out", str(tmp_path))
    assert code == 1 and "template Missing does not exist" in out
    assert not list(tmp_path.glob("claim-*"))
    code, out = run(
        data_dir,
        "claims",
        "create",
        "--template",
        "DefaultProvisioningTemplate",
        "--out",
        str(tmp_path / "claim"),
        "--device-limit",
        "5",
    )
    assert code == 0, out
    key = next((tmp_path / "claim").glob("claim-*.key"))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (tmp_path / "claim" / "ca.pem").exists()
    assert "lantern device provision --claimCert=" in out
    claim_id = key.stem
    code, out = run(data_dir, "claims", "list")
    assert claim_id in out and "0/5" in out
    code, out = run(data_dir, "claims", "revoke", claim_id)
    assert code == 0 and "revoked" in out
    code, out = run(data_dir, "claims", "revoke", claim_id)
    assert code == 1 and "already revoked" in out
    code, out = run(data_dir, "certs", "list", "--status", "revoked")
    assert "claim" in out and "REVOKED" in out


def test_things_and_certs_commands_refuse_unknown_names(data_dir: Path) -> None:
    for args, text in (
        (("things", "show", "ghost"), "does not exist"),
        (("things", "delete", "ghost"), "does not exist"),
        (("certs", "revoke", "abc"), "at least its first 8"),
        (("certs", "show", "0123456789abcdef"), "no certificate"),
    ):
        code, out = run(data_dir, *args)
        assert code == 1 and text in out, (args, out)
    code, out = run(data_dir, "things", "list")
    assert code == 0 and "No things yet" in out


def test_mqtt_users_and_policies(data_dir: Path, tmp_path: Path) -> None:
    policy = tmp_path / "p.json"
    policy.write_text(
        json.dumps(
            {"Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/a"}]}
        )
    )
    code, out = run(data_dir, "policies", "put", "shared", "--file", str(policy), "--project-wide")
    assert code == 0 and "every device" in out
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps({"Statement": [{"Effect": "Allow", "Action": "iot:Fly", "Resource": "*"}]})
    )
    code, out = run(data_dir, "policies", "put", "broken", "--file", str(bad))
    assert code == 1 and "unknown action" in out
    code, out = run(
        data_dir,
        "mqtt-users",
        "create",
        "dash",
        "--policy",
        "shared",
        "--password-stdin",
        input="a-long-password\n",
    )
    assert code == 0, out
    code, out = run(
        data_dir, "mqtt-users", "create", "dash", "--password-stdin", input="a-long-password\n"
    )
    assert code == 1 and "already exists" in out
    code, out = run(data_dir, "mqtt-users", "create", "weak", "--password-stdin", input="short\n")
    assert code == 1 and "at least 12" in out
    code, out = run(data_dir, "mqtt-users", "list")
    assert "dash" in out and "shared" in out and "weak" not in out
    code, out = run(data_dir, "policies", "list")
    assert "shared" in out and "broken" not in out
