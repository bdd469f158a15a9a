"""The audit log inside ``lantern serve``: ``GET /v1/audit``; at shutdown, the last counts of
failed admin authentications (``Platform.auth_failures``)."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter

from lantern.api.audit import build_audit_router
from lantern.runtime.component import Component

__all__ = ["AuditComponent"]


class AuditComponent(Component):
    """Serves the audit log and writes the last counts of failed logins at shutdown."""

    name = "audit"

    def routers(self) -> Sequence[APIRouter]:
        return [
            build_audit_router(
                self.platform.db,
                admin_token=self.platform.admin_token,
                failures=self.platform.auth_failures,
            )
        ]

    async def stop(self) -> None:
        await self.platform.auth_failures.close()

    def describe(self) -> list[str]:
        return [
            f"audit log        {self.platform.http_base_url}/v1/audit (admin token), "
            "`lantern audit list`"
        ]
