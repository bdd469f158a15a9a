"""The [provisioning] settings: defaults as AWS, bad values fail loudly."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lantern.settings.provisioning import ProvisioningSettings


def test_defaults_follow_aws() -> None:
    s = ProvisioningSettings()
    assert s.key_type == "rsa-2048"
    assert s.ownership_token_ttl_seconds == 3600
    assert s.hook_timeout_seconds == 5.0
    assert s.revocation_poll_seconds <= 1.0
    assert s.anonymous_listeners == []


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"key_type": "dsa"}, "key_type"),
        ({"hook_timeout_seconds": 30}, "hook_timeout_seconds"),
        ({"revocation_poll_seconds": 5}, "revocation_poll_seconds"),
        ({"anonymous_listeners": ["mqtts"]}, "anonymous_listeners"),
        ({"ownership_token_ttl_seconds": 0}, "ownership_token_ttl_seconds"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_bad_values_are_refused(values: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=field):
        ProvisioningSettings(**values)  # type: ignore[arg-type]
