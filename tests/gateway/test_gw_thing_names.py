"""ThingNames: a topic's or filter's first level against the registered things; the full load,
and the poll that finds things other processes created (with its slack for late commits). The
authorizer's anonymous access with and without an anonymous policy."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from lantern.gateway import AnonymousIdentity, UserIdentity
from lantern.gateway.authn import GatewayAuthenticator
from lantern.gateway.authorizer import GatewayAuthorizer
from lantern.gateway.policy import PolicySet
from lantern.gateway.things import ThingNames, first_level
from lantern.pki import CertificateAuthority
from lantern.store import Database
from lantern.store import registry as reg


async def _thing(db: Database, name: str, created_at: float) -> None:
    async with db.transaction() as conn:
        await reg.insert_thing(
            conn, reg.ThingRecord(name, "default", {}, *[None] * 5, created_at, created_at)
        )


def test_first_level_of_names_and_filters() -> None:
    assert first_level("dev1/data/x") == "dev1"
    assert first_level("dev1") == "dev1"
    assert first_level("$share/group/dev1/#") == "dev1"
    assert first_level("+/data") == "+"
    assert first_level("/dev1") == ""


async def test_load_then_poll_with_slack(db: Database) -> None:
    now = [1000.0]
    await _thing(db, "old", 10.0)
    names = ThingNames(db, slack=60.0, clock=lambda: now[0])
    assert not names.covers("old/x")  # nothing is known before the load
    await names.ensure_loaded()
    assert names.covers("old/x") and names.covers("$share/g/old/#")
    assert not names.covers("other/old") and not names.covers("#")
    # Created by another process, stamped a little before the load (a late commit): found.
    await _thing(db, "late", 990.0)
    await _thing(db, "new", 1001.0)
    now[0] = 1002.0
    assert await names.poll_once() == 2
    assert "late" in names and "new" in names
    assert await names.poll_once() == 0


@dataclass
class Conn:
    """What the authorizer reads of a connection."""

    client_id: str
    identity: object
    protocol_level: int = 5


def _anonymous_authorizer(sqlite_db: Database, *, policy: bool) -> GatewayAuthorizer:
    names = ThingNames(sqlite_db)
    names.add("dev1")
    return GatewayAuthorizer(names, anonymous_policy=policy)


def test_default_anonymous_access_is_everything_but_reserved_and_device_topics(
    sqlite_db: Database,
) -> None:
    auth = _anonymous_authorizer(sqlite_db, policy=False)
    anon = Conn("a", AnonymousIdentity(listener="tcp"))
    for refused in ("dev1/#", "dev1", "dev1/+/x", "$share/g/dev1/#", "$aws/things/dev1/#"):
        assert not auth.may_subscribe(anon, refused), refused
    for granted in ("#", "+/data", "lab/#", "dev10/#", "x/dev1"):
        assert auth.may_subscribe(anon, granted), granted
    assert not auth.may_receive(anon, "dev1/data")
    assert not auth.may_publish(anon, "dev1")
    assert auth.may_publish(anon, "lab/dev1")
    # A user is never given the default: without a policy, nothing.
    user = Conn("u", UserIdentity(username="u", project="default"))
    assert not auth.may_publish(user, "lab/x")


def test_anonymous_policy_decides_and_fails_closed_without_one(sqlite_db: Database) -> None:
    auth = _anonymous_authorizer(sqlite_db, policy=True)
    identity = AnonymousIdentity(listener="tcp")
    anon = Conn("c1", identity)
    assert not auth.may_publish(anon, "lab/x")  # none remembered
    document = {
        "Statement": [
            {"Effect": "Allow", "Action": "iot:*", "Resource": ["topic/*", "topicfilter/*"]}
        ]
    }
    auth.remember(identity, "c1", PolicySet.from_documents([document], {}))
    assert auth.may_publish(anon, "lab/x") and auth.may_subscribe(anon, "#")
    assert auth.may_publish(anon, "dev1/x")  # exactly the policy
    assert not auth.may_publish(anon, "$aws/rules/FHIRIngest")


def test_authenticator_and_authorizer_share_one_set(sqlite_db: Database, tmp_path: Path) -> None:
    ca, _ = CertificateAuthority.load_or_create(tmp_path / "ca")
    names = ThingNames(sqlite_db)
    for given in (names, None):
        authorizer = GatewayAuthorizer(names)
        authn = GatewayAuthenticator(sqlite_db, ca, authorizer, thing_names=given)
        assert authn.thing_names is names and authorizer.thing_names is names
    bare = GatewayAuthorizer()
    authn = GatewayAuthenticator(sqlite_db, ca, bare)
    assert bare.thing_names is authn.thing_names is not None
