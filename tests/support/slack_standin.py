"""A local Slack incoming-webhook endpoint: ``POST /services/T…/B…/…`` with scripted replies."""

from __future__ import annotations

import json
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field

from support.httpstandin import HTTPStandIn


@dataclass
class SlackStandIn:
    received: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    script: dict[str, deque[tuple[int, str, str | None]]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._http = HTTPStandIn(self._handle)

    @property
    def base_url(self) -> str:
        return f"{self._http.url}/services"

    def answer(self, path: str, status: int, text: str, retry_after: str | None = None) -> None:
        with self._lock:
            self.script[path].append((status, text, retry_after))

    def start(self) -> SlackStandIn:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes):  # type: ignore[no-untyped-def]
        hook = path.removeprefix("/services/")
        with self._lock:
            self.received.append((hook, json.loads(body)))
            queue = self.script.get(hook)
            status, text, retry_after = queue.popleft() if queue else (200, "ok", None)
        out = {"content-type": "text/plain"}
        if retry_after:
            out["retry-after"] = retry_after
        return status, out, text.encode()
