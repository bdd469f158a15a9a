"""Scheduled notifications: durable, timezone-correct reminders sent through the push gateway.

* :mod:`rules` — when a schedule fires (cron or repeat interval, local time, DST policy)
* :mod:`model` — request validation and JSON views
* :mod:`service` — create/list/get/pause/resume/delete/history for an API key
* :mod:`scheduler` — the loop that claims, delivers and records occurrences exactly once
* :mod:`recorder` — the scheduler's group-committed results writer
* :mod:`queries` — the read side shared by the HTTP API and the command line
* :mod:`payloads` — the push payload per destination scheme
* :mod:`clock` — injectable clocks
"""

from __future__ import annotations

from lantern.schedule.clock import Clock, ManualClock, ScaledClock, SystemClock
from lantern.schedule.errors import (
    ScheduleConflict,
    ScheduleError,
    ScheduleInvalid,
    ScheduleNotFound,
    ScheduleScopeDenied,
)
from lantern.schedule.payloads import DeliveryJob, build_payload
from lantern.schedule.rules import REPEATS, Rule
from lantern.schedule.scheduler import Deliver, Outcome, Scheduler
from lantern.schedule.service import ScheduleService

__all__ = [
    "REPEATS",
    "Clock",
    "Deliver",
    "DeliveryJob",
    "ManualClock",
    "Outcome",
    "Rule",
    "ScaledClock",
    "ScheduleConflict",
    "ScheduleError",
    "ScheduleInvalid",
    "ScheduleNotFound",
    "ScheduleScopeDenied",
    "ScheduleService",
    "Scheduler",
    "SystemClock",
    "build_payload",
]
