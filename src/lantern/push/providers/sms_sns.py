"""SMS through Amazon SNS ``Publish`` to an E.164 phone number, as a transactional message."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from lantern.push.errors import PayloadTooLarge, PushRequestInvalid
from lantern.push.providers.aws import AWSClient
from lantern.push.providers.base import PreparedMessage, PushProvider
from lantern.settings.push import SNSSettings

E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
MAX_BYTES = 1600


class SNSProvider(PushProvider):
    """``sms:+<E.164>`` destinations."""

    scheme = "sms"
    name = "sns"

    def __init__(self, settings: SNSSettings) -> None:
        super().__init__(max_in_flight=50)
        self.sender_id = settings.sender_id
        self.aws = AWSClient("sns", settings.region, settings.endpoint_url)

    def prepare(self, address: str, payload: Mapping[str, Any]) -> PreparedMessage:
        if not E164.match(address):
            raise PushRequestInvalid(
                "device_token", "an SMS destination is an E.164 number such as sms:+15551234567"
            )
        extra = set(payload) - {"text"}
        if extra:
            raise PushRequestInvalid(
                f"payload.{sorted(extra)[0]}", "not allowed: SMS has text only"
            )
        text = payload.get("text")
        if not isinstance(text, str) or not text:
            raise PushRequestInvalid("payload.text", "must be a non-empty string")
        if len(text.encode()) > MAX_BYTES:
            raise PayloadTooLarge("payload.text", f"SMS text is limited to {MAX_BYTES} bytes")
        return PreparedMessage(address=address, body={"text": text}, headers={})

    async def send(self, message: PreparedMessage) -> None:
        attributes = {"AWS.SNS.SMS.SMSType": {"DataType": "String", "StringValue": "Transactional"}}
        if self.sender_id:
            attributes["AWS.SNS.SMS.SenderID"] = {
                "DataType": "String",
                "StringValue": self.sender_id,
            }
        await self.aws.call(
            "publish",
            PhoneNumber=message.address,
            Message=message.body["text"],
            MessageAttributes=attributes,
        )

    async def start(self) -> None:
        await self.aws.get()

    async def close(self) -> None:
        await self.aws.close()
