"""E-mail through any SMTP server (aiosmtplib): HTML plus text, from the configured sender."""

from __future__ import annotations

from collections.abc import Mapping
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import aiosmtplib

from lantern.push.providers.base import (
    DeadToken,
    PermanentFailure,
    PreparedMessage,
    ProviderConfigError,
    PushProvider,
    TemporaryFailure,
)
from lantern.push.providers.email_common import check_address, email_content
from lantern.settings.push import SMTPSettings


class SMTPProvider(PushProvider):
    """``mailto:`` destinations over SMTP."""

    scheme = "mailto"
    name = "smtp"

    def __init__(self, settings: SMTPSettings) -> None:
        super().__init__(max_in_flight=20)
        assert settings.host is not None
        self.settings = settings

    def prepare(self, address: str, payload: Mapping[str, Any]) -> PreparedMessage:
        content = email_content(payload)
        return PreparedMessage(
            address=check_address(address),
            body={"subject": content.subject, "html": content.html, "text": content.text},
            headers={},
        )

    async def send(self, message: PreparedMessage) -> None:
        s = self.settings
        email = EmailMessage()
        email["From"] = s.sender
        email["To"] = message.address
        email["Subject"] = message.body["subject"]
        email["Message-ID"] = make_msgid()
        email.set_content(message.body["text"])
        email.add_alternative(message.body["html"], subtype="html")
        try:
            await aiosmtplib.send(
                email,
                sender=s.sender,
                recipients=[message.address],
                hostname=s.host,
                port=s.port,
                username=s.username,
                password=s.password,
                use_tls=s.tls == "tls",
                start_tls=s.tls == "starttls",
                timeout=s.timeout,
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            raise ProviderConfigError("SMTPAuthentication", str(exc.code)) from None
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [err.code for err in exc.recipients]
            if codes and all(400 <= c < 500 for c in codes):
                raise TemporaryFailure("RecipientDeferred", str(codes[0])) from None
            raise DeadToken("RecipientRefused", str(codes[0] if codes else "")) from None
        except aiosmtplib.SMTPSenderRefused as exc:
            raise ProviderConfigError("SenderRefused", str(exc.code)) from None
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                raise TemporaryFailure(f"SMTP{exc.code}") from None
            raise PermanentFailure(f"SMTP{exc.code}") from None
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(type(exc).__name__) from None
