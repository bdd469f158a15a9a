"""Provisioning templates: validation of a body, and its evaluation for one RegisterThing.

A body has the AWS fleet-provisioning structure (docs/device-topics.md): ``Parameters``,
``Mappings``, ``Resources`` (``AWS::IoT::Thing``, ``AWS::IoT::Certificate``, ``AWS::IoT::Policy``)
and ``DeviceConfiguration``. Supported intrinsics: ``Ref``, ``Fn::Join``, ``Fn::Sub``,
``Fn::Select``, ``Fn::Split``, ``Fn::FindInMap``.

Lantern additions (all optional): a parameter may declare ``AllowedPattern`` (full match) and
``MaxLength``, as in CloudFormation; the pseudo parameter ``Lantern::Certificate::ShortId`` is
the first 12 hex digits of the certificate id (a unique suffix for thing names).

Evaluation raises :class:`ProvisioningRejected` (400 ``InvalidParameters``) with a message that
names the parameter or resource at fault.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from lantern import jsonlimits
from lantern.provisioning.errors import ProvisioningRejected, TemplateInvalid

__all__ = [
    "CERTIFICATE_ID_PARAMETER",
    "SHORT_ID_PARAMETER",
    "TEMPLATE_NAME_RE",
    "THING_NAME_RE",
    "ProvisioningPlan",
    "evaluate_template",
    "validate_template_body",
    "validate_template_name",
]

TEMPLATE_NAME_RE = re.compile(r"^[0-9A-Za-z_-]{1,36}$")
THING_NAME_RE = re.compile(r"^[a-zA-Z0-9:_-]{1,128}$")
ATTRIBUTE_NAME_RE = re.compile(r"^[a-zA-Z0-9_.,@/:#-]{1,128}$")
ATTRIBUTE_VALUE_RE = re.compile(r"^[a-zA-Z0-9_.,@/:#=\[\]-]{0,800}$")
CERTIFICATE_ID_PARAMETER = "AWS::IoT::Certificate::Id"
SHORT_ID_PARAMETER = "Lantern::Certificate::ShortId"
MAX_BODY_CHARS = 10240
MAX_PARAMETER_VALUE = 4096
_SUB_RE = re.compile(r"\$\{([^}]*)\}")
_RESOURCE_TYPES = ("AWS::IoT::Thing", "AWS::IoT::Certificate", "AWS::IoT::Policy")
_OVERRIDES = ("DO_NOTHING", "REPLACE", "FAIL", "MERGE")


@dataclass(frozen=True)
class ProvisioningPlan:
    """What a template says to do for one device."""

    thing_name: str
    attributes: dict[str, str]
    attributes_override: str  # what to do with an existing thing's attributes
    thing_override_fail: bool
    certificate_status: str  # ACTIVE | INACTIVE
    policy_names: tuple[str, ...]
    inline_policies: tuple[tuple[str, dict[str, Any]], ...]  # (logical id, document)
    device_configuration: dict[str, str]
    parameters: dict[str, str] = field(default_factory=dict)  # resolved values


def validate_template_name(name: str) -> None:
    if not TEMPLATE_NAME_RE.match(name):
        raise TemplateInvalid(
            f"template name {name!r} is invalid: 1-36 characters of A-Z a-z 0-9 _ -"
        )


def validate_template_body(body: object) -> dict[str, Any]:
    """Check a body's structure (not its values, which depend on the device's parameters)."""
    if not isinstance(body, dict):
        raise TemplateInvalid("template body must be a JSON object")
    if len(json.dumps(body)) > MAX_BODY_CHARS:
        raise TemplateInvalid(f"template body is longer than {MAX_BODY_CHARS} characters")
    unknown = set(body) - {"Parameters", "Mappings", "Resources", "DeviceConfiguration"}
    if unknown:
        raise TemplateInvalid(f"template body has unknown sections: {', '.join(sorted(unknown))}")
    params = body.get("Parameters", {})
    if not isinstance(params, dict):
        raise TemplateInvalid("Parameters must be an object")
    for name, spec in params.items():
        if not isinstance(spec, dict) or spec.get("Type", "String") != "String":
            raise TemplateInvalid(f"parameter {name!r} must be an object with Type String")
        if "AllowedPattern" in spec:
            try:
                re.compile(str(spec["AllowedPattern"]))
            except re.error as exc:
                raise TemplateInvalid(f"parameter {name!r}: AllowedPattern: {exc}") from None
        if "Default" in spec and not isinstance(spec["Default"], str):
            raise TemplateInvalid(f"parameter {name!r}: Default must be a string")
    mappings = body.get("Mappings", {})
    if not isinstance(mappings, dict) or not all(
        isinstance(m, dict) and all(isinstance(v, dict) for v in m.values())
        for m in mappings.values()
    ):
        raise TemplateInvalid("Mappings must be a two-level object of objects")
    resources = body.get("Resources")
    if not isinstance(resources, dict) or not resources:
        raise TemplateInvalid("Resources must be a non-empty object")
    kinds: list[str] = []
    for logical, res in resources.items():
        if not isinstance(res, dict) or res.get("Type") not in _RESOURCE_TYPES:
            raise TemplateInvalid(
                f"resource {logical!r}: Type must be one of {', '.join(_RESOURCE_TYPES)}"
            )
        props = res.get("Properties", {})
        if not isinstance(props, dict):
            raise TemplateInvalid(f"resource {logical!r}: Properties must be an object")
        kinds.append(res["Type"])
        if res["Type"] == "AWS::IoT::Thing" and "ThingName" not in props:
            raise TemplateInvalid(f"resource {logical!r}: an AWS::IoT::Thing needs ThingName")
        if res["Type"] == "AWS::IoT::Policy" and ("PolicyName" in props) == (
            "PolicyDocument" in props
        ):
            raise TemplateInvalid(
                f"resource {logical!r}: give exactly one of PolicyName or PolicyDocument"
            )
    if kinds.count("AWS::IoT::Thing") != 1:
        raise TemplateInvalid("Resources must hold exactly one AWS::IoT::Thing")
    if kinds.count("AWS::IoT::Certificate") > 1:
        raise TemplateInvalid("Resources may hold at most one AWS::IoT::Certificate")
    config = body.get("DeviceConfiguration", {})
    if not isinstance(config, dict):
        raise TemplateInvalid("DeviceConfiguration must be a flat object")
    return body


def _bad(message: str) -> ProvisioningRejected:
    return ProvisioningRejected(400, "InvalidParameters", message)


class _Evaluator:
    def __init__(self, values: Mapping[str, str], mappings: Mapping[str, Any]) -> None:
        self.values = values
        self.mappings = mappings

    def ref(self, name: object, where: str) -> str:
        if not isinstance(name, str):
            raise _bad(f"{where}: Ref needs a parameter name")
        if name not in self.values:
            raise _bad(f"{where}: parameter {name!r} is missing and has no default")
        return self.values[name]

    def eval(self, node: Any, where: str) -> Any:
        if isinstance(node, str | int | float | bool) or node is None:
            return node
        if isinstance(node, list):
            return [self.eval(item, where) for item in node]
        if not isinstance(node, dict):
            raise _bad(f"{where}: unsupported value")
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                return self.ref(arg, where)
            if key.startswith("Fn::"):
                return self.function(key, arg, where)
        return {k: self.eval(v, f"{where}.{k}") for k, v in node.items()}

    def function(self, key: str, arg: Any, where: str) -> Any:
        if key == "Fn::Join":
            if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str)):
                raise _bad(f"{where}: Fn::Join needs [separator, [values]]")
            items = self.eval(arg[1], where)
            if not isinstance(items, list):
                raise _bad(f"{where}: Fn::Join needs a list of values")
            return arg[0].join(self.text(i, where) for i in items)
        if key == "Fn::Sub":
            template: str | None = arg if isinstance(arg, str) else None
            local: Any = {}
            if isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str):
                template, local = arg[0], self.eval(arg[1], where)
            if template is None or not isinstance(local, dict):
                raise _bad(f"{where}: Fn::Sub needs a string or [string, {{variables}}]")
            variables: dict[str, Any] = local

            def sub(m: re.Match[str]) -> str:
                name = m.group(1)
                if name in variables:
                    return self.text(variables[name], where)
                return self.ref(name, where)

            return _SUB_RE.sub(sub, template)
        if key == "Fn::Select":
            if not (isinstance(arg, list) and len(arg) == 2):
                raise _bad(f"{where}: Fn::Select needs [index, [values]]")
            index, items = self.eval(arg[0], where), self.eval(arg[1], where)
            try:
                chosen = items[int(index)]
            except (ValueError, TypeError, IndexError):
                raise _bad(f"{where}: Fn::Select index {index!r} is out of range") from None
            if chosen is None:
                raise _bad(f"{where}: Fn::Select chose a null value")
            return chosen
        if key == "Fn::Split":
            if not (isinstance(arg, list) and len(arg) == 2 and isinstance(arg[0], str)):
                raise _bad(f"{where}: Fn::Split needs [separator, value]")
            if not arg[0]:
                raise _bad(f"{where}: Fn::Split separator must not be empty")
            return self.text(self.eval(arg[1], where), where).split(arg[0])
        if key == "Fn::FindInMap":
            if not (isinstance(arg, list) and len(arg) == 3):
                raise _bad(f"{where}: Fn::FindInMap needs [map, key, key]")
            name, k1, k2 = (self.text(self.eval(a, where), where) for a in arg)
            try:
                return self.mappings[name][k1][k2]
            except (KeyError, TypeError):
                raise _bad(f"{where}: Fn::FindInMap found no {name}.{k1}.{k2}") from None
        raise _bad(f"{where}: intrinsic function {key} is not supported")

    def text(self, value: Any, where: str) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        raise _bad(f"{where}: expected a string value")


def _resolve_parameters(
    specs: Mapping[str, Any], given: Mapping[str, str], certificate_id: str
) -> dict[str, str]:
    values: dict[str, str] = {}
    for name, spec in specs.items():
        if name in given:
            value = given[name]
        elif "Default" in spec:
            value = spec["Default"]
        else:
            continue  # not substituted: an error only if something refers to it
        if len(value) > int(spec.get("MaxLength", MAX_PARAMETER_VALUE)):
            raise _bad(f"parameter {name!r} is longer than {spec.get('MaxLength', 4096)}")
        pattern = spec.get("AllowedPattern")
        if pattern is not None and not re.fullmatch(str(pattern), value):
            raise _bad(f"parameter {name!r} value {value!r} does not match {pattern}")
        values[name] = value
    values[CERTIFICATE_ID_PARAMETER] = certificate_id
    values[SHORT_ID_PARAMETER] = certificate_id[:12]
    return values


def evaluate_template(
    body: Mapping[str, Any], parameters: Mapping[str, str], certificate_id: str
) -> ProvisioningPlan:
    """Evaluate ``body`` for a device with ``parameters`` and certificate ``certificate_id``."""
    specs = body.get("Parameters", {})
    values = _resolve_parameters(specs, parameters, certificate_id)
    ev = _Evaluator(values, body.get("Mappings", {}))
    thing_name = ""
    attributes: dict[str, str] = {}
    attributes_override, override_fail = "DO_NOTHING", False
    status = "ACTIVE"
    policy_names: list[str] = []
    inline: list[tuple[str, dict[str, Any]]] = []
    for logical, res in body["Resources"].items():
        props = res.get("Properties", {})
        where = f"Resources.{logical}"
        if res["Type"] == "AWS::IoT::Thing":
            thing_name = ev.text(ev.eval(props["ThingName"], f"{where}.ThingName"), where)
            if not THING_NAME_RE.match(thing_name):
                raise _bad(
                    f"thing name {thing_name!r} is invalid: 1-128 characters of "
                    "a-z A-Z 0-9 : _ - (check the parameters it is built from)"
                )
            raw = ev.eval(props.get("AttributePayload", {}), f"{where}.AttributePayload")
            if not isinstance(raw, dict):
                raise _bad(f"{where}.AttributePayload must be an object")
            for key, value in raw.items():
                text = ev.text(value, f"{where}.AttributePayload.{key}")
                if not ATTRIBUTE_NAME_RE.match(key) or not ATTRIBUTE_VALUE_RE.match(text):
                    raise _bad(f"attribute {key!r}={text!r} has characters AWS IoT does not allow")
                attributes[key] = text
            overrides = res.get("OverrideSettings", {})
            attributes_override = str(overrides.get("AttributePayload", "DO_NOTHING")).upper()
            override_fail = "FAIL" in {str(v).upper() for v in overrides.values()}
            if attributes_override not in _OVERRIDES:
                raise _bad(f"{where}.OverrideSettings: unknown value {attributes_override}")
        elif res["Type"] == "AWS::IoT::Certificate":
            status = ev.text(ev.eval(props.get("Status", "ACTIVE"), where), where).upper()
            if status not in ("ACTIVE", "INACTIVE"):
                raise _bad(f"{where}.Status must be ACTIVE or INACTIVE, not {status}")
        else:
            if "PolicyName" in props:
                policy_names.append(ev.text(ev.eval(props["PolicyName"], where), where))
            else:
                doc = ev.eval(props["PolicyDocument"], f"{where}.PolicyDocument")
                if isinstance(doc, str):
                    try:
                        doc = jsonlimits.loads(doc)
                    except ValueError:  # JSONTooDeep is one
                        raise _bad(f"{where}.PolicyDocument is not valid JSON") from None
                if not isinstance(doc, dict):
                    raise _bad(f"{where}.PolicyDocument must be an object")
                inline.append((logical, doc))
    config: dict[str, str] = {}
    for key, value in body.get("DeviceConfiguration", {}).items():
        config[key] = ev.text(ev.eval(value, f"DeviceConfiguration.{key}"), "DeviceConfiguration")
    return ProvisioningPlan(
        thing_name=thing_name,
        attributes=attributes,
        attributes_override=attributes_override,
        thing_override_fail=override_fail,
        certificate_status=status,
        policy_names=tuple(policy_names),
        inline_policies=tuple(inline),
        device_configuration=config,
        parameters={k: v for k, v in values.items() if k in specs},
    )
