"""Sans-I/O broker core: subscriptions trie, retained store, sessions; returns decisions.

The asyncio server (``lantern.mqtt.server``) feeds it connections and packets and writes the
:class:`Delivery` decisions it returns. See :mod:`lantern.mqtt.broker.core`.
"""

from __future__ import annotations

from lantern.mqtt.broker.core import Broker, BrokerStats, ConnectOutcome, ReceiveCheck
from lantern.mqtt.broker.message import EncodedPublish, Message
from lantern.mqtt.broker.retained import RetainedStore
from lantern.mqtt.broker.session import NEVER_EXPIRES, Delivery, Session
from lantern.mqtt.broker.trie import SharedGroup, Subscription, SubscriptionTrie

__all__ = [
    "NEVER_EXPIRES",
    "Broker",
    "BrokerStats",
    "ConnectOutcome",
    "Delivery",
    "EncodedPublish",
    "Message",
    "ReceiveCheck",
    "RetainedStore",
    "Session",
    "SharedGroup",
    "Subscription",
    "SubscriptionTrie",
]
