"""The implemented operations of botocore's ``iot`` service, as routes."""

from __future__ import annotations

from fastapi import APIRouter

from lantern.awsapi import (
    certificates,
    data,
    endpoint,
    groups,
    jobs,
    policies,
    templates,
    things,
)
from lantern.awsapi.common import AwsDeps
from lantern.awsapi.service import AwsService, routes
from lantern.iam.verifier import SignatureVerifier

__all__ = ["build_aws_router", "build_iot", "build_iot_data"]


def build_iot(deps: AwsDeps) -> AwsService:
    iot = AwsService("iot")
    for family in (things, groups, certificates, policies, templates, endpoint, jobs):
        family.register(iot, deps)
    return iot


def build_iot_data(broker: data.Broker) -> AwsService:
    """iot-data's Publish and retained messages (its shadow operations are
    :mod:`lantern.api.shadows`)."""
    service = AwsService("iot-data")
    data.register(service, broker)
    return service


def build_aws_router(
    services: list[AwsService], verifier: SignatureVerifier, account: str
) -> APIRouter:
    """One router with every implemented operation of ``services`` (SigV4-signed)."""
    router = APIRouter(tags=["aws-iot"])
    router.routes.extend(routes(services, verifier, lambda: account))
    return router
