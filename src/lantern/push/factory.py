"""Build the configured providers from settings (each one independent of the others).

Provider modules are imported only when their provider is enabled: the AWS and Google client
libraries are heavy, and a deployment with only SMTP (or a CLI command) should not pay for them.
"""

from __future__ import annotations

from lantern.push.providers.base import PushProvider
from lantern.settings.push import PushSettings


def build_providers(settings: PushSettings) -> dict[str, PushProvider]:
    """Providers by scheme, for the providers ``settings`` enables."""
    timeout = settings.request_timeout_seconds
    providers: dict[str, PushProvider] = {}
    if settings.apns.enabled:
        from lantern.push.providers.apns import APNsProvider

        providers["apns"] = APNsProvider(settings.apns, timeout=timeout)
    if settings.fcm.enabled:
        from lantern.push.providers.fcm import FCMProvider

        providers["gcm"] = FCMProvider(settings.fcm, timeout=timeout)
    use_ses = settings.email_via == "ses" or (settings.email_via == "auto" and settings.ses.enabled)
    if use_ses:
        from lantern.push.providers.email_ses import SESProvider

        providers["mailto"] = SESProvider(settings.ses)
    elif settings.smtp.enabled:
        from lantern.push.providers.email_smtp import SMTPProvider

        providers["mailto"] = SMTPProvider(settings.smtp)
    if settings.sns.enabled:
        from lantern.push.providers.sms_sns import SNSProvider

        providers["sms"] = SNSProvider(settings.sns)
    if settings.slack.enabled:
        from lantern.push.providers.slack import SlackProvider

        providers["slack"] = SlackProvider(settings.slack, timeout=timeout)
    return providers
