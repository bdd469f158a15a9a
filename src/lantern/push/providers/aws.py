"""Shared aiobotocore plumbing of the SES and SNS providers: one long-lived client each."""

from __future__ import annotations

import contextlib
from typing import Any

from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from lantern.push.providers.base import (
    CallerError,
    PermanentFailure,
    ProviderConfigError,
    ProviderFailure,
    TemporaryFailure,
)

_CONFIG_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "AuthorizationError",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "UnrecognizedClientException",
        "MailFromDomainNotVerified",
        "MailFromDomainNotVerifiedException",
        "ConfigurationSetDoesNotExist",
        "AccountSendingPausedException",
        "KMSAccessDenied",
    }
)
_TEMPORARY_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "Throttled",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestTimeout",
        "KMSThrottling",
    }
)


def classify(exc: ClientError) -> ProviderFailure:
    """The failure class of an AWS API error (code from the response)."""
    error = exc.response.get("Error", {})
    code = str(error.get("Code", "Unknown"))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    if code in _CONFIG_CODES or status == 403:
        return ProviderConfigError(code)
    if code in _TEMPORARY_CODES or status >= 500 or status == 429:
        return TemporaryFailure(code)
    if code in ("MessageRejected", "InvalidParameter", "InvalidParameterValue", "ValidationError"):
        return CallerError(code)
    return PermanentFailure(code)


class AWSClient:
    """An aiobotocore client opened once and closed on :meth:`close`."""

    def __init__(self, service: str, region: str, endpoint_url: str | None) -> None:
        self.service = service
        self.region = region
        self.endpoint_url = endpoint_url
        self._stack = contextlib.AsyncExitStack()
        self._client: Any = None

    async def get(self) -> Any:
        if self._client is None:
            session = get_session()
            self._client = await self._stack.enter_async_context(
                session.create_client(
                    self.service, region_name=self.region, endpoint_url=self.endpoint_url
                )
            )
        return self._client

    async def call(self, operation: str, **params: Any) -> Any:
        """Call ``operation``; AWS and transport errors become ProviderFailures."""
        client = await self.get()
        try:
            return await getattr(client, operation)(**params)
        except ClientError as exc:
            raise classify(exc) from None
        except BotoCoreError as exc:
            # NoCredentialsError and friends are configuration; connection errors are not.
            name = type(exc).__name__
            if "Credential" in name or "Region" in name:
                raise ProviderConfigError(name) from None
            raise TemporaryFailure(name) from None

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None
