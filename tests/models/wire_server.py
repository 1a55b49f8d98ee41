"""A loopback HTTP server that replays recorded provider responses and records each request.

Fixtures live in tests/models/wire/<provider>/<case>.<ext>:
  .json    a 200 response body, application/json
  .sse     a 200 server-sent-events body, text/event-stream (sent in small writes)
  .ndjson  a 200 newline-delimited JSON body, application/x-ndjson (one write per line)
  .http    a whole recorded HTTP response: status line, headers, blank line, body
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

WIRE = Path(__file__).parent / "wire"


@dataclass
class Reply:
    """One recorded HTTP response to play back."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    chunks: list[bytes] = field(default_factory=list)
    """When set, the body is written in these pieces with a flush after each (streaming)."""
    delay: float = 0.0
    """Seconds to wait before answering (a slow provider)."""


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The request body parsed as JSON."""
        return json.loads(self.body)


def load(provider: str, case: str) -> Reply:
    """The recorded reply for `provider/case` (whatever its extension)."""
    matches = sorted((WIRE / provider).glob(case + ".*"))
    matches = [p for p in matches if p.suffix in (".json", ".sse", ".ndjson", ".http")]
    if len(matches) != 1:
        raise FileNotFoundError(f"expected one fixture for {provider}/{case}, found {matches}")
    path = matches[0]
    raw = path.read_bytes()
    if path.suffix == ".json":
        return Reply(200, [("Content-Type", "application/json")], raw)
    if path.suffix == ".sse":
        # Events end with a blank line; send one event per write like a real server.
        text = raw.decode()
        events = [e + "\n\n" for e in text.replace("\r\n", "\n").split("\n\n") if e.strip()]
        return Reply(
            200,
            [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")],
            raw,
            [e.encode() for e in events],
        )
    if path.suffix == ".ndjson":
        lines = [line + b"\n" for line in raw.splitlines() if line.strip()]
        return Reply(200, [("Content-Type", "application/x-ndjson")], raw, lines)
    head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    status_line, *header_lines = head.decode().split("\n")
    status = int(status_line.split()[1])
    headers = [(k.strip(), v.strip()) for k, v in (h.split(":", 1) for h in header_lines if h.strip())]
    return Reply(status, headers, body)


class WireServer:
    """Serves queued replies in order on 127.0.0.1, whatever the path, and records requests."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[Recorded] = []
        self.side: dict[str, Reply] = {}
        """Replies by path suffix for requests a client makes on its own (Ollama's /api/show)."""
        self.side_requests: list[Recorded] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                self._serve()

            def do_POST(self) -> None:
                self._serve()

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Recorded(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                with server._lock:
                    side = next(
                        (r for suffix, r in server.side.items() if self.path.split("?")[0].endswith(suffix)), None
                    )
                    if side is not None:
                        server.side_requests.append(seen)
                        reply = side
                    else:
                        server.requests.append(seen)
                        reply = server.replies.pop(0) if server.replies else None
                if reply is not None and reply.delay:
                    time.sleep(reply.delay)
                if reply is None:
                    reply = Reply(
                        599, [("Content-Type", "application/json")], b'{"error": "wire server: no reply queued"}'
                    )
                self.send_response(reply.status)
                for k, v in reply.headers:
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "date", "server"):
                        self.send_header(k, v)
                if reply.chunks:
                    self.send_header("Transfer-Encoding", "chunked")
                    self.send_header("Connection", "close")
                    self.end_headers()
                    for piece in reply.chunks:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    self.close_connection = True
                else:
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                    self.wfile.flush()

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="wire-server", daemon=True)

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:PORT."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def play(self, provider: str, *cases: str, delay: float = 0.0) -> None:
        """Queue the recorded replies for these cases, served in order (each after `delay` s)."""
        with self._lock:
            for c in cases:
                reply = load(provider, c)
                reply.delay = delay
                self.replies.append(reply)

    def reset(self) -> None:
        """Forget queued replies and recorded requests."""
        with self._lock:
            self.replies.clear()
            self.requests.clear()
            self.side_requests.clear()

    def start(self) -> WireServer:
        """Start serving in a background thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._httpd.shutdown()
        self._httpd.server_close()
