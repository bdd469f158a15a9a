"""DescribeEndpoint: where devices and tools reach Lantern.

``iot:Data-ATS`` and ``iot:Data`` answer the MQTT endpoint (the public host of
``http.public_url``, with ``:<port>`` unless the MQTT port is AWS's 8883); ``iot:Jobs`` the
HTTP endpoint (host, with ``:<port>`` unless 443). ``iot:CredentialProvider`` does not exist in
Lantern (InvalidRequestException).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from lantern.awsapi.common import AwsDeps, invalid
from lantern.awsapi.service import AwsService, Call

__all__ = ["register"]


def register(iot: AwsService, deps: AwsDeps) -> None:
    @iot.operation("DescribeEndpoint")
    async def describe_endpoint(call: Call) -> dict[str, Any]:
        kind = call.params.get("endpointType", "iot:Data")
        if kind in ("iot:Data-ATS", "iot:Data"):
            return {"endpointAddress": deps.mqtt_endpoint()}
        if kind == "iot:Jobs":
            url = urlsplit(deps.http_endpoint())
            host = url.hostname or "localhost"
            port = url.port
            default = 443 if url.scheme == "https" else 80
            return {"endpointAddress": host if port in (None, default) else f"{host}:{port}"}
        raise invalid(
            f"endpointType {kind} is not supported: use iot:Data-ATS (MQTT) or iot:Jobs (HTTP)"
        )
