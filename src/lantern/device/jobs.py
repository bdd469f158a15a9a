"""A device's firmware update over the AWS IoT Jobs MQTT API (the seed's flow), wire protocol only.

:func:`firmware_update`:

1. ``jobs/get``: finish an IN_PROGRESS job if there is one, else take the oldest QUEUED one.
2. ``jobs/<id>/get`` for the job document. An ``operation`` other than ``firmware_update`` is
   answered ``REJECTED`` (with the reason in ``statusDetails``).
3. ``IN_PROGRESS`` at 0 %, then download ``firmwareUrl`` into ``<out>.part``, resuming with
   ``Range`` after an interruption; an expired link is replaced by describing the job again
   (Lantern mints a fresh link on every send).
4. Verify size and SHA-256: a mismatch is ``FAILED`` with the reason. Else ``IN_PROGRESS`` 50 %,
   write the image to ``out`` (atomic rename: "apply"), and ``SUCCEEDED`` 100 %.

The CLI command is ``lantern device firmware-update --deviceName … [--out PATH]``.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from lantern.device.client import DeviceClient, DeviceError, Endpoint

__all__ = ["UpdateOutcome", "download_resumable", "firmware_update", "firmware_update_command"]

FIRMWARE_OPERATION = "firmware_update"
CHUNK = 64 * 1024
Progress = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class UpdateOutcome:
    job_id: str | None
    status: str  # SUCCEEDED | FAILED | REJECTED | NONE (nothing pending)
    detail: str
    path: Path | None = None


class DownloadLinkExpired(DeviceError):
    """The firmware link was refused as expired: describe the job again for a new one."""


def _jobs(thing: str, suffix: str) -> str:
    return f"$aws/things/{thing}/jobs/{suffix}"


def _token() -> str:
    return str(uuid.uuid4())


def download_resumable(
    url: str,
    part: Path,
    *,
    verify: str | bool = True,
    progress: Progress | None = None,
    attempts: int = 5,
    client: httpx.Client | None = None,
) -> int:
    """Download ``url`` into ``part``, continuing from what ``part`` already holds; returns the
    total size. Retries interrupted transfers with ``Range: bytes=<have>-``."""
    own = client is None
    http = client or httpx.Client(verify=verify, timeout=30.0)
    try:
        for attempt in range(attempts):
            have = part.stat().st_size if part.exists() else 0
            headers = {"Range": f"bytes={have}-"} if have else {}
            try:
                with http.stream("GET", url, headers=headers) as response:
                    if response.status_code == 416 and have:
                        return have  # already complete
                    if response.status_code == 403:
                        response.read()
                        if response.json().get("errorCode") == "LinkExpired":
                            raise DownloadLinkExpired("the firmware link expired")
                        raise DeviceError(f"the firmware link was refused: {response.text}")
                    if response.status_code not in (200, 206):
                        response.read()
                        raise DeviceError(f"download failed: HTTP {response.status_code}")
                    mode = "ab" if response.status_code == 206 else "wb"
                    total = _total(response, have)
                    done = have if mode == "ab" else 0
                    with part.open(mode) as f:
                        for chunk in response.iter_bytes(CHUNK):
                            f.write(chunk)
                            done += len(chunk)
                            if progress is not None:
                                progress(done, total)
                    if done >= total:
                        return done
            except httpx.TransportError:
                if attempt == attempts - 1:
                    raise DeviceError(f"download interrupted {attempts} times; giving up") from None
        raise DeviceError("download incomplete")
    finally:
        if own:
            http.close()


def _total(response: httpx.Response, have: int) -> int:
    content_range = response.headers.get("content-range", "")
    if response.status_code == 206 and "/" in content_range:
        return int(content_range.rsplit("/", 1)[1])
    return int(response.headers.get("content-length", "0")) + (
        have if response.status_code == 206 else 0
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def report_line(status: str, details: dict[str, str]) -> str:
    """What the device told the server, for a person: ``reported IN_PROGRESS: downloading, 0 %``."""
    parts = [details[k] for k in ("step", "reason") if details.get(k)]
    if details.get("percentProgress"):
        parts.append(f"{details['percentProgress']} %")
    return f"reported {status}" + (f": {', '.join(parts)}" if parts else "")


def firmware_update(
    client: DeviceClient,
    thing: str,
    out: Path,
    *,
    verify: str | bool = True,
    progress: Progress | None = None,
    log: Callable[[str], None] = lambda _m: None,
) -> UpdateOutcome:
    """Run the seed's firmware update flow once (see the module docstring)."""
    pending = client.request(_jobs(thing, "get"), {"clientToken": _token()})
    in_progress = pending.get("inProgressJobs") or []
    queued = pending.get("queuedJobs") or []
    if not in_progress and not queued:
        return UpdateOutcome(None, "NONE", "no pending job")
    job_id = str((in_progress or queued)[0]["jobId"])
    log(f"job {job_id}: {'finishing the job in progress' if in_progress else 'starting'}")

    def describe() -> dict[str, Any]:
        answer = client.request(
            _jobs(thing, f"{job_id}/get"), {"includeJobDocument": True, "clientToken": _token()}
        )
        return dict(answer["execution"])

    def update(status: str, details: dict[str, str]) -> None:
        client.request(
            _jobs(thing, f"{job_id}/update"),
            {"status": status, "statusDetails": details, "clientToken": _token()},
        )
        log(report_line(status, details))

    document = describe().get("jobDocument") or {}
    if document.get("firmwareVersion") is not None:
        log(
            f"firmware {document.get('firmwareId', '?')} version {document['firmwareVersion']}"
            f", {document.get('size', '?')} bytes"
        )
    operation = document.get("operation")
    if operation != FIRMWARE_OPERATION:
        reason = f"unknown operation {str(operation)[:100]!r}"
        update("REJECTED", {"reason": reason})
        return UpdateOutcome(job_id, "REJECTED", reason)

    update("IN_PROGRESS", {"percentProgress": "0", "step": "downloading"})
    part = out.with_name(out.name + ".part")
    for _ in range(3):
        try:
            size = download_resumable(
                str(document["firmwareUrl"]), part, verify=verify, progress=progress
            )
            break
        except DownloadLinkExpired:
            log("firmware link expired; asking for the job document again")
            document = describe().get("jobDocument") or {}
    else:
        raise DeviceError("the firmware link kept expiring")

    expected_sha = str(document.get("sha256", ""))
    expected_size = document.get("size")
    actual_sha = _sha256(part)
    if (expected_size is not None and size != int(expected_size)) or actual_sha != expected_sha:
        part.unlink(missing_ok=True)
        reason = f"checksum mismatch: expected sha256 {expected_sha}, got {actual_sha}"
        update("FAILED", {"reason": reason[:1024]})
        return UpdateOutcome(job_id, "FAILED", reason)

    update("IN_PROGRESS", {"percentProgress": "50", "step": "applying"})
    os.replace(part, out)  # "apply": the verified image becomes the installed one
    update("SUCCEEDED", {"percentProgress": "100"})
    version = document.get("firmwareVersion", "")
    return UpdateOutcome(job_id, "SUCCEEDED", f"firmware {version} written to {out}", out)


def firmware_update_command(
    device_name: Annotated[
        str, typer.Option("--deviceName", "--device-name", help="The thing name.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where to write the verified image.")] = Path(
        "firmware.bin"
    ),
    endpoint: Annotated[
        str, typer.Option("--endpoint", help="MQTT endpoint host[:port].")
    ] = "localhost:8883",
    ca: Annotated[
        Path | None,
        typer.Option("--ca", help="CA certificate of the server (default: <certs-dir>/ca.pem)."),
    ] = None,
    certs_dir: Annotated[
        Path,
        typer.Option("--certs-dir", "--certsDir", help="Directory with <deviceName>.pem and .key."),
    ] = Path("./certs"),
) -> None:
    """Check for a firmware job and run it: download (resumable), verify, apply, report."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    console = Console(highlight=False)
    ca_file = ca or certs_dir / "ca.pem"
    client = DeviceClient(
        Endpoint.parse(endpoint),
        ca_file=ca_file,
        cert_file=certs_dir / f"{device_name}.pem",
        key_file=certs_dir / f"{device_name}.key",
        client_id=device_name,
    )
    try:
        with (
            client,
            Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                console=console,
            ) as bar,
        ):
            task = bar.add_task("firmware", total=None)

            def on_progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            outcome = firmware_update(
                client,
                device_name,
                out,
                verify=str(ca_file),
                progress=on_progress,
                log=lambda m: console.print(m, markup=False),
            )
    except DeviceError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(1) from None
    if outcome.status == "NONE":
        console.print(
            f"No firmware job is pending for {device_name}: nothing to do.",
            markup=False,
        )
        return
    console.print(f"{outcome.status}: {outcome.detail}", markup=False)
    if outcome.status in ("FAILED", "REJECTED"):
        raise typer.Exit(2)
