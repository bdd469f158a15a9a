"""The pre-provisioning hook: an HTTP POST that may deny a RegisterThing or override parameters.

AWS calls a Lambda function; Lantern POSTs the same JSON to a URL (docs/device-topics.md):
``{claimCertificateId, certificateId, certificatePem, templateArn, clientId, parameters}`` and
expects ``{"allowProvisioning": true, "parameterOverrides": {...}}``. An HTTP error, a timeout
(5 s), a body that is not that shape, or anything but ``allowProvisioning: true`` denies the
request with 403 ``AccessDenied``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import httpx

from lantern import jsonlimits
from lantern.provisioning.errors import ProvisioningRejected

__all__ = ["PreProvisioningHook"]

log = logging.getLogger(__name__)


def _denied(template: str, why: str) -> ProvisioningRejected:
    return ProvisioningRejected(
        403, "AccessDenied", f"the pre-provisioning hook of template {template} {why}"
    )


class PreProvisioningHook:
    """Calls hook URLs with one shared HTTP client (create with :meth:`open`)."""

    def __init__(self, client: httpx.AsyncClient, timeout: float = 5.0) -> None:
        self._client = client
        self.timeout = timeout

    @classmethod
    def open(cls, timeout: float = 5.0) -> PreProvisioningHook:
        return cls(httpx.AsyncClient(timeout=timeout, follow_redirects=False), timeout)

    async def close(self) -> None:
        await self._client.aclose()

    async def check(self, url: str, template: str, request: Mapping[str, object]) -> dict[str, str]:
        """POST ``request`` to ``url``; return the parameter overrides, or raise 403."""
        try:
            async with asyncio.timeout(self.timeout):
                response = await self._client.post(url, json=dict(request))
        except TimeoutError:
            log.warning("pre-provisioning hook of %s timed out after %ss", template, self.timeout)
            raise _denied(template, f"did not answer within {self.timeout:g} s") from None
        except httpx.HTTPError as exc:
            log.warning("pre-provisioning hook of %s failed: %s", template, type(exc).__name__)
            raise _denied(template, "could not be reached") from None
        if response.status_code != 200:
            log.warning("pre-provisioning hook of %s answered %s", template, response.status_code)
            raise _denied(template, f"failed (HTTP {response.status_code})")
        try:
            answer = jsonlimits.loads(response.content)
        except ValueError:  # JSONTooDeep is one
            raise _denied(template, "answered with something other than JSON") from None
        if not isinstance(answer, dict) or answer.get("allowProvisioning") is not True:
            log.info("pre-provisioning hook of %s denied a device", template)
            raise _denied(template, "denied provisioning")
        overrides = answer.get("parameterOverrides") or {}
        if not isinstance(overrides, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in overrides.items()
        ):
            raise _denied(template, "returned parameterOverrides that are not strings")
        return dict(overrides)
