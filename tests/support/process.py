"""Run ``lantern serve`` as a real subprocess, as a user would, on free ports."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from support.net import free_port, wait_for_port


class PortTaken(RuntimeError):
    """The server could not bind a port this harness picked for it."""


@dataclass
class LanternProcess:
    """A ``lantern serve`` child process. Use as a context manager; ``stop()`` sends SIGTERM.
    ``start()`` returns once ``/healthz`` answers and the MQTT listener accepts connections.
    ``nofile`` runs it with that soft and hard RLIMIT_NOFILE."""

    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    http_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    tcp_port: int | None = None  # a plain-TCP MQTT listener (LANTERN_MQTT__TCP_PORT), if wanted
    nofile: int | None = None
    proc: subprocess.Popen[str] | None = None
    output: str = ""
    _log: object = None

    @property
    def tls(self) -> bool:
        """Whether the HTTP app serves HTTPS (``LANTERN_HTTP__TLS``)."""
        return self.env.get("LANTERN_HTTP__TLS", "").lower() in ("1", "true", "yes")

    @property
    def http_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.http_port}"

    def http_verify(self) -> ssl.SSLContext | bool:
        """What httpx must verify this server's HTTPS with (the platform CA)."""
        return ssl.create_default_context(cafile=str(self.ca_file)) if self.tls else True

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
        if self.tcp_port is not None:
            env["LANTERN_MQTT__TCP_PORT"] = str(self.tcp_port)
        return env

    def command(self) -> list[str]:
        serve = [sys.executable, "-m", "lantern", "serve"]
        if self.nofile is None:
            return serve
        limit = f"resource.setrlimit(resource.RLIMIT_NOFILE, ({self.nofile}, {self.nofile}))"
        return [
            sys.executable,
            "-c",
            f"import os, resource, sys; {limit}; os.execv({serve[0]!r}, {serve!r})",
        ]

    def start(self, timeout: float = 30.0) -> LanternProcess:
        """Start and wait until ready. Ports picked by :func:`free_port` can be taken by another
        socket before the server binds them (an outgoing connection's ephemeral port): when the
        server says one of *our* ports is in use, it is started again on fresh ones."""
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except PortTaken:
                if attempt == 2:
                    raise
                self.http_port, self.mqtt_port = free_port(), free_port()
                if self.tcp_port is not None:
                    self.tcp_port = free_port()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> LanternProcess:
        # Output goes to a file, not a pipe: a chatty server must never block on a full pipe.
        log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives as long as the process
        self._log = log
        self.proc = subprocess.Popen(
            self.command(),
            env=self.command_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._raise_exited()
            if self.tls and not self.ca_file.exists():
                time.sleep(0.05)
                continue
            try:
                healthz = httpx.get(
                    f"{self.http_url}/healthz", timeout=0.5, verify=self.http_verify()
                )
                if healthz.status_code == 200 and self._mqtt_listening(deadline):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(f"lantern serve not healthy after {timeout}s:\n{self.output}")

    def _mqtt_listening(self, deadline: float) -> bool:
        """Wait (until ``deadline``) for the MQTT port; the server exiting meanwhile raises with
        its output (it opens its MQTT listeners last, once every component has started)."""
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._raise_exited()
            try:
                wait_for_port(self.mqtt_port, timeout=0.5)
                return True
            except TimeoutError:
                continue
        return False

    def _raise_exited(self) -> None:
        assert self.proc is not None
        output = self._read_log()
        ours = [f"port {p} " for p in (self.http_port, self.mqtt_port, self.tcp_port) if p]
        if "is already in use" in output and any(p in output for p in ours):
            raise PortTaken(output)
        raise RuntimeError(f"lantern serve exited with {self.proc.returncode}:\n{output}")

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
        """Start (unless already started: ``with proc.start(timeout=90):`` runs one server)."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
