"""``lantern serve``: every component in one asyncio loop, with graceful shutdown on signals."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import cast

import uvicorn

from lantern.api.app import create_app
from lantern.audit.auth_failures import AuthFailures
from lantern.cluster.mode import ClusterRole, WorkerRole, check_cluster_settings
from lantern.cluster.node import node_id
from lantern.pki import CertificateAuthority
from lantern.runtime.cluster_material import share_platform_material
from lantern.runtime.component import Component, Platform
from lantern.runtime.components import build_components
from lantern.runtime.datadir import DataDir
from lantern.runtime.fdlimits import (
    current_limit,
    fit_settings,
    open_descriptors,
    raise_nofile_limit,
)
from lantern.runtime.http_protocol import (
    ConnectionGuard,
    GuardedHttpProtocol,
    TlsGate,
    guarded_protocol_class,
)
from lantern.runtime.ports import PortUnavailable
from lantern.settings import Settings
from lantern.store import Database
from lantern.store.objects import object_store_from_settings

log = logging.getLogger("lantern")
SLOW_START_SECONDS = 2.0


class EmbeddedUvicorn(uvicorn.Server):
    """uvicorn inside our loop: signals belong to Lantern, not to uvicorn; connections are
    capped and timed by ``guard`` (:mod:`lantern.runtime.http_protocol`), whose protocol class
    must be ``config.http``."""

    def __init__(
        self, config: uvicorn.Config, guard: ConnectionGuard, *, reuse_port: bool = False
    ) -> None:
        super().__init__(config)
        self.guard = guard
        self.reuse_port = reuse_port

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Bind ``config.host:port`` as uvicorn does, except that with TLS each connection is
        admitted (and counted) before its handshake, which is bounded by the read timeout."""
        await self.lifespan.startup()
        config, loop = self.config, asyncio.get_running_loop()

        def http_protocol() -> GuardedHttpProtocol:
            return cast(
                GuardedHttpProtocol,
                config.http_protocol_class(  # type: ignore[call-arg]
                    config=config,
                    server_state=self.server_state,
                    app_state=self.lifespan.state,
                    _loop=loop,
                ),
            )

        context = config.ssl
        factory: Callable[[], asyncio.Protocol] = (
            http_protocol
            if context is None
            else lambda: TlsGate(http_protocol, self.guard, context)
        )
        server = await loop.create_server(
            factory,
            host=config.host,
            port=config.port,
            backlog=config.backlog,
            reuse_port=self.reuse_port or None,
        )
        self.servers = [server]
        self.started = True


@dataclass
class RunningServer:
    """Handles of a started Lantern (for the CLI banner and for tests that run it in-process)."""

    platform: Platform
    components: list[Component]
    http: EmbeddedUvicorn
    http_task: asyncio.Task[None]
    first_run: bool
    banner: list[str] = field(default_factory=list)

    @property
    def http_port(self) -> int:
        servers = getattr(self.http, "servers", [])
        for srv in servers:
            for sock in srv.sockets:
                return int(sock.getsockname()[1])
        return self.platform.settings.http.port

    async def stop(self) -> None:
        """Stop components (newest first), then the HTTP server, the object store and the
        database."""
        for component in reversed(self.components):
            try:
                await component.stop()
            except Exception:
                log.exception("component %s failed to stop cleanly", component.name)
        self.http.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self.http_task
        await _close_platform(self.platform)


async def start(
    settings: Settings,
    *,
    nofile_raised_from: int | None = None,
    worker: WorkerRole | None = None,
) -> RunningServer:
    """Prepare the data directory, CA and database, then start HTTP and every component.

    Connection caps are fitted to the file descriptor limit first (:mod:`.fdlimits`);
    ``nofile_raised_from`` is the soft limit before ``serve`` raised it (for the banner).
    ``worker``: this process is one of the workers of ``serve --workers`` (ports shared)."""
    one_machine = worker is not None and worker.one_machine
    check_cluster_settings(settings, one_machine=one_machine)
    limit = current_limit()
    settings, caps = fit_settings(settings, limit, open_descriptors())
    if nofile_raised_from is not None and nofile_raised_from != limit:
        caps = f"{caps} (soft limit raised from {nofile_raised_from})"
    log.info("file descriptors: %s", caps)
    data = DataDir(settings.data_dir.resolve())
    first_run = data.ensure()
    data.tighten()
    role = None
    if settings.cluster.nats_url is not None:
        role = ClusterRole(
            node_id=node_id(settings.cluster.node_id, data.root),
            nats_url=settings.cluster.nats_url,
            one_machine=one_machine,
            worker=None if worker is None else worker.index,
        )
        # One identity for the node everywhere (registry, MQTT routing on NATS).
        cluster = settings.cluster.model_copy(update={"node_id": role.node_id})
        settings = settings.model_copy(update={"cluster": cluster})
    platform = await _open_platform(settings, data, role)
    platform.reuse_port = worker is not None
    try:
        built = build_components(platform)
        components = built.start_order()
        http, http_task = await _start_http(platform, components)
    except BaseException:
        await _close_platform(platform)
        raise
    running = RunningServer(platform, components, http, http_task, first_run)
    http_cfg = settings.http
    scheme = "https" if http_cfg.tls else "http"
    host = "localhost" if http_cfg.host in ("0.0.0.0", "127.0.0.1", "::") else http_cfg.host
    platform.http_base_url = (
        http_cfg.public_url or f"{scheme}://{host}:{running.http_port}"
    ).rstrip("/")
    started: list[Component] = []
    binders = [c for c in components if type(c).bind is not Component.bind]
    try:
        for component in binders:
            await component.bind()
        for component in components:
            began = time.monotonic()
            await component.start()
            started.append(component)
            took = time.monotonic() - began
            if took > SLOW_START_SECONDS:
                log.warning("starting %s took %.1f s", component.name, took)
    except BaseException:
        running.components = started + [c for c in binders if c not in started]
        await running.stop()
        raise
    # Everything built at startup lives for the whole run: move it out of the collector's view
    # so full collections stay short (measured: ~95 ms -> ~1.5 ms per full collection).
    gc.freeze()
    running.banner = [
        f"data directory   {data.root}{'  (created)' if first_run else ''}",
        f"CA devices trust {platform.ca.ca_file}",
        f"HTTP             {platform.http_base_url}",
        f"admin token      in {data.admin_token_file} (mode 0600)",
        f"descriptors      {caps}",
        f"HTTP limits      {http_cfg.max_connections} connections, requests read within "
        f"{http_cfg.request_read_timeout:g} s",
        *[line for c in built.banner_order() for line in c.describe()],
    ]
    return running


async def _open_platform(settings: Settings, data: DataDir, role: ClusterRole | None) -> Platform:
    """The CA, the admin token, the database and the object store every component shares.
    A node of a cluster on PostgreSQL first forms or joins the cluster's shared material
    (:mod:`.cluster_material`), then loads it from its data directory like a lone server."""
    db = await Database.open(settings.effective_database_url)
    try:
        if role is not None and not role.one_machine:
            await share_platform_material(settings, data, db)
        ca, _ = CertificateAuthority.load_or_create(data.ca_dir, settings.server_names)
        data.admin_token()
        objects = object_store_from_settings(settings.ingest, data.files_dir)
        await objects.start()
    except BaseException:
        await db.close()
        raise
    return Platform(
        settings=settings,
        data_dir=data.root,
        ca=ca,
        db=db,
        objects=objects,
        auth_failures=AuthFailures(db),
        cluster=role,
    )


async def _close_platform(platform: Platform) -> None:
    await platform.objects.close()
    await platform.db.close()


async def _start_http(
    platform: Platform, components: list[Component]
) -> tuple[EmbeddedUvicorn, asyncio.Task[None]]:
    """The HTTP app with every component's routes, bound (raises the bind error)."""
    http_cfg, ca = platform.settings.http, platform.ca
    app = create_app(
        routers=[r for c in components for r in c.routers()],
        readiness=[chk for c in components for chk in c.readiness_checks()],
        unmatched=[h for c in components for h in c.unmatched_handlers()],
    )
    guard = ConnectionGuard(http_cfg.max_connections, http_cfg.request_read_timeout)
    config = uvicorn.Config(
        app,
        host=http_cfg.host,
        port=http_cfg.port,
        http=guarded_protocol_class(guard),
        ws="none",  # no WebSocket routes (MQTT over WebSocket has its own listener)
        log_level="warning",
        log_config=None,  # uvicorn's lines go through Lantern's handler (text or JSON)
        access_log=False,
        lifespan="off",
        ssl_certfile=str(ca.server_cert_file) if http_cfg.tls else None,
        ssl_keyfile=str(ca.server_key_file) if http_cfg.tls else None,
        server_header=False,
        # Nothing in Lantern reads the client address or scheme (links use http.public_url), so
        # uvicorn's X-Forwarded-* rewriting would only add a middleware hop to every request.
        proxy_headers=False,
    )
    http = EmbeddedUvicorn(config, guard, reuse_port=platform.reuse_port)
    http_task = asyncio.create_task(http.serve(), name="http")
    while not http.started:
        if http_task.done():
            try:
                http_task.result()  # raises the bind error
            except OSError as exc:
                raise PortUnavailable("http", http_cfg.host, http_cfg.port, exc.errno) from exc
            raise SystemExit(f"the HTTP server did not start on {http_cfg.host}:{http_cfg.port}")
        await asyncio.sleep(0.01)
    return http, http_task


async def serve(
    settings: Settings,
    on_ready: Callable[[RunningServer], None],
    *,
    worker: WorkerRole | None = None,
) -> None:
    """Run until SIGINT or SIGTERM, then shut down gracefully. Everything this process (and
    its writer process) creates is private to its user: umask 077 before anything is made."""
    os.umask(0o077)
    raised_from, _ = raise_nofile_limit()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    running = await start(settings, nofile_raised_from=raised_from, worker=worker)
    on_ready(running)
    try:
        await stop.wait()
    finally:
        await running.stop()
