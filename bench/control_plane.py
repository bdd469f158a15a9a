"""Benchmark (not a test): the AWS IoT control plane beside Lantern's own admin API, in one run.

Starts a real ``lantern serve`` (free loopback ports, a fresh data directory; SQLite, or
PostgreSQL with ``--database-url``), puts ``--things`` things (default 100,000) and a static
group of ``--targets`` of them (default 10,000) into its database directly (what provisioning
would have left behind), creates an access key with ``lantern access-keys create --json``, then
times over HTTP:

- **CreateJob** (boto3 ``iot``, SigV4) for a job targeting the group (``--targets`` executions),
  beside ``POST /v1/deployments`` (admin token) of a firmware deployment to the same group: the
  existing ``lantern deployments`` path;
- **ListThings** paged through every thing (boto3, ``maxResults`` 250, SigV4 on every page),
  beside ``GET /v1/things`` (admin token; it answers the first 1,000 things by name, so the
  comparison is per 1,000 things).

Each figure is the median of ``--repeat`` runs; the server's CPU (``lantern serve`` and its
children) is printed beside the wall time, so a client-bound figure is visible.

    .venv/bin/python bench/control_plane.py [--things 100000] [--targets 10000] [--repeat 3]
        [--database-url postgresql+asyncpg://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import boto3
import httpx
from botocore.config import Config
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).parent))
from ingest import Server, cpu_seconds
from lantern.store import Database
from lantern.store.schema.jobs import thing_group_members, thing_groups
from lantern.store.schema.registry import things

GROUP = "bench-targets"


async def fill(database_url: str, n_things: int, n_targets: int) -> None:
    """``n_things`` things; the first ``n_targets`` of them in the static group GROUP."""
    db = await Database.open(database_url)
    now = time.time()
    try:
        async with db.transaction() as conn:
            await conn.execute(
                insert(thing_groups),
                [{"project": "default", "name": GROUP, "description": "", "created_at": now}],
            )
        for start in range(0, n_things, 10_000):
            names = [f"thing-{i:06d}" for i in range(start, min(n_things, start + 10_000))]
            rows = [
                {
                    "name": n,
                    "project": "default",
                    "attributes": {"model": "m1"},
                    "created_at": now,
                    "updated_at": now,
                }
                for n in names
            ]
            members = [
                {"project": "default", "group_name": GROUP, "thing_name": n, "added_at": now}
                for i, n in enumerate(names, start)
                if i < n_targets
            ]
            async with db.transaction() as conn:
                await conn.execute(insert(things), rows)
                if members:
                    await conn.execute(insert(thing_group_members), members)
    finally:
        await db.close()


def lantern(server: Server, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANTERN_")}
    env["LANTERN_DATA_DIR"] = str(server.data_dir)
    if not server.database_url.startswith("sqlite"):
        env["LANTERN_DATABASE_URL"] = server.database_url
    done = subprocess.run(
        [sys.executable, "-m", "lantern", *args], env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"lantern {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def timed(server: Server, fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Median wall seconds and median server CPU seconds of ``fn`` over ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        cpu0, t0 = cpu_seconds(server.proc.pid), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(cpu_seconds(server.proc.pid) - cpu0)
    return statistics.median(walls), statistics.median(cpus)


def run(args: argparse.Namespace, work: Path, database_url: str | None) -> None:
    server = Server.start(work, database_url=database_url)
    try:
        t0 = time.perf_counter()
        asyncio.run(fill(server.database_url, args.things, args.targets))
        print(
            f"filled {args.things:,} things, {args.targets:,} in group {GROUP} "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        key = json.loads(
            lantern(server, "access-keys", "create", "--name", "bench", "--role", "admin", "--json")
        )
        base = f"http://127.0.0.1:{server.http_port}"
        iot = boto3.client(
            "iot",
            endpoint_url=base,
            region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"],
            aws_secret_access_key=key["SecretAccessKey"],
            config=Config(retries={"max_attempts": 1}),
        )
        token = (server.data_dir / "admin-token").read_text().strip()
        admin = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=600
        )
        firmware = admin.post(
            "/v1/firmware", params={"version": "1.0.0"}, content=b"\x00" * 100_000
        )
        firmware.raise_for_status()
        firmware_id = firmware.json()["firmwareId"]
        group_arn = f"arn:aws:iot:us-east-1:000000000000:thinggroup/{GROUP}"

        def create_job() -> None:
            iot.create_job(
                jobId=f"bench-{uuid.uuid4().hex[:12]}",
                targets=[group_arn],
                document=json.dumps({"operation": "reboot"}),
                targetSelection="SNAPSHOT",
            )

        def create_deployment() -> None:
            r = admin.post("/v1/deployments", json={"firmwareId": firmware_id, "group": GROUP})
            r.raise_for_status()

        def list_things_aws() -> None:
            count = 0
            for page in iot.get_paginator("list_things").paginate(
                PaginationConfig={"PageSize": 250}
            ):
                count += len(page["things"])
            assert count == args.things, count

        def list_things_admin() -> None:
            r = admin.get("/v1/things")
            r.raise_for_status()
            assert len(r.json()["things"]) == min(1000, args.things)

        rows = [
            (
                f"CreateJob, {args.targets:,} targets (boto3)",
                timed(server, create_job, args.repeat),
            ),
            (
                f"POST /v1/deployments, {args.targets:,} targets",
                timed(server, create_deployment, args.repeat),
            ),
            (
                f"ListThings, {args.things:,} things, pages of 250 (boto3)",
                timed(server, list_things_aws, args.repeat),
            ),
            (
                f"GET /v1/things, first {min(1000, args.things):,} things (one response)",
                timed(server, list_things_admin, args.repeat),
            ),
        ]
        print(f"\n{'operation':<58} {'wall s':>8} {'server CPU s':>13}")
        for label, (wall, cpu) in rows:
            print(f"{label:<58} {wall:>8.2f} {cpu:>13.2f}")
        (cj, _), (dep, _), (lt, _), (adm, _) = (r[1] for r in rows)
        per_k_aws = lt / args.things * 1000
        per_k_admin = adm / min(1000, args.things) * 1000
        print(
            f"\nCreateJob / deployments: {cj / dep:.2f}x   per 1,000 things listed: "
            f"ListThings {per_k_aws * 1000:.0f} ms, GET /v1/things {per_k_admin * 1000:.0f} ms "
            f"({per_k_aws / per_k_admin:.2f}x)"
        )
    finally:
        server.stop()


def postgres_database(server_url: str) -> tuple[str, Callable[[], None]]:
    """A fresh database on the server ``server_url`` names, and a function dropping it."""
    name = f"bench_cp_{uuid.uuid4().hex[:8]}"
    admin_url = make_url(server_url).set(drivername="postgresql+asyncpg")

    async def execute(sql: str) -> None:
        db = await Database.open(admin_url.render_as_string(hide_password=False))
        try:
            async with db.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(text(sql))
        finally:
            await db.close()

    asyncio.run(execute(f'CREATE DATABASE "{name}"'))
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    return url, lambda: asyncio.run(execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--things", type=int, default=100_000)
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url", help="a PostgreSQL server; default: SQLite")
    args = parser.parse_args()
    if args.targets > args.things:
        parser.error("--targets cannot exceed --things")
    with tempfile.TemporaryDirectory(prefix="lantern-bench-cp-") as tmp:
        if args.database_url:
            url, drop = postgres_database(args.database_url)
            try:
                run(args, Path(tmp), url)
            finally:
                drop()
        else:
            run(args, Path(tmp), None)


if __name__ == "__main__":
    main()
