"""E-mail through Amazon SES ``SendEmail``: HTML plus text, from the configured sender."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lantern.push.providers.aws import AWSClient
from lantern.push.providers.base import PreparedMessage, PushProvider
from lantern.push.providers.email_common import check_address, email_content
from lantern.settings.push import SESSettings


class SESProvider(PushProvider):
    """``mailto:`` destinations through SES."""

    scheme = "mailto"
    name = "ses"

    def __init__(self, settings: SESSettings) -> None:
        super().__init__(max_in_flight=50)
        assert settings.sender is not None
        self.sender = settings.sender
        self.aws = AWSClient("ses", settings.region, settings.endpoint_url)

    def prepare(self, address: str, payload: Mapping[str, Any]) -> PreparedMessage:
        content = email_content(payload)
        return PreparedMessage(
            address=check_address(address),
            body={"subject": content.subject, "html": content.html, "text": content.text},
            headers={},
        )

    async def send(self, message: PreparedMessage) -> None:
        utf8 = "UTF-8"
        await self.aws.call(
            "send_email",
            Source=self.sender,
            Destination={"ToAddresses": [message.address]},
            Message={
                "Subject": {"Data": message.body["subject"], "Charset": utf8},
                "Body": {
                    "Html": {"Data": message.body["html"], "Charset": utf8},
                    "Text": {"Data": message.body["text"], "Charset": utf8},
                },
            },
        )

    async def start(self) -> None:
        await self.aws.get()

    async def close(self) -> None:
        await self.aws.close()
