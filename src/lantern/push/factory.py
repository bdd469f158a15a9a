"""Build the configured providers from settings (each one independent of the others)."""

from __future__ import annotations

from lantern.push.providers.apns import APNsProvider
from lantern.push.providers.base import PushProvider
from lantern.push.providers.email_ses import SESProvider
from lantern.push.providers.email_smtp import SMTPProvider
from lantern.push.providers.fcm import FCMProvider
from lantern.push.providers.slack import SlackProvider
from lantern.push.providers.sms_sns import SNSProvider
from lantern.settings.push import PushSettings


def build_providers(settings: PushSettings) -> dict[str, PushProvider]:
    """Providers by scheme, for the providers ``settings`` enables."""
    timeout = settings.request_timeout_seconds
    providers: dict[str, PushProvider] = {}
    if settings.apns.enabled:
        providers["apns"] = APNsProvider(settings.apns, timeout=timeout)
    if settings.fcm.enabled:
        providers["gcm"] = FCMProvider(settings.fcm, timeout=timeout)
    use_ses = settings.email_via == "ses" or (settings.email_via == "auto" and settings.ses.enabled)
    if use_ses:
        providers["mailto"] = SESProvider(settings.ses)
    elif settings.smtp.enabled:
        providers["mailto"] = SMTPProvider(settings.smtp)
    if settings.sns.enabled:
        providers["sms"] = SNSProvider(settings.sns)
    if settings.slack.enabled:
        providers["slack"] = SlackProvider(settings.slack, timeout=timeout)
    return providers
