"""Fleet provisioning benchmark: complete provisioning flows per second, and mTLS connects per
second beside ``openssl s_server``/``s_time`` as the handshake reference.

Not a test. Run ``python bench/provisioning.py`` (1,000 devices per path) or ``--devices 200``;
``--database-url postgresql+asyncpg://user@host/db`` runs every path again on PostgreSQL (each
server gets a database of its own on that server, dropped after) and prints the figures side by
side.

What it measures, against a ``lantern serve`` it starts on free loopback ports (SQLite, then
PostgreSQL with ``--database-url``):

- **flows/s**: a burst of N devices, each a complete flow as a device runs it with
  ``lantern.device.provision`` (paho-mqtt): new mTLS connection with the claim certificate,
  CreateKeysAndCertificate (server-key path: RSA-2048 as AWS, and EC P-256 with ``--ec``) or
  CreateCertificateFromCsr (CSR path: the device generates a P-256 key), RegisterThing,
  disconnect. ``--concurrency`` devices at a time. p50/p99 of one flow. RSA-2048 runs twice:
  with the default key pool (32 keys made ahead), where the burst soon waits for key
  generation (~35 ms of CPU per key), and with ``provisioning.key_pool_size`` set to the burst
  size, as an operator expecting such bursts would (the fill time and CPU are printed). Each
  burst starts once its server is idle (startup and pool filling done).
- **MQTT connects/s**: provisioned devices connecting with their own certificate (TLS
  handshake + CONNECT with registry lookup and policy compilation + CONNACK + DISCONNECT).
- **TLS handshakes/s** with ``openssl s_time -new`` (one client process, full handshakes with a
  client certificate) against Lantern's mTLS port and against ``openssl s_server`` on the same
  machine with the same CA, server certificate and client certificate: the reference.

Each path runs against its own fresh server. Printed per path: flows/s, p50/p99 of one flow,
failures, the server's CPU per flow (``server_ms``, all its threads) and the load generator's
(``client_ms``): on this 2-core machine the load generator (Python threads + paho) shares the
CPUs with the server, so a client-bound figure can be recognised. Every server's complete log
(level warning, so that logging per flow is not measured; errors with tracebacks) is kept in
``--logs`` (default: a ``lantern-bench-logs`` directory in the system temp directory) and its
ERROR lines are counted (``server_errors``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))

from lantern.device import Endpoint, ProvisionResult, provision  # noqa: E402
from lantern.pki import CertificateAuthority  # noqa: E402
from lantern.provisioning.admin import create_claim  # noqa: E402
from lantern.store import Database  # noqa: E402
from support.mqtt_server import Client, ClientFiles  # noqa: E402
from support.net import free_port, wait_for_port  # noqa: E402
from support.process import LanternProcess  # noqa: E402


def cpu_of(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def database_url_of(proc: LanternProcess) -> str:
    return proc.env.get("LANTERN_DATABASE_URL") or (
        f"sqlite+aiosqlite:///{proc.data_dir / 'lantern.db'}"
    )


@contextlib.contextmanager
def server_database(server_url: str | None) -> Iterator[str | None]:
    """None (SQLite in the data directory), or a new database on the PostgreSQL server at
    ``server_url``, dropped after."""
    if server_url is None:
        yield None
        return
    import asyncpg

    base = make_url(server_url)
    admin_dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"lantern_bench_{secrets.token_hex(4)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def make_claim(proc: LanternProcess, out: Path) -> tuple[Path, Path, Path]:
    async def work() -> tuple[str, str]:
        ca, _ = CertificateAuthority.load_or_create(proc.data_dir / "ca")
        db = await Database.open(database_url_of(proc))
        try:
            _, issued = await create_claim(db, ca, ["DefaultProvisioningTemplate"])
        finally:
            await db.close()
        assert issued.private_key_pem is not None
        return issued.certificate_pem, issued.private_key_pem

    cert_pem, key_pem = asyncio.run(work())
    out.mkdir(parents=True, exist_ok=True)
    (out / "claim.pem").write_text(cert_pem)
    (out / "claim.key").write_text(key_pem)
    return out / "claim.pem", out / "claim.key", proc.ca_file


def burst(
    proc: LanternProcess,
    claim: tuple[Path, Path, Path],
    devices: int,
    concurrency: int,
    use_csr: bool,
) -> tuple[list[ProvisionResult], dict[str, float]]:
    cert, key, ca = claim
    endpoint = Endpoint("localhost", proc.mqtt_port)
    latencies: list[float] = []
    failures = 0

    def one(i: int) -> ProvisionResult | None:
        nonlocal failures
        started = time.perf_counter()
        try:
            result = provision(
                endpoint,
                ca_file=ca,
                claim_cert=cert,
                claim_key=key,
                use_csr=use_csr,
                timeout=120,
                parameters={
                    "SerialNumber": f"B{i}",
                    "Manufacturer": "bench",
                    "Name": "bench",
                    "Model": "b",
                },
            )
        except Exception as exc:  # counted, and the first few shown
            failures += 1
            if failures <= 3:
                print(f"    flow failed: {exc}", file=sys.stderr)
            return None
        latencies.append(time.perf_counter() - started)
        return result

    assert proc.proc is not None
    server_cpu, client_cpu = cpu_of(proc.proc.pid), own_cpu()
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = [r for r in pool.map(one, range(devices)) if r is not None]
    elapsed = time.perf_counter() - started
    latencies.sort()
    server_cpu = cpu_of(proc.proc.pid) - server_cpu
    client_cpu = own_cpu() - client_cpu
    return results, {
        "flows_per_s": len(results) / elapsed,
        "elapsed": elapsed,
        "failures": failures,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))] if latencies else float("nan"),
        "server_ms": 1000 * server_cpu / max(1, len(results)),
        "client_ms": 1000 * client_cpu / max(1, len(results)),
    }


def mqtt_connects(
    proc: LanternProcess,
    devices: list[ProvisionResult],
    ca: Path,
    tmp: Path,
    total: int,
    concurrency: int,
) -> dict[str, float]:
    files: list[tuple[str, ClientFiles]] = []
    for r in devices[:50]:
        cert, key = tmp / f"{r.thing_name}.pem", tmp / f"{r.thing_name}.key"
        cert.write_text(r.certificate_pem)
        key.write_text(r.private_key_pem)
        files.append((r.thing_name, ClientFiles(cert, key, ca)))

    def one(i: int) -> None:
        # Each certificate is used by one worker at a time (same client id would take over).
        name, f = files[i % len(files)]
        client = Client(proc.mqtt_port, f, name, 4)
        client.connect()
        client.stop()

    assert proc.proc is not None
    server_cpu = cpu_of(proc.proc.pid)
    started = time.perf_counter()
    with ThreadPoolExecutor(min(concurrency, len(files))) as pool:
        list(pool.map(one, range(total)))
    elapsed = time.perf_counter() - started
    return {"connects_per_s": total / elapsed, "server_cpu": cpu_of(proc.proc.pid) - server_cpu}


def s_time(port: int, cert: Path, key: Path, ca: Path, seconds: int) -> float:
    out = subprocess.run(
        [
            "openssl",
            "s_time",
            "-connect",
            f"127.0.0.1:{port}",
            "-cert",
            str(cert),
            "-key",
            str(key),
            "-CAfile",
            str(ca),
            "-new",
            "-time",
            str(seconds),
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    ).stdout
    match = re.search(r"(\d+) connections in (\d+) real seconds", out)
    if match is None:
        raise RuntimeError(f"unexpected s_time output:\n{out}")
    return int(match.group(1)) / int(match.group(2))


def handshake_reference(
    proc: LanternProcess, cert: Path, key: Path, seconds: int
) -> dict[str, float]:
    ca_dir = proc.data_dir / "ca"
    port = free_port()
    server = subprocess.Popen(
        [
            "openssl",
            "s_server",
            "-accept",
            str(port),
            "-cert",
            str(ca_dir / "server.pem"),
            "-key",
            str(ca_dir / "server.key"),
            "-CAfile",
            str(ca_dir / "ca.pem"),
            "-Verify",
            "1",
            "-quiet",
            "-naccept",
            "1000000",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        reference = s_time(port, cert, key, ca_dir / "ca.pem", seconds)
    finally:
        server.terminate()
        server.wait()
    lantern = s_time(proc.mqtt_port, cert, key, ca_dir / "ca.pem", seconds)
    return {"openssl_s_server": reference, "lantern": lantern}


def stop_server(proc: LanternProcess, log_file: Path) -> int:
    """Stop the server, keep its whole log in ``log_file``; show the first error. Returns the
    number of ERROR lines (failed flows are otherwise only counted on the client side)."""
    proc.stop()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(proc.output)
    lines = proc.output.splitlines()
    errors = [i for i, line in enumerate(lines) if " ERROR " in line]
    if errors:
        print(f"  server logged {len(errors)} errors ({log_file}); the first:", file=sys.stderr)
        print("\n".join(lines[errors[0] : errors[0] + 40]), file=sys.stderr)
    return len(errors)


def run_server(
    tmp: Path, name: str, key_type: str, pool: int | None = None, database_url: str | None = None
) -> LanternProcess:
    env = {"LANTERN_PROVISIONING__KEY_TYPE": key_type, "LANTERN_LOG_LEVEL": "warning"}
    if database_url is not None:
        env["LANTERN_DATABASE_URL"] = database_url
    if pool is not None:
        env["LANTERN_PROVISIONING__KEY_POOL_SIZE"] = str(pool)
    proc = LanternProcess(tmp / name, env=env)
    proc.start(timeout=120)
    wait_for_port(proc.mqtt_port)
    return proc


def wait_until_idle(proc: LanternProcess, timeout: float = 600.0) -> tuple[float, float]:
    """Wait until the server uses < 5% of a CPU over a second (its key pool is full).
    Returns (seconds waited, CPU seconds the server used meanwhile)."""
    assert proc.proc is not None
    pid = proc.proc.pid
    start_wall, start_cpu = time.perf_counter(), cpu_of(pid)
    while time.perf_counter() - start_wall < timeout:
        before = cpu_of(pid)
        time.sleep(1.0)
        if cpu_of(pid) - before < 0.05:
            break
    return time.perf_counter() - start_wall, cpu_of(pid) - start_cpu


def show(title: str, figures: dict[str, float]) -> None:
    print(
        f"  {title:<34} "
        + "  ".join(
            f"{k}={v:.1f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
        )
    )


Results = dict[str, dict[str, float]]


def run_paths(args: argparse.Namespace, tmp: Path, server_url: str | None) -> Results:
    """Every path against fresh servers on one kind of database; the figures by path."""
    out: Results = {}
    phases: list[tuple[str, str, str, bool, int | None]] = [
        ("server-key RSA-2048 (AWS default)", "rsa", "rsa-2048", False, None),
        ("server-key RSA-2048, pool = burst", "rsa-pool", "rsa-2048", False, args.devices),
        ("CSR (device P-256 key)", "csr", "rsa-2048", True, None),
    ]
    if args.ec:
        phases.append(("server-key EC P-256", "ec", "ec-p256", False, None))
    label = "sqlite" if server_url is None else "postgres"
    for title, name, key_type, use_csr, pool in phases:
        with server_database(server_url) as url:
            proc = run_server(tmp, f"{label}-{name}", key_type, pool, url)
            try:
                # Startup work (and the key pool filling from startup) is not part of the burst.
                waited, fill_cpu = wait_until_idle(proc)
                if pool is not None:
                    print(
                        f"  (key pool of {pool} filled at startup: {waited:.0f} s, "
                        f"{fill_cpu:.0f} CPU-s in background threads)"
                    )
                claim = make_claim(proc, tmp / f"claim-{label}-{name}")
                _, figures = burst(proc, claim, args.devices, args.concurrency, use_csr)
            finally:
                errors = stop_server(proc, args.logs / f"provisioning-{label}-{name}.log")
        out[title] = {**figures, "server_errors": errors}
        show(title, out[title])
    with server_database(server_url) as url:
        proc = run_server(tmp, f"{label}-connects", "ec-p256", database_url=url)
        try:
            claim = make_claim(proc, tmp / f"claim-{label}-connects")
            devices, _ = burst(proc, claim, 60, args.concurrency, True)
            title = "MQTT connects (mTLS, device cert)"
            out[title] = mqtt_connects(
                proc, devices, proc.ca_file, tmp, args.connects, args.concurrency
            )
            show(title, out[title])
            d = devices[0]
            cert, key = tmp / f"hs-{label}.pem", tmp / f"hs-{label}.key"
            cert.write_text(d.certificate_pem)
            key.write_text(d.private_key_pem)
            title = "TLS handshakes/s (s_time -new)"
            out[title] = handshake_reference(proc, cert, key, args.seconds)
            show(title, out[title])
        finally:
            stop_server(proc, args.logs / f"provisioning-{label}-connects.log")
    return out


_SUMMARY = ("flows_per_s", "p50_ms", "p99_ms", "server_ms", "failures", "connects_per_s")


def side_by_side(results: dict[str, Results]) -> None:
    labels = list(results)
    first = results[labels[0]]
    rows = [
        (f"{title}: {key}", [results[label][title].get(key) for label in labels])
        for title in first
        for key in _SUMMARY
        if key in first[title]
    ]
    width = max(len(name) for name, _ in rows)
    print("\n" + " " * width + "".join(f"{label:>12}" for label in labels))
    for name, values in rows:
        cells = "".join(f"{'-' if v is None else f'{v:.1f}':>12}" for v in values)
        print(f"{name:{width}}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--connects", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=5, help="s_time duration per run")
    parser.add_argument("--ec", action="store_true", help="also the server-key path with EC")
    parser.add_argument(
        "--database-url",
        default=None,
        help="a PostgreSQL server (postgresql+asyncpg://user@host/db) to run every path on too",
    )
    parser.add_argument(
        "--logs",
        type=Path,
        default=Path(tempfile.gettempdir()) / "lantern-bench-logs",
        help="directory for the servers' logs",
    )
    args = parser.parse_args()
    if shutil.which("openssl") is None:
        sys.exit("openssl is needed for the handshake reference")
    with tempfile.TemporaryDirectory(prefix="lantern-bench-") as tmpdir:
        tmp = Path(tmpdir)
        print(
            f"{args.devices} devices per path, {args.concurrency} at a time; {os.cpu_count()} CPUs"
        )
        results: dict[str, Results] = {}
        for label, url in (("SQLite", None), ("PostgreSQL", args.database_url)):
            if label == "SQLite" or url is not None:
                print(f"{label}:")
                results[label] = run_paths(args, tmp, url)
        side_by_side(results)
        print(f"server logs: {args.logs}")


if __name__ == "__main__":
    main()
