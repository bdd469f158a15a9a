"""Settings of the app gateway (``[push]`` and one sub-table per provider).

Each provider is configured on its own and is enabled by its defining setting (APNs: ``key_file``;
FCM: ``service_account_file``; SES: ``sender``; SMTP: ``host``; SNS and Slack: ``enabled``), so a
deployment with only SMTP starts fine. Endpoints are configurable, which is how tests point the
providers at local stand-ins. Environment: ``LANTERN_PUSH__APNS__KEY_FILE=...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from lantern.settings.base import SectionModel


class APNsSettings(SectionModel):
    """Apple Push Notification service, token (``.p8``) authentication over HTTP/2."""

    key_file: Path | None = Field(
        default=None, description="The .p8 signing key from Apple; setting it enables APNs."
    )
    key_id: str | None = Field(default=None, description="The key's id (JWT header 'kid').")
    team_id: str | None = Field(default=None, description="Apple developer team id (JWT 'iss').")
    topic: str | None = Field(default=None, description="The app's bundle id (apns-topic).")
    sandbox: bool = Field(
        default=False, description="Use api.sandbox.push.apple.com (development builds)."
    )
    host: str | None = Field(
        default=None,
        description="host[:port] overriding the production/sandbox host (e.g. a test stand-in).",
    )
    ca_file: Path | None = Field(
        default=None, description="Extra CA bundle to trust for the APNs host (stand-ins)."
    )
    token_refresh_seconds: int = Field(
        default=3000,
        ge=1200,
        le=3500,
        description="Reuse one provider JWT this long; Apple wants 20-60 minutes.",
    )
    max_concurrent_sends: int = Field(default=1000, ge=1, description="In-flight limit.")

    @property
    def enabled(self) -> bool:
        return self.key_file is not None

    @property
    def effective_host(self) -> str:
        if self.host:
            return self.host
        return "api.sandbox.push.apple.com" if self.sandbox else "api.push.apple.com"

    @model_validator(mode="after")
    def _complete(self) -> APNsSettings:
        if self.key_file is not None:
            missing = [n for n in ("key_id", "team_id", "topic") if not getattr(self, n)]
            if missing:
                raise ValueError(f"APNs needs {', '.join(missing)} when key_file is set")
        return self


class FCMSettings(SectionModel):
    """Firebase Cloud Messaging HTTP v1 with a service-account JSON file."""

    service_account_file: Path | None = Field(
        default=None, description="Service-account JSON; setting it enables FCM."
    )
    project_id: str | None = Field(
        default=None, description="Firebase project id; default: the service account's."
    )
    url: str = Field(
        default="https://fcm.googleapis.com", description="Base URL of the FCM v1 API."
    )
    token_uri: str | None = Field(
        default=None, description="OAuth token endpoint; default: the service account's."
    )
    ca_file: Path | None = Field(default=None, description="Extra CA bundle to trust.")
    max_concurrent_sends: int = Field(default=1000, ge=1, description="In-flight limit.")

    @property
    def enabled(self) -> bool:
        return self.service_account_file is not None


class SESSettings(SectionModel):
    """Amazon SES (SendEmail) through aiobotocore; AWS credentials from the usual chain."""

    sender: str | None = Field(
        default=None, description="Verified From address; setting it enables SES."
    )
    region: str = Field(default="us-east-1", description="AWS region.")
    endpoint_url: str | None = Field(default=None, description="Override (e.g. a moto server).")

    @property
    def enabled(self) -> bool:
        return self.sender is not None


class SMTPSettings(SectionModel):
    """Any SMTP server through aiosmtplib (the self-hosted alternative to SES)."""

    host: str | None = Field(default=None, description="SMTP server; setting it enables SMTP.")
    port: int = Field(default=587, ge=1, le=65535)
    tls: Literal["starttls", "tls", "none"] = Field(
        default="starttls", description="starttls (587), implicit tls (465) or none (local relay)."
    )
    username: str | None = Field(default=None)
    password: str | None = Field(default=None)
    sender: str = Field(default="lantern@localhost", description="From address.")
    timeout: float = Field(default=10.0, gt=0)

    @property
    def enabled(self) -> bool:
        return self.host is not None


class SNSSettings(SectionModel):
    """Amazon SNS Publish to phone numbers (SMS)."""

    enabled: bool = Field(default=False, description="Send sms: destinations through SNS.")
    region: str = Field(default="us-east-1")
    endpoint_url: str | None = Field(default=None, description="Override (e.g. a moto server).")
    sender_id: str | None = Field(default=None, description="AWS.SNS.SMS.SenderID, if any.")


class SlackSettings(SectionModel):
    """Slack incoming webhooks (``slack:T.../B.../...``)."""

    enabled: bool = Field(default=False, description="Send slack: destinations.")
    base_url: str = Field(default="https://hooks.slack.com/services")


#: What enables each ``/push`` scheme, for the answer to a scheme no provider serves.
ENABLED_BY: dict[str, str] = {
    "apns": "push.apns.key_file with key_id, team_id and topic (LANTERN_PUSH__APNS__KEY_FILE, ...)",
    "gcm": "push.fcm.service_account_file (LANTERN_PUSH__FCM__SERVICE_ACCOUNT_FILE)",
    "mailto": "push.ses.sender (LANTERN_PUSH__SES__SENDER) or push.smtp.host "
    "(LANTERN_PUSH__SMTP__HOST)",
    "sms": "push.sns.enabled = true (LANTERN_PUSH__SNS__ENABLED=true)",
    "slack": "push.slack.enabled = true (LANTERN_PUSH__SLACK__ENABLED=true)",
}


def not_configured_message(scheme: str) -> str:
    """Why ``scheme`` cannot be sent here, and the setting that enables it."""
    setting = ENABLED_BY.get(scheme, f"the push.{scheme} settings")
    return f"no {scheme} provider is configured on this gateway; set {setting} to enable it"


class PushSettings(SectionModel):
    """The app gateway: ``/push``, API keys and the providers."""

    retry_budget_seconds: float = Field(
        default=10.0, gt=0, le=120, description="Time for all attempts of one notification."
    )
    default_rate_per_minute: int | None = Field(
        default=6000, ge=1, description="Rate limit of keys created without --rate."
    )
    max_request_bytes: int = Field(
        default=65536, ge=1024, description="Larger /push bodies get 413."
    )
    request_timeout_seconds: float = Field(
        default=5.0, gt=0, description="Timeout of one provider request."
    )
    drain_seconds: float = Field(
        default=15.0, ge=0, description="On shutdown, wait this long for in-flight sends."
    )
    key_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        le=60,
        description="Cache of verified keys; a revocation by another process applies within it.",
    )
    email_via: Literal["auto", "ses", "smtp"] = Field(
        default="auto", description="Email provider when both SES and SMTP are configured."
    )
    apns: APNsSettings = Field(default_factory=APNsSettings)
    fcm: FCMSettings = Field(default_factory=FCMSettings)
    ses: SESSettings = Field(default_factory=SESSettings)
    smtp: SMTPSettings = Field(default_factory=SMTPSettings)
    sns: SNSSettings = Field(default_factory=SNSSettings)
    slack: SlackSettings = Field(default_factory=SlackSettings)

    @model_validator(mode="after")
    def _email_choice(self) -> PushSettings:
        if self.email_via == "auto" and self.ses.enabled and self.smtp.enabled:
            raise ValueError("both SES and SMTP are configured: set push.email_via to ses or smtp")
        if self.email_via == "ses" and not self.ses.enabled:
            raise ValueError("push.email_via = 'ses' but push.ses.sender is not set")
        if self.email_via == "smtp" and not self.smtp.enabled:
            raise ValueError("push.email_via = 'smtp' but push.smtp.host is not set")
        return self

    def configured_schemes(self) -> frozenset[str]:
        """The destination schemes a provider is configured for (what ``lantern.push.factory``
        builds); the others are answered 503 by ``/push`` (see :data:`ENABLED_BY`)."""
        enabled = {
            "apns": self.apns.enabled,
            "gcm": self.fcm.enabled,
            "mailto": self.ses.enabled or self.smtp.enabled,
            "sms": self.sns.enabled,
            "slack": self.slack.enabled,
        }
        return frozenset(scheme for scheme, on in enabled.items() if on)
