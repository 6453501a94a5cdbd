"""A small webhook receiver on 127.0.0.1: the demo's alert inbox (Apprise `json://` posts here).

Each POST body is kept in `received` (its headers in `headers`, same order) and, when `log_path` is set,
appended to that file as one JSON line.
`fail_first=N` answers 500 to the first N posts (to show retries).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


class WebhookReceiver:
    def __init__(self, *, log_path: Path | None = None, fail_first: int = 0, host: str = "127.0.0.1") -> None:
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.attempts = 0
        self.log_path = log_path
        self.fail_first = fail_first
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def apprise_url(self, path: str = "alerts") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _accept(self, body: bytes, headers: dict[str, str]) -> bool:
        with self._lock:
            self.attempts += 1
            if self.attempts <= self.fail_first:
                return False
            try:
                payload = json.loads(body)
            except ValueError:
                payload = {"raw": body.decode("utf-8", "replace")}
            self.received.append(payload)
            self.headers.append(headers)
            if self.log_path:
                with self.log_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(payload, ensure_ascii=False) + "\n")
            return True

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                ok = receiver._accept(self.rfile.read(length), dict(self.headers.items()))
                self.send_response(200 if ok else 500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler
