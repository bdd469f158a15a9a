"""Run ``lantern serve`` as a real subprocess, as a user would, on free ports."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from support.net import free_port, wait_for_port


@dataclass
class LanternProcess:
    """A ``lantern serve`` child process. Use as a context manager; ``stop()`` sends SIGTERM.
    ``start()`` returns once ``/healthz`` answers and the MQTT listener accepts connections."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None
    output: str = ""
    _log: object = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "ca" / "ca.pem"

    def command_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LANTERN_")}
        env.update(
            LANTERN_DATA_DIR=str(self.data_dir),
            LANTERN_HTTP__PORT=str(self.http_port),
            LANTERN_MQTT__PORT=str(self.mqtt_port),
        )
        env.update(self.env)
        return env

    def start(self, timeout: float = 30.0) -> LanternProcess:
        # Output goes to a file, not a pipe: a chatty server must never block on a full pipe.
        log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the process
        self._log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lantern", "serve"],
            env=self.command_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"lantern serve exited with {self.proc.returncode}:\n{self._read_log()}"
                )
            try:
                if httpx.get(f"{self.http_url}/healthz", timeout=0.5).status_code == 200:
                    wait_for_port(self.mqtt_port, timeout=max(0.5, deadline - time.monotonic()))
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"lantern serve not healthy after {timeout}s:\n{self.output}")

    def _read_log(self) -> str:
        log = self._log
        if log is None:
            return ""
        log.seek(0)  # type: ignore[attr-defined]
        return str(log.read())  # type: ignore[attr-defined]

    def current_output(self) -> str:
        """What the server printed so far (it keeps running)."""
        return self._read_log()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Signal the process, wait for it, keep its output; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.output = self._read_log()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.output = self._read_log()

    def __enter__(self) -> LanternProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
