"""A device's data uploads on the wire (docs/device-topics.md): the seed's ``uploadObservation`` and
``uploadFile`` scripts.

* :func:`upload_observation` publishes ``{value, unit, coding, patientId?}`` (QoS 1) to
  ``$aws/rules/FHIRIngest`` and waits for ``<thing>/FHIRIngest/accepted`` (the observation id) or
  ``…/rejected`` (raised as :class:`~lantern.device.client.RequestRejected`).
* :func:`request_upload_link` publishes ``{fileName, contentType}`` to
  ``$aws/rules/CreateFileUploadLink`` and takes the answer on the topic named after the device
  (errors arrive on ``<thing>/CreateFileUploadLink/rejected``).
* :func:`put_file` streams the file to the link with ``PUT`` (never the whole file in memory),
  hashing it on the way, and checks what the server says it stored.

The CLI commands (``lantern device upload-observation`` / ``upload-file``) keep the seed's flag
names (``--deviceName``, ``--payloadValue`` …).
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from lantern import jsonlimits
from lantern.device.client import DeviceClient, DeviceError, Endpoint, RequestRejected

__all__ = [
    "CREATE_LINK_TOPIC",
    "FHIR_INGEST_TOPIC",
    "StoredFile",
    "UploadLink",
    "content_type_of",
    "observation_payload",
    "put_file",
    "request_upload_link",
    "upload_file_command",
    "upload_observation",
    "upload_observation_command",
]

FHIR_INGEST_TOPIC = "$aws/rules/FHIRIngest"
CREATE_LINK_TOPIC = "$aws/rules/CreateFileUploadLink"
CHUNK = 64 * 1024
Progress = Callable[[int], None]  # bytes sent so far


def observation_payload(
    value: str | float,
    unit: str,
    code: str,
    system: str,
    display: str | None = None,
    patient_id: str | None = None,
) -> dict[str, Any]:
    """The FHIRIngest request body exactly as the seed builds it (value as given)."""
    coding: dict[str, str] = {"code": code, "system": system}
    if display:
        coding["display"] = display
    body: dict[str, Any] = {"value": value, "unit": unit, "coding": [coding]}
    if patient_id:
        body["patientId"] = patient_id
    return body


def _answer(client: DeviceClient, accepted: str, rejected: str) -> dict[str, Any]:
    got, payload = client.receive((accepted, rejected))
    try:
        body = jsonlimits.loads(payload)
    except ValueError:
        raise DeviceError(f"the answer on {got} is not JSON") from None
    if not isinstance(body, dict):
        raise DeviceError(f"the answer on {got} is not a JSON object")
    if got == rejected:
        raise RequestRejected(got, body)
    return body


def upload_observation(client: DeviceClient, thing: str, body: dict[str, Any]) -> str:
    """Record one observation; returns its id. Raises :class:`RequestRejected` with the server's
    ``errorCode``/``errorMessage`` when the payload is refused."""
    accepted, rejected = f"{thing}/FHIRIngest/accepted", f"{thing}/FHIRIngest/rejected"
    client.subscribe(accepted)
    client.subscribe(rejected)
    client.publish(FHIR_INGEST_TOPIC, json.dumps(body).encode())
    answer = _answer(client, accepted, rejected)
    observation_id = answer.get("observationId")
    if not isinstance(observation_id, str) or not observation_id:
        raise DeviceError(f"the answer on {accepted} has no observationId")
    return observation_id


@dataclass(frozen=True, slots=True)
class UploadLink:
    url: str
    file_id: str | None
    expires_at: int | None


def request_upload_link(
    client: DeviceClient, thing: str, file_name: str, content_type: str
) -> UploadLink:
    """Ask for a signed upload link; the answer arrives on the topic ``thing``
    (docs/device-topics.md)."""
    rejected = f"{thing}/CreateFileUploadLink/rejected"
    client.subscribe(thing)
    client.subscribe(rejected)
    request = {"fileName": file_name, "contentType": content_type}
    client.publish(CREATE_LINK_TOPIC, json.dumps(request).encode())
    answer = _answer(client, thing, rejected)
    url = answer.get("uploadUrl")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise DeviceError(f"the answer on {thing} has no usable uploadUrl")
    file_id = answer.get("fileId")
    expires = answer.get("expiresAt")
    return UploadLink(
        url=url,
        file_id=file_id if isinstance(file_id, str) else None,
        expires_at=expires if isinstance(expires, int) else None,
    )


@dataclass(frozen=True, slots=True)
class StoredFile:
    """What was uploaded: size and SHA-256 computed while sending, and the server's answer."""

    size: int
    sha256: str
    status: int
    server: dict[str, Any]


def content_type_of(path: Path) -> str:
    """The media type of ``path`` from its name (``mimetypes``); ``application/octet-stream``
    when unknown."""
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed or "application/octet-stream"


def trust(ca_file: Path | None) -> ssl.SSLContext:
    """System CAs plus the Lantern CA: a Lantern link and an S3 presigned link both verify."""
    ctx = ssl.create_default_context()
    if ca_file is not None:
        ctx.load_verify_locations(cafile=str(ca_file))
    return ctx


def put_file(
    url: str,
    path: Path,
    content_type: str,
    *,
    verify: ssl.SSLContext | bool = True,
    progress: Progress | None = None,
    timeout: float = 60.0,
) -> StoredFile:
    """``PUT`` ``path`` to ``url`` as a stream with an exact ``Content-Length`` (S3 presigned
    PUTs need one; Lantern refuses an oversize upload before reading it)."""
    size = path.stat().st_size
    digest = hashlib.sha256()

    def chunks() -> Iterator[bytes]:
        sent = 0
        with path.open("rb") as f:
            # Never send more than announced, even if the file grows meanwhile.
            while sent < size and (chunk := f.read(min(CHUNK, size - sent))):
                digest.update(chunk)
                sent += len(chunk)
                if progress is not None:
                    progress(sent)
                yield chunk
        if sent != size:
            raise DeviceError(f"{path} changed size while being uploaded")

    headers = {"Content-Type": content_type, "Content-Length": str(size)}
    try:
        with httpx.Client(verify=verify, timeout=timeout) as http:
            response = http.put(url, content=chunks(), headers=headers)
    except httpx.HTTPError as exc:
        raise DeviceError(f"the upload failed: {exc}") from None
    body: dict[str, Any] = {}
    if response.headers.get("content-type", "").startswith("application/json"):
        parsed = response.json()
        body = parsed if isinstance(parsed, dict) else {}
    if response.status_code >= 400:
        detail = body.get("errorMessage") or response.text[:200] or response.reason_phrase
        code = body.get("errorCode") or response.status_code
        raise DeviceError(f"the upload was refused: {response.status_code} {code}: {detail}")
    stored = StoredFile(size, digest.hexdigest(), response.status_code, body)
    if "sha256" in body and (body["sha256"] != stored.sha256 or body.get("size") != size):
        raise DeviceError("the server stored different bytes than were sent (size or SHA-256)")
    return stored


# -- CLI -------------------------------------------------------------------------------------------

DeviceNameOption = Annotated[
    str, typer.Option("--deviceName", "--device-name", help="The thing name (from provisioning).")
]
EndpointOption = Annotated[str, typer.Option("--endpoint", help="MQTT endpoint host[:port].")]
CaOption = Annotated[
    Path | None,
    typer.Option("--ca", help="CA certificate of the server (default: <certs-dir>/ca.pem)."),
]
CertOption = Annotated[
    Path | None,
    typer.Option("--cert", help="Device certificate (default: <certs-dir>/<deviceName>.pem)."),
]
KeyOption = Annotated[
    Path | None,
    typer.Option("--key", help="Device private key (default: <certs-dir>/<deviceName>.key)."),
]
CertsDirOption = Annotated[
    Path,
    typer.Option("--certs-dir", "--certsDir", help="Directory with <deviceName>.pem and .key."),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", min=0.1, help="Seconds to wait for each answer.")
]


def _fail(message: str, hint: str | None = None) -> typer.Exit:
    from rich.console import Console

    err = Console(stderr=True, highlight=False)
    err.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    if hint:
        err.print(f"[dim]hint:[/] {hint}", soft_wrap=True)
    return typer.Exit(1)


def _client(
    device_name: str,
    endpoint: str,
    ca: Path | None,
    cert: Path | None,
    key: Path | None,
    certs_dir: Path,
    timeout: float,
) -> tuple[DeviceClient, Path]:
    ca_file = ca or certs_dir / "ca.pem"
    cert_file = cert or certs_dir / f"{device_name}.pem"
    key_file = key or certs_dir / f"{device_name}.key"
    for path, flag in ((ca_file, "--ca"), (cert_file, "--cert"), (key_file, "--key")):
        if not path.is_file():
            raise _fail(
                f"{flag} {path} does not exist",
                "pass --certs-dir with the files `lantern device provision` wrote "
                "(<deviceName>.pem, <deviceName>.key, ca.pem), or --cert/--key/--ca",
            )
    try:
        target = Endpoint.parse(endpoint)
        client = DeviceClient(
            target,
            ca_file=ca_file,
            cert_file=cert_file,
            key_file=key_file,
            client_id=device_name,  # the server binds a device certificate to its thing name
            timeout=timeout,
        )
    except DeviceError as exc:
        raise _fail(str(exc), "check --endpoint and the certificate files") from None
    return client, ca_file


_CONNECT_HINT = (
    "check --endpoint, --ca, that --deviceName is the thing name the certificate belongs to, "
    "and that the certificate is ACTIVE (`lantern certs list`)"
)


def upload_observation_command(
    device_name: DeviceNameOption,
    payload_value: Annotated[
        str, typer.Option("--payloadValue", "--payload-value", help="The measured value.")
    ],
    unit: Annotated[str, typer.Option("--unit", help="Unit, e.g. %, mmHg, bpm.")],
    code: Annotated[str, typer.Option("--code", help="FHIR code of the observation.")],
    code_system: Annotated[
        str, typer.Option("--codeSystem", "--code-system", help="FHIR code system (a URI).")
    ],
    code_display: Annotated[
        str | None, typer.Option("--codeDisplay", "--code-display", help="Display text.")
    ] = None,
    patient_id: Annotated[
        str | None,
        typer.Option("--patientId", "--patient-id", help="Subject: Patient/<patientId>."),
    ] = None,
    endpoint: EndpointOption = "localhost:8883",
    ca: CaOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    certs_dir: CertsDirOption = Path("./certs"),
    timeout: TimeoutOption = 30.0,
) -> None:
    """Record a FHIR observation ($aws/rules/FHIRIngest) and print its id."""
    from rich.console import Console

    client, _ = _client(device_name, endpoint, ca, cert, key, certs_dir, timeout)
    body = observation_payload(payload_value, unit, code, code_system, code_display, patient_id)
    try:
        with client:
            observation_id = upload_observation(client, device_name, body)
    except RequestRejected as exc:
        message = f"{exc.body.get('errorCode')}: {exc.body.get('errorMessage')}"
        raise _fail(f"observation rejected: {message}", "fix the value named above") from None
    except DeviceError as exc:
        raise _fail(str(exc), _CONNECT_HINT) from None
    Console(stderr=True, highlight=False).print(
        f"Stored observation for [bold]{device_name}[/]; "
        f"read it with GET /fhir/Observation/{observation_id}",
        soft_wrap=True,
    )
    typer.echo(observation_id)


def upload_file_command(
    device_name: DeviceNameOption,
    file_name: Annotated[
        str, typer.Option("--fileName", "--file-name", help="Name to store the file under.")
    ],
    file_path: Annotated[
        Path, typer.Option("--filePath", "--file-path", help="The file to upload.")
    ],
    content_type: Annotated[
        str | None,
        typer.Option("--contentType", "--content-type", help="Default: from --filePath."),
    ] = None,
    endpoint: EndpointOption = "localhost:8883",
    ca: CaOption = None,
    cert: CertOption = None,
    key: KeyOption = None,
    certs_dir: CertsDirOption = Path("./certs"),
    timeout: TimeoutOption = 30.0,
) -> None:
    """Get a signed link ($aws/rules/CreateFileUploadLink) and PUT the file to it."""
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    if not file_path.is_file():
        raise _fail(f"--filePath {file_path} is not a file", "pass the path of the file to send")
    ctype = content_type or content_type_of(file_path)
    client, ca_file = _client(device_name, endpoint, ca, cert, key, certs_dir, timeout)
    try:
        with client:
            link = request_upload_link(client, device_name, file_name, ctype)
    except RequestRejected as exc:
        message = f"{exc.body.get('errorCode')}: {exc.body.get('errorMessage')}"
        raise _fail(f"upload link refused: {message}", "fix the value named above") from None
    except DeviceError as exc:
        raise _fail(str(exc), _CONNECT_HINT) from None
    err = Console(stderr=True, highlight=False)
    size = file_path.stat().st_size
    try:
        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=err,
        ) as bar:
            task = bar.add_task(file_name, total=size)
            stored = put_file(
                link.url,
                file_path,
                ctype,
                verify=trust(ca_file),
                progress=lambda sent: bar.update(task, completed=sent),
                timeout=timeout,
            )
    except DeviceError as exc:
        raise _fail(str(exc), "request a new link: links expire and work once") from None
    except OSError as exc:
        raise _fail(f"cannot read {file_path}: {exc.strerror}") from None
    file_id = stored.server.get("fileId") or link.file_id or "-"
    out = Console(highlight=False)
    out.print(f"Stored [bold]{file_name}[/] ({ctype}, {stored.size:,} bytes) for {device_name}")
    out.print(f"  file id  {file_id}\n  sha256   {stored.sha256}", soft_wrap=True)
    out.print("Next: an admin lists it with `lantern files list`.")
