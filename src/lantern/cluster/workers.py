"""``lantern serve --workers N``: N worker processes sharing the listeners, as one cluster.

The supervisor (the process the user started):

1. prepares what every worker needs before any of them starts: the data directory, the
   database schema (migrations), the CA, keys and admin token (on a cluster on PostgreSQL:
   formed or joined, see :mod:`lantern.runtime.cluster_material`);
2. without ``cluster.nats_url`` starts the embedded NATS server (:mod:`.embedded_nats`);
3. starts the workers: ``lantern serve`` each, with the same settings, node id
   ``<node>-w<i>``, binding the same HTTP and MQTT ports with ``SO_REUSEPORT`` (the kernel
   spreads new connections over them);
4. restarts a worker that dies (after a pause growing to 30 s while it keeps dying at start);
5. on Ctrl-C or SIGTERM stops every worker (SIGTERM, each drains as a lone server does), then
   the NATS server.

Workers die with the supervisor (``PR_SET_PDEATHSIG``) even if it is killed.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from lantern.cluster.embedded_nats import EmbeddedNats

__all__ = ["WorkerSupervisor", "die_with_parent"]

log = logging.getLogger("lantern.cluster")
POLL_SECONDS = 0.2
RESTART_PAUSE_MAX = 30.0
STABLE_SECONDS = 10.0
_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Ask the kernel (Linux) to send SIGTERM when the supervisor ends; exit at once if it
    already has."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        raise SystemExit(0)


@dataclass
class _Worker:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    pause: float = 1.0
    restart_at: float = 0.0
    restarts: int = 0


@dataclass
class WorkerSupervisor:
    """Runs the workers (see the module docstring). ``env`` is the workers' environment: the
    same settings as the supervisor's, with the ports fixed."""

    count: int
    data_dir: Path
    env: dict[str, str]
    node_base: str
    nats_url: str | None  # configured; None: start the embedded server
    echo: bool = True
    workers: list[_Worker] = field(default_factory=list)
    nats: EmbeddedNats | None = None
    _stopping: bool = False

    def _command(self, index: int) -> list[str]:
        cmd = [sys.executable, "-m", "lantern", "serve", "--worker", str(index)]
        cmd += ["--supervisor-pid", str(os.getpid())]
        if self.nats is not None:
            cmd.append("--one-machine")
        return cmd

    def _spawn(self, worker: _Worker) -> None:
        env = dict(self.env)
        env["LANTERN_CLUSTER__NODE_ID"] = f"{self.node_base}-w{worker.index}"
        if self.nats is not None:
            env["LANTERN_CLUSTER__NATS_URL"] = self.nats.url
        worker.proc = subprocess.Popen(self._command(worker.index), env=env)  # noqa: S603
        worker.started_at = time.monotonic()
        log.info("worker %d started (pid %d)", worker.index, worker.proc.pid)

    def start(self) -> None:
        if self.nats_url is None:
            self.nats = EmbeddedNats(self.data_dir / "nats", self.data_dir / "nats.log")
            self.nats.start()
            log.info(
                "embedded NATS server on %s (JetStream in %s)", self.nats.url, self.nats.store_dir
            )
        self.workers = [_Worker(i) for i in range(self.count)]
        for worker in self.workers:
            self._spawn(worker)

    def request_stop(self, *_: object) -> None:
        self._stopping = True

    def run(self) -> int:
        """Supervise until asked to stop; returns the exit code."""
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGTERM, self.request_stop)
        try:
            self.start()
            while not self._stopping:
                self._check()
                time.sleep(POLL_SECONDS)
        finally:
            self.stop()
        return 0

    def _check(self) -> None:
        now = time.monotonic()
        if self.nats is not None and not self.nats.alive():
            log.error("the embedded NATS server died; starting it again on %s", self.nats.url)
            self.nats.start()
        for worker in self.workers:
            proc = worker.proc
            if proc is not None and proc.poll() is None:
                if now - worker.started_at > STABLE_SECONDS:
                    worker.pause = 1.0
                continue
            if proc is not None:
                code = proc.returncode
                worker.proc = None
                worker.restart_at = now + worker.pause
                log.error(
                    "worker %d (pid %d) exited with %s; restarting it in %.0f s",
                    worker.index,
                    proc.pid,
                    code,
                    worker.pause,
                )
                worker.pause = min(RESTART_PAUSE_MAX, worker.pause * 2)
            elif now >= worker.restart_at:
                worker.restarts += 1
                self._spawn(worker)

    def stop(self, timeout: float = 30.0) -> None:
        running = [w.proc for w in self.workers if w.proc is not None and w.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.nats is not None:
            self.nats.stop()
