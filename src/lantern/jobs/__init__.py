"""Firmware updates: the firmware catalog, deployments (jobs) and the AWS IoT Jobs device API.

Layer: sits on :mod:`lantern.store` and :mod:`lantern.gateway`; never sees sockets. The device API
(:class:`~lantern.jobs.device_api.JobsDeviceAPI`) registers handlers on the gateway's reserved-topic
router; control-plane changes (deployments, cancel, rollout, timeouts) go through
:class:`~lantern.jobs.deployments.DeploymentService` and :class:`~lantern.jobs.timer.JobsTimer`.
"""

from __future__ import annotations
