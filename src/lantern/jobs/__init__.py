"""Firmware updates: the firmware catalog, deployments (jobs) and the AWS IoT Jobs device API.

Layer: sits on :mod:`lantern.store` and :mod:`lantern.gateway`; never sees sockets. The device API
(:class:`~lantern.jobs.device_api.JobsDeviceAPI`) registers handlers on the gateway's reserved-topic
router; its execution changes are group-committed (:mod:`lantern.jobs.updates`) through the
store's :class:`~lantern.store.jobs.JobsUnitOfWork` port. Control-plane changes (deployments,
cancel, rollout, timeouts) go through :class:`~lantern.jobs.deployments.DeploymentService` and
:class:`~lantern.jobs.timer.JobsTimer`; what the HTTP API and the command line read, through
:class:`~lantern.jobs.queries.JobsQueries`.
"""

from __future__ import annotations
