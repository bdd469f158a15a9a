"""The device side of Lantern: what runs on a device. It speaks only the wire protocol (MQTT
over mutual TLS, through paho-mqtt) and knows nothing of the server's internals.

* :class:`DeviceClient` — connect with a certificate, request/response on reserved topics.
* :func:`provision` — fleet provisioning by claim (CreateKeysAndCertificate or
  CreateCertificateFromCsr, then RegisterThing), as the AWS IoT Device SDK does it.
"""

from __future__ import annotations

from lantern.device.client import DeviceClient, DeviceError, Endpoint, RequestRejected
from lantern.device.provisioning import ProvisionResult, provision, write_credentials

__all__ = [
    "DeviceClient",
    "DeviceError",
    "Endpoint",
    "ProvisionResult",
    "RequestRejected",
    "provision",
    "write_credentials",
]
