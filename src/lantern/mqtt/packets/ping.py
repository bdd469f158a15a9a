"""PINGREQ and PINGRESP (MQTT 5.0 §3.12-3.13): no body, encodings are constants."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

from lantern.mqtt.primitives import check_flags, expect_end

__all__ = ["Pingreq", "Pingresp"]

_PINGREQ = b"\xc0\x00"
_PINGRESP = b"\xd0\x00"


@dataclass(frozen=True, slots=True)
class Pingreq:
    """PINGREQ (client to server)."""

    def encode(self, protocol_level: int) -> bytes:
        """The constant two bytes."""
        return _PINGREQ

    @classmethod
    def decode(cls, flags: int, body: memoryview, protocol_level: int) -> Self:
        """Flags 0, empty body."""
        check_flags(flags, 0, "PINGREQ")
        expect_end(body, 0, "PINGREQ")
        return cls()


@dataclass(frozen=True, slots=True)
class Pingresp:
    """PINGRESP (server to client)."""

    def encode(self, protocol_level: int) -> bytes:
        """The constant two bytes."""
        return _PINGRESP

    @classmethod
    def decode(cls, flags: int, body: memoryview, protocol_level: int) -> Self:
        """Flags 0, empty body."""
        check_flags(flags, 0, "PINGRESP")
        expect_end(body, 0, "PINGRESP")
        return cls()
