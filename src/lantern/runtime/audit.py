"""The audit log inside ``lantern serve``: ``GET /v1/audit`` and the recorder of failed admin
authentications shared by every admin router (:func:`auth_failures`)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from lantern.api.audit import build_audit_router
from lantern.audit.auth_failures import AuthFailures
from lantern.runtime.component import Component, Platform
from lantern.runtime.datadir import DataDir

__all__ = ["AuditComponent", "auth_failures"]

_KEY = "audit.auth_failures"


def auth_failures(platform: Platform) -> AuthFailures:
    """The process's one recorder of failed admin authentications (made on first use), so its
    rate limit holds across all admin routes."""
    failures = platform.extras.get(_KEY)
    if not isinstance(failures, AuthFailures):
        failures = platform.extras[_KEY] = AuthFailures(platform.db)
    return failures


class AuditComponent(Component):
    """Serves the audit log and writes the last counts of failed logins at shutdown."""

    name = "audit"

    def routers(self) -> Sequence[APIRouter]:
        data = DataDir(self.platform.data_dir)
        return [
            build_audit_router(
                self.platform.db,
                admin_token=data.admin_token,
                failures=auth_failures(self.platform),
            )
        ]

    async def stop(self) -> None:
        await auth_failures(self.platform).close()

    def describe(self) -> list[str]:
        return [
            f"audit log        {self.platform.http_base_url}/v1/audit (admin token), "
            "`lantern audit list`"
        ]
