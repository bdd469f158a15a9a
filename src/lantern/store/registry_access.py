"""Policies and MQTT users of the registry, under their historical module name: the functions
are :mod:`lantern.store.registry.access`'s, the records :mod:`lantern.store.registry.records`'."""

from __future__ import annotations

from lantern.store.registry.access import (
    attach_policy,
    attach_policy_sync,
    certificate_policy_names,
    connection_policies_sync,
    delete_mqtt_user,
    delete_policy,
    get_mqtt_user,
    get_policy,
    get_policy_sync,
    insert_mqtt_user,
    list_mqtt_users,
    list_policies,
    project_policies,
    update_mqtt_user,
    upsert_policy,
    upsert_policy_sync,
)
from lantern.store.registry.records import MqttUserRecord, PolicyRecord

__all__ = [
    "MqttUserRecord",
    "PolicyRecord",
    "attach_policy",
    "attach_policy_sync",
    "certificate_policy_names",
    "connection_policies_sync",
    "delete_mqtt_user",
    "delete_policy",
    "get_mqtt_user",
    "get_policy",
    "get_policy_sync",
    "insert_mqtt_user",
    "list_mqtt_users",
    "list_policies",
    "project_policies",
    "update_mqtt_user",
    "upsert_policy",
    "upsert_policy_sync",
]
