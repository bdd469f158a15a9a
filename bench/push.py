"""Benchmark (not a test): notifications per second through ``POST /push`` to the APNs stand-in.

Three kinds of process on loopback, each measured on its own (user + system CPU from
``/proc/<pid>/stat``, or ``getrusage`` for this one):

* the APNs stand-in (HTTP/2 + TLS on uvloop, verifying every JWT it has not seen before);
* the relay under test, alone in its process;
* this load generator: uvloop, keep-alive HTTP/1.1 connections, one pre-encoded request, a
  response parser that only looks for the status and ``content-length``.

Two relays are measured one after the other:

* Lantern: ``lantern serve`` (one JWT reused for 50 minutes, persistent multiplexed HTTP/2).
* legacy: the seed's design in the same web stack (FastAPI on uvicorn + uvloop): a new JWT and a
  new HTTP/2 connection (TLS handshake) for every notification.

Throughput on a shared 2-core machine depends on what else runs; the CPU milliseconds each
process spends per notification do not, so both are printed, with the relay's single-core
capacity (1000 / relay CPU ms) and the ratios.

Usage: ``.venv/bin/python bench/push.py [--seconds 5] [--connections 64,256,1024] [--only lantern]
[--profile cprofile|py-spy --profile-out PATH]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import uvloop  # noqa: E402
from fastapi import Request  # noqa: E402
from fastapi.responses import JSONResponse  # noqa: E402

from lantern.pki import CertificateAuthority  # noqa: E402
from support.apns_standin import SigningKey  # noqa: E402
from support.net import free_port, wait_for_port  # noqa: E402

API_KEY = "bench-key-0123456789abcdef0123456789"
DEVICE = "ab" * 32
TOPIC = "org.lantern.app"
BODY = {
    "api_key": API_KEY,
    "device_token": f"apns:{DEVICE}",
    "payload": {
        "aps": {"alert": "Hello world!", "badge": 0, "sound": "default"},
        "notificationId": "bench",
        "expiry": 84600000,
        "actions": [],
    },
}


# --- the legacy relay: a new JWT and a new HTTP/2 connection per notification ----------------


def legacy_relay(
    port: int, apns_host: str, key_file: str, key_id: str, team_id: str, ca: str
) -> None:
    import httpx
    import jwt
    import uvicorn
    from fastapi import FastAPI

    from lantern.push.providers.http import ssl_context

    app = FastAPI()
    key = Path(key_file).read_bytes()
    context = ssl_context(Path(ca))  # built once: the legacy cost is the handshake, not this

    @app.post("/push")
    async def push(request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("api_key") != API_KEY:
            return JSONResponse({"error": "unknown error occurred"}, 400)
        token = body["device_token"].split(":", 1)[1]
        signed = jwt.encode(
            {"iss": team_id, "iat": int(time.time())}, key, "ES256", headers={"kid": key_id}
        )
        async with httpx.AsyncClient(http2=True, verify=context) as client:
            response = await client.post(
                f"https://{apns_host}/3/device/{token}",
                json=body["payload"],
                headers={"authorization": f"bearer {signed}", "apns-topic": TOPIC},
            )
        if response.status_code != 200:
            return JSONResponse({"error": "unknown error occurred"}, 400)
        return JSONResponse({"ok": True})

    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, loop="uvloop"
    )


# --- load generator -----------------------------------------------------------------------


@dataclass
class Load:
    ok: int = 0
    failed: int = 0
    statuses: dict[int, int] | None = None
    latencies: list[float] | None = None


async def load(port: int, seconds: float, connections: int) -> Load:
    """Keep ``connections`` keep-alive connections busy for ``seconds``, one request at a time
    each. The request is encoded once; the parser reads only the status and content-length."""
    payload = json.dumps(BODY).encode()
    request = (
        f"POST /push HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    deadline = time.perf_counter() + seconds
    result = Load(statuses={}, latencies=[])
    assert result.statuses is not None and result.latencies is not None
    statuses, latencies = result.statuses, result.latencies

    async def worker() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        clock = time.perf_counter
        try:
            while (started := clock()) < deadline:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                at = head.lower().find(b"content-length:")
                length = int(head[at + 15 : head.index(b"\r\n", at)]) if at >= 0 else 0
                if length:
                    await reader.readexactly(length)
                latencies.append(clock() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    result.ok = statuses.get(200, 0)
    result.failed = sum(statuses.values()) - result.ok
    return result


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to report cost independent of load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Result:
    name: str
    connections: int
    rate: float
    cpu_ms: dict[str, float]  # role -> CPU ms per delivered notification


def measure(
    name: str,
    port: int,
    seconds: float,
    connections: int,
    pids: dict[str, int],
    profiler: list[str] | None = None,
) -> Result:
    uvloop.run(load(port, 1.0, connections))  # warm-up (first connections, caches, JWT)
    sampling = subprocess.Popen(profiler, stdout=subprocess.DEVNULL) if profiler else None
    cpu_before = {role: cpu_seconds(pid) for role, pid in pids.items()}
    own_before = own_cpu_seconds()
    started = time.perf_counter()
    outcome = uvloop.run(load(port, seconds, connections))
    elapsed = time.perf_counter() - started
    cpu = {role: cpu_seconds(pid) - cpu_before[role] for role, pid in pids.items()}
    cpu["loadgen"] = own_cpu_seconds() - own_before
    if sampling is not None:
        sampling.wait(60)
    latencies = sorted(outcome.latencies or [])
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else 0.0
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0
    rate = outcome.ok / elapsed
    per = {role: 1000 * used / max(outcome.ok, 1) for role, used in cpu.items()}
    print(
        f"{name:8s} {rate:7.0f} notifications/s  ok={outcome.ok} statuses={outcome.statuses} "
        f"p50={p50:.1f} ms p99={p99:.1f} ms ({connections} connections, {elapsed:.1f} s)",
        flush=True,
    )
    print(
        f"{'':8s} CPU ms per notification: "
        + ", ".join(f"{role} {ms:.3f}" for role, ms in per.items())
        + f"  (relay alone could do {1000 / max(per['relay'], 1e-9):.0f}/s on one core)",
        flush=True,
    )
    if outcome.failed:
        print(f"{'':8s} WARNING: {outcome.failed} requests were not answered 200", flush=True)
    return Result(name, connections, rate, per)


def print_ratios(lantern: list[Result], legacy: list[Result]) -> None:
    """Ratios at each concurrency level, then capacity (each relay's best level) against
    capacity."""
    print("connections  lantern/s  legacy/s  throughput  relay CPU  all-process CPU")
    for new, old in zip(lantern, legacy, strict=True):
        total_new, total_old = sum(new.cpu_ms.values()), sum(old.cpu_ms.values())
        print(
            f"{new.connections:11d}  {new.rate:9.0f}  {old.rate:8.0f}  "
            f"{new.rate / max(old.rate, 1e-9):9.1f}x  "
            f"{old.cpu_ms['relay'] / max(new.cpu_ms['relay'], 1e-9):8.1f}x  "
            f"{total_old / max(total_new, 1e-9):14.1f}x"
        )
    best_new = max(lantern, key=lambda r: r.rate)
    best_old = max(legacy, key=lambda r: r.rate)
    print(
        f"capacity: lantern {best_new.rate:.0f}/s ({best_new.connections} connections), legacy "
        f"{best_old.rate:.0f}/s ({best_old.connections} connections): "
        f"{best_new.rate / max(best_old.rate, 1e-9):.1f}x"
    )
    print("goal: >= 20x the legacy design and >= 2,000 notifications/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=5.0)
    # Each connection has one request in flight (closed loop), so throughput <= connections /
    # latency. Both relays are measured at every level; each one's capacity is its best level.
    parser.add_argument(
        "--connections", default="64,256,1024", help="comma-separated concurrency levels"
    )
    parser.add_argument("--only", choices=["lantern", "legacy"])
    parser.add_argument(
        "--profile", choices=["cprofile", "py-spy"], help="profile the Lantern relay"
    )
    parser.add_argument("--profile-out", type=Path, default=Path("push-relay.prof"))
    parser.add_argument("--legacy-relay", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    levels = [int(level) for level in args.connections.split(",")]
    if args.legacy_relay:
        port, host, key_file, key_id, team_id, ca = args.legacy_relay
        legacy_relay(int(port), host, key_file, key_id, team_id, ca)
        return

    work = Path(tempfile.mkdtemp(prefix="lantern-bench-push-"))
    key = SigningKey.create(work)
    CertificateAuthority.load_or_create(work / "tls")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANTERN_")}
    env["PYTHONPATH"] = str(ROOT / "tests")
    apns_port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    results: dict[str, list[Result]] = {}
    try:
        standin = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "support.apns_standin",
                str(work),
                str(apns_port),
                key.key_id,
                key.team_id,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
        )
        procs.append(standin)
        wait_for_port(apns_port)
        apns_host = f"127.0.0.1:{apns_port}"

        if args.only in (None, "lantern"):
            lantern_port = free_port()
            lantern_env = {
                **env,
                "LANTERN_DATA_DIR": str(work / "data"),
                "LANTERN_HTTP__PORT": str(lantern_port),
                "LANTERN_MQTT__PORT": str(free_port()),
                "LANTERN_LOG_LEVEL": "warning",
                "LANTERN_PUSH__DEFAULT_RATE_PER_MINUTE": "100000000",
                "LANTERN_PUSH__APNS__KEY_FILE": str(key.path),
                "LANTERN_PUSH__APNS__KEY_ID": key.key_id,
                "LANTERN_PUSH__APNS__TEAM_ID": key.team_id,
                "LANTERN_PUSH__APNS__TOPIC": TOPIC,
                "LANTERN_PUSH__APNS__HOST": apns_host,
                "LANTERN_PUSH__APNS__CA_FILE": str(work / "tls" / "ca.pem"),
                "API_KEYS": API_KEY,
            }
            command = [sys.executable, "-m", "lantern", "serve"]
            if args.profile == "cprofile":
                command[1:1] = ["-m", "cProfile", "-o", str(args.profile_out)]
            lantern = subprocess.Popen(command, env=lantern_env, stdout=subprocess.DEVNULL)
            procs.append(lantern)
            wait_for_port(lantern_port, timeout=60)
            profiler = None
            if args.profile == "py-spy":  # samples the measured window only, GIL holders only
                profiler = [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(lantern.pid),
                    "--nonblocking",
                    "--gil",
                    "--format",
                    "raw",
                    "--rate",
                    "250",
                    "--duration",
                    str(max(1, round(args.seconds))),
                    "-o",
                    str(args.profile_out),
                ]
            results["lantern"] = [
                measure(
                    "lantern",
                    lantern_port,
                    args.seconds,
                    level,
                    {"relay": lantern.pid, "apns": standin.pid},
                    profiler if level == levels[-1] else None,  # the last level is profiled
                )
                for level in levels
            ]
            lantern.terminate()
            lantern.wait(60)

        if args.only in (None, "legacy"):
            legacy_port = free_port()
            legacy = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--legacy-relay",
                    str(legacy_port),
                    apns_host,
                    str(key.path),
                    key.key_id,
                    key.team_id,
                    str(work / "tls" / "ca.pem"),
                ],
                env=env,
            )
            procs.append(legacy)
            wait_for_port(legacy_port, timeout=60)
            results["legacy"] = [
                measure(
                    "legacy",
                    legacy_port,
                    args.seconds,
                    level,
                    {"relay": legacy.pid, "apns": standin.pid},
                )
                for level in levels
            ]

        if len(results) == 2:
            print_ratios(results["lantern"], results["legacy"])
        print(f"load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    main()
