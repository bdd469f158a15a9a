"""Settings of fleet provisioning and of the gateway's device access control."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from lantern.settings.base import SectionModel


class ProvisioningSettings(SectionModel):
    """Fleet provisioning by claim, ownership tokens, the pre-provisioning hook, and access
    control of the gateway (revocation, anonymous listeners)."""

    key_type: Literal["rsa-2048", "ec-p256"] = Field(
        default="rsa-2048",
        description="Key pair CreateKeysAndCertificate generates (AWS uses RSA-2048).",
    )
    key_pool_size: int = Field(
        default=32,
        ge=0,
        le=100_000,
        description="RSA-2048 keys generated ahead, from startup, in background threads (kept "
        "in memory only). A burst of CreateKeysAndCertificate up to this size does not wait "
        "for key generation (~35 ms of CPU per key); beyond it, requests are served at the "
        "generation rate (~20-30 keys/s per core). About 5 KB of memory per key. 0 = none.",
    )
    ownership_token_ttl_seconds: int = Field(
        default=3600,
        ge=10,
        le=86400,
        description="How long an ownership token is valid (AWS: 1 hour). Certificates not "
        "registered by then are deleted.",
    )
    sweep_interval_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How often certificates whose ownership token expired unused are deleted.",
    )
    hook_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=5.0,
        description="Timeout of the pre-provisioning hook (AWS: 5 s); a timeout denies.",
    )
    revocation_poll_seconds: float = Field(
        default=0.5,
        gt=0,
        le=1.0,
        description="How often the gateway looks for deactivated or revoked certificates to "
        "close their live connections, and for things created by other processes (<= 1 s).",
    )
    auth_failure_window_seconds: float = Field(
        default=60.0,
        gt=0,
        le=86400,
        description="Window of the failed-authentication throttle: a source address or user "
        "name (mTLS: certificate) that reaches its failure limit in a window is refused at "
        "once (CONNACK 0x8A Banned, 3.1.1: 5) until the window ends.",
    )
    auth_max_failures_per_address: int = Field(
        default=30,
        ge=0,
        description="Failed MQTT authentications per source address (IPv6: per /64) and window "
        "before further attempts from it are refused at once. 0 = no limit.",
    )
    auth_max_failures_per_user: int = Field(
        default=10,
        ge=0,
        description="Failed authentications per user name (mTLS: per certificate) and window, "
        "from any address, before further attempts are refused at once (a success clears "
        "it). 0 = no limit.",
    )
    auth_throttle_max_entries: int = Field(
        default=10_000,
        ge=1,
        le=10_000_000,
        description="Addresses, and user names, the throttle remembers (each table; the oldest "
        "window is forgotten first).",
    )
    password_check_threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Threads that check MQTT passwords (scrypt, ~30-50 ms of CPU each): a "
        "flood of CONNECTs takes at most this many cores.",
    )
    password_check_queue: int = Field(
        default=16,
        ge=1,
        le=100_000,
        description="Password checks accepted at once (running or waiting); more get CONNACK "
        "0x89 Server busy (3.1.1: 3).",
    )
    anonymous_listeners: list[Literal["tcp", "ws"]] = Field(
        default_factory=list,
        description="Plain listeners that accept clients without a username (DEVELOPMENT ONLY). "
        "Anonymous clients may use any topic except reserved $aws/... topics and registered "
        "devices' topics (<thing>, <thing>/...), unless anonymous_policy is set. Empty = none.",
    )
    anonymous_policy: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.,@=+-]{1,128}$",
        description="Name of a stored policy (`lantern policies put NAME -f FILE`) that decides "
        "what anonymous clients may do instead of the default access (reserved $aws/... topics "
        "stay closed). Must exist when `lantern serve` starts; read at every anonymous CONNECT. "
        "Unset = the default anonymous access.",
    )
