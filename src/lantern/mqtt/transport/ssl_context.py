"""The server-side TLS context of the MQTT listeners (mutual TLS, ALPN as AWS IoT Core)."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

#: ALPN protocols the listeners select when a client offers them (the AWS SDKs offer the first).
DEFAULT_ALPN = ("x-amzn-mqtt-ca", "mqtt")


def make_server_ssl_context(
    cert_file: str | Path,
    key_file: str | Path,
    ca_file: str | Path,
    *,
    require_client_cert: bool = True,
    alpn: Sequence[str] = DEFAULT_ALPN,
) -> ssl.SSLContext:
    """A TLS 1.2+ server context presenting ``cert_file`` and verifying clients against ``ca_file``.

    With ``require_client_cert`` (the default) a client must present a certificate that chains to
    ``ca_file`` or the handshake fails; without it a certificate is requested and, if sent, must
    still chain to ``ca_file``. ALPN: the first of ``alpn`` that the client offers is selected; a
    client offering none (or only others) still connects, with no ALPN protocol.

    CPython sets ``SSL_MODE_RELEASE_BUFFERS`` on every context it creates, so OpenSSL frees its
    per-connection record buffers while a connection is idle.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert_file), str(key_file))
    ctx.load_verify_locations(cafile=str(ca_file))
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_OPTIONAL
    ctx.options |= ssl.OP_NO_RENEGOTIATION | ssl.OP_CIPHER_SERVER_PREFERENCE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx
