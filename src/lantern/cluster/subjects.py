"""MQTT topics and filters as NATS subjects, so that NATS routes by subscription interest.

Each topic level is one subject token, encoded reversibly: bytes NATS forbids or treats
specially in a token (``.``, ``*``, ``>``, whitespace and other non-printable or non-ASCII
characters) and ``%`` itself become ``%XX`` (UTF-8 bytes in hex); an empty level becomes a lone
``%`` (never produced by the escaping). Topics starting with ``$`` live under their own prefix
(``<cluster>.s.``) and all others under ``<cluster>.m.``: a filter starting with a wildcard is
only ever subscribed under ``m``, which is MQTT's rule that ``#`` and ``+`` at the first level do
not match ``$`` topics ([MQTT-4.7.2-1]). ``+`` becomes ``*``; ``a/#`` becomes two subjects,
``a`` and ``a.>`` (``#`` also matches its parent level, [MQTT-4.7.1-2]).

A topic whose subject would be longer than :data:`MAX_SUBJECT` goes to the one subject
``<cluster>.long`` instead, which every node subscribes to; the receiving node matches it
against its own subscriptions as for every message (correct, but not interest-routed).
"""

from __future__ import annotations

import re

__all__ = [
    "MAX_SUBJECT",
    "decode_token",
    "encode_token",
    "filter_subjects",
    "topic_from_subject",
    "topic_subject",
]

MAX_SUBJECT = 3072  # well under nats-server's default 4 KiB control line

_SAFE = re.compile(r"[!-$&-)+,\-/-=?-~]+")  # printable ASCII but % * . > (and no space)


def encode_token(level: str) -> str:
    if not level:
        return "%"
    if _SAFE.fullmatch(level):
        return level
    out = []
    for ch in level:
        if _SAFE.fullmatch(ch):
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode())
    return "".join(out)


def decode_token(token: str) -> str:
    if token == "%":  # noqa: S105 - a subject token, not a secret
        return ""
    if "%" not in token:
        return token
    raw = bytearray()
    i = 0
    while i < len(token):
        if token[i] == "%":
            raw.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(token[i].encode())
            i += 1
    return raw.decode()


def _space(prefix: str, first: str) -> str:
    return f"{prefix}.s" if first.startswith("$") else f"{prefix}.m"


def topic_subject(prefix: str, topic: str) -> str:
    """The subject a message on ``topic`` is published to (or ``<prefix>.long``)."""
    levels = topic.split("/")
    subject = ".".join((_space(prefix, levels[0]), *map(encode_token, levels)))
    return subject if len(subject) <= MAX_SUBJECT else f"{prefix}.long"


def topic_from_subject(prefix: str, subject: str) -> str:
    """Inverse of :func:`topic_subject` (not for ``<prefix>.long``)."""
    rest = subject[len(prefix) + 3 :]
    return "/".join(decode_token(t) for t in rest.split("."))


def filter_subjects(prefix: str, topic_filter: str) -> list[str]:
    """The subjects to subscribe to for ``topic_filter`` (unshared part of it). A filter too
    long for a subject gives none: its messages arrive on ``<prefix>.long`` anyway (every
    topic it can match is at least as long)."""
    levels = topic_filter.split("/")
    first = levels[0]
    base = f"{prefix}.s" if first.startswith("$") else f"{prefix}.m"
    tokens = [base]
    for level in levels:
        if level == "#":
            parent = ".".join(tokens)
            subjects = [f"{parent}.>"]
            if len(tokens) > 1:
                subjects.append(parent)
            return [s for s in subjects if len(s) <= MAX_SUBJECT]
        tokens.append("*" if level == "+" else encode_token(level))
    subject = ".".join(tokens)
    return [subject] if len(subject) <= MAX_SUBJECT else []
