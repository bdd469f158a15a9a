"""The policy engine: AWS-IoT-like policy documents, compiled per connection.

A document is data::

    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow" | "Deny",
                    "Action": "iot:Publish" | ["iot:Subscribe", ...] | "iot:*",
                    "Resource": "topic/sensors/${iot:Connection.Thing.ThingName}/*" | [...]}]}

Actions: ``iot:Connect`` (resource ``client/<client id>``), ``iot:Publish`` and ``iot:Receive``
(``topic/<topic name>``), ``iot:Subscribe`` (``topicfilter/<topic filter>``). Resources may be
full ARNs (``arn:aws:iot:<region>:<account>:topic/...``) or start at the resource type; ``*``
alone matches everything. In a resource, ``*`` matches any run of characters (``/`` included,
so ``topicfilter/a/*`` covers the literal ``a/+`` and ``a/#``) and ``?`` one character, as in
AWS. Variables: ``${iot:Connection.Thing.ThingName}`` and ``${iot:ClientId}``; a resource
whose variable has no value for the connection matches nothing. An explicit Deny wins over any
Allow; what no statement allows is denied.

The built-in documents (:data:`DEVICE_POLICY`, :func:`claim_policy`) are data too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from lantern.gateway.errors import PolicyError

__all__ = [
    "CLIENT_ID_VAR",
    "DEVICE_POLICY",
    "THING_NAME_VAR",
    "Action",
    "CompiledPolicy",
    "PolicySet",
    "claim_policy",
    "compile_policy",
    "validate_policy_document",
]

THING_NAME_VAR = "iot:Connection.Thing.ThingName"
CLIENT_ID_VAR = "iot:ClientId"
VARIABLES = (THING_NAME_VAR, CLIENT_ID_VAR)
_VAR_RE = re.compile(r"\$\{([^}]*)\}")
_ARN_RE = re.compile(r"^arn:[^:]*:iot:[^:]*:[^:]*:(.*)$", re.DOTALL)


class Action(StrEnum):
    CONNECT = "iot:Connect"
    PUBLISH = "iot:Publish"
    SUBSCRIBE = "iot:Subscribe"
    RECEIVE = "iot:Receive"


_RESOURCE_TYPE = {
    Action.CONNECT: "client",
    Action.PUBLISH: "topic",
    Action.RECEIVE: "topic",
    Action.SUBSCRIBE: "topicfilter",
}

# A device: its own thing topics, the rules topics (publish only: rules never deliver), and
# its own "<thing>" / "<thing>/..." topics (docs/device-topics.md).
DEVICE_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["iot:Publish", "iot:Receive"],
            "Resource": [
                "topic/$aws/things/${iot:Connection.Thing.ThingName}/*",
                "topic/${iot:Connection.Thing.ThingName}",
                "topic/${iot:Connection.Thing.ThingName}/*",
            ],
        },
        {"Effect": "Allow", "Action": "iot:Publish", "Resource": "topic/$aws/rules/*"},
        {
            "Effect": "Allow",
            "Action": "iot:Subscribe",
            "Resource": [
                "topicfilter/$aws/things/${iot:Connection.Thing.ThingName}/*",
                "topicfilter/${iot:Connection.Thing.ThingName}",
                "topicfilter/${iot:Connection.Thing.ThingName}/*",
            ],
        },
    ],
}


def claim_policy(templates: Iterable[str]) -> dict[str, Any]:
    """A claim certificate may only call the Identity API, with the templates it is allowed."""
    requests = ["$aws/certificates/create", "$aws/certificates/create-from-csr"]
    requests += [f"$aws/provisioning-templates/{t}/provision" for t in sorted(templates)]
    fmts = ("json", "cbor")
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "iot:Publish",
                "Resource": [f"topic/{r}/{f}" for r in requests for f in fmts],
            },
            {
                "Effect": "Allow",
                "Action": "iot:Receive",
                "Resource": [
                    f"topic/{r}/{f}/{o}"
                    for r in requests
                    for f in fmts
                    for o in ("accepted", "rejected")
                ],
            },
            {
                "Effect": "Allow",
                "Action": "iot:Subscribe",
                "Resource": [f"topicfilter/{r}/{f}/*" for r in requests for f in fmts],
            },
        ],
    }


def _as_list(value: object, where: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise PolicyError(f"{where} must be a string or a non-empty list of strings")
    return list(items)


def _actions(value: object, where: str) -> set[Action]:
    out: set[Action] = set()
    for name in _as_list(value, where):
        if name in ("iot:*", "*"):
            out.update(Action)
            continue
        try:
            out.add(Action(name))
        except ValueError:
            known = ", ".join(a.value for a in Action)
            raise PolicyError(f"{where}: unknown action {name!r} (known: {known}, iot:*)") from None
    return out


def validate_policy_document(document: object) -> dict[str, Any]:
    """Check a document's shape; raise :class:`PolicyError` naming the statement at fault."""
    if not isinstance(document, dict):
        raise PolicyError("a policy document must be a JSON object")
    statements = document.get("Statement")
    if isinstance(statements, dict):
        statements = [statements]
    if not isinstance(statements, list) or not statements:
        raise PolicyError("a policy document needs a non-empty Statement list")
    for i, st in enumerate(statements):
        where = f"Statement[{i}]"
        if not isinstance(st, dict):
            raise PolicyError(f"{where} must be an object")
        if st.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError(f"{where}.Effect must be Allow or Deny")
        _actions(st.get("Action"), f"{where}.Action")
        for res in _as_list(st.get("Resource"), f"{where}.Resource"):
            for var in _VAR_RE.findall(res):
                if var not in VARIABLES:
                    raise PolicyError(
                        f"{where}.Resource {res!r}: unknown variable ${{{var}}} "
                        f"(known: {', '.join('${' + v + '}' for v in VARIABLES)})"
                    )
    return document


def _pattern(resource: str, variables: Mapping[str, str | None]) -> tuple[str, str] | None:
    """(resource type, regex) for one resource, or None if a variable has no value."""
    if resource == "*":
        return "*", ".*"
    m = _ARN_RE.match(resource)
    body = m.group(1) if m else resource
    rtype, _, rest = body.partition("/")
    parts: list[str] = []
    pos = 0
    for var in _VAR_RE.finditer(rest):
        parts.append(_glob(rest[pos : var.start()]))
        value = variables.get(var.group(1))
        if value is None:
            return None
        parts.append(re.escape(value))  # a value is literal: a '*' in a client id is no glob
        pos = var.end()
    parts.append(_glob(rest[pos:]))
    return rtype, "".join(parts)


def _glob(text: str) -> str:
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)


@dataclass(frozen=True)
class CompiledPolicy:
    """Allow and deny regexes per action, for one connection's variable values."""

    allow: Mapping[Action, re.Pattern[str] | None]
    deny: Mapping[Action, re.Pattern[str] | None]

    def decision(self, action: Action, target: str) -> bool | None:
        """False = explicitly denied, True = allowed, None = not mentioned."""
        deny = self.deny.get(action)
        if deny is not None and deny.fullmatch(target):
            return False
        allow = self.allow.get(action)
        if allow is not None and allow.fullmatch(target):
            return True
        return None


def compile_policy(
    document: Mapping[str, Any], variables: Mapping[str, str | None]
) -> CompiledPolicy:
    """Compile a validated document for the given variable values."""
    buckets: dict[str, dict[Action, list[str]]] = {"Allow": {}, "Deny": {}}
    statements = document["Statement"]
    if isinstance(statements, dict):
        statements = [statements]
    for i, st in enumerate(statements):
        actions = _actions(st["Action"], f"Statement[{i}].Action")
        for res in _as_list(st["Resource"], f"Statement[{i}].Resource"):
            compiled = _pattern(res, variables)
            if compiled is None:
                continue
            rtype, regex = compiled
            for action in actions:
                if rtype in ("*", _RESOURCE_TYPE[action]):
                    buckets[st["Effect"]].setdefault(action, []).append(regex)

    def join(patterns: dict[Action, list[str]]) -> dict[Action, re.Pattern[str] | None]:
        return {
            a: re.compile("|".join(f"(?:{p})" for p in ps), re.DOTALL) for a, ps in patterns.items()
        }

    return CompiledPolicy(allow=join(buckets["Allow"]), deny=join(buckets["Deny"]))


class PolicySet:
    """Several compiled policies taken together: any Deny wins, else any Allow, else deny."""

    def __init__(self, policies: Sequence[CompiledPolicy]) -> None:
        self._policies = tuple(policies)

    @classmethod
    def from_documents(
        cls, documents: Iterable[Mapping[str, Any]], variables: Mapping[str, str | None]
    ) -> PolicySet:
        return cls([compile_policy(d, variables) for d in documents])

    @property
    def policies(self) -> tuple[CompiledPolicy, ...]:
        return self._policies

    def allows(self, action: Action, target: str) -> bool:
        allowed = False
        for policy in self._policies:
            decision = policy.decision(action, target)
            if decision is False:
                return False
            allowed = allowed or bool(decision)
        return allowed
