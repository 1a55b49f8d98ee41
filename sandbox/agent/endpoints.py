"""The agent's HTTP faces: container logs on the kubelet port (HTTPS, dialled by the API server
for `pods/log`), the workloads' metrics in the Prometheus exposition format and a
RabbitMQ-management-shaped API on loopback, and the active scenario's TLS endpoint serving the
certificate its Secret holds."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlparse

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from sandbox.agent.api import log, ts_nano

if TYPE_CHECKING:
    from sandbox.agent.process import Agent


class _Handler(BaseHTTPRequestHandler):
    agent: Agent
    kind: str  # kubelet | metrics | queue
    server_version = "lantern-sandbox"

    def log_message(self, fmt: str, *args: Any) -> None:  # quiet: the agent log is for the agent
        return

    def _send(self, code: int, body: str | bytes, ctype: str = "application/json") -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        try:
            u = urlparse(self.path)
            qs = {k: v[-1] for k, v in parse_qs(u.query).items()}
            getattr(self, f"_{self.kind}")(u.path, qs)
        except Exception as exc:  # noqa: BLE001 - answer 500 with the reason rather than drop the connection
            log.exception("HTTP %s failed", self.path)
            self._send(500, json.dumps({"status": "error", "error": str(exc)}))

    def _kubelet(self, path: str, qs: dict[str, str]) -> None:
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if path in ("/healthz", "/healthz/"):
            return self._send(200, "ok", "text/plain")
        if len(parts) != 4 or parts[0] != "containerLogs":
            return self._send(404, "404 page not found", "text/plain")
        _, ns, pod, container = parts
        code, res = self.agent.kubelet.read_logs(
            ns, pod, container, qs.get("previous", "false").lower() in ("true", "1")
        )
        if code != 200:
            return self._send(code, str(res), "text/plain")
        lines = list(res)
        if qs.get("sinceSeconds"):
            cut = time.time() - float(qs["sinceSeconds"])
            lines = [ln for ln in lines if ln[0] >= cut]
        if qs.get("sinceTime"):
            cut = dt.datetime.fromisoformat(qs["sinceTime"].replace("Z", "+00:00")).timestamp()
            lines = [ln for ln in lines if ln[0] >= cut]
        if qs.get("tailLines"):
            n = int(qs["tailLines"])
            lines = lines[-n:] if n > 0 else []
        stamp = qs.get("timestamps", "false").lower() in ("true", "1")
        text = "".join((f"{ts_nano(t)} " if stamp else "") + ln + "\n" for t, ln in lines)
        data = text.encode()
        if qs.get("limitBytes"):
            data = data[: int(qs["limitBytes"])]
        if qs.get("follow", "false").lower() in ("true", "1") and not qs.get("limitBytes"):
            return self._follow(ns, pod, container, data, stamp, len(res))
        self._send(200, data, "text/plain")

    def _follow(self, ns: str, pod: str, container: str, first: bytes, stamp: bool, seen: int) -> None:
        """`logs -f`: the lines so far, then new ones as the instance writes them, until it ends or the client goes."""
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            self.wfile.write(first)
            self.wfile.flush()
            instance = self.agent.kubelet.instance_of(ns, pod, container)
            deadline = time.time() + 3600
            while time.time() < deadline and not self.agent.view.stop.is_set():
                time.sleep(0.5)
                code, res = self.agent.kubelet.read_logs(ns, pod, container, False)
                now_inst = self.agent.kubelet.instance_of(ns, pod, container)
                if code != 200 or now_inst is None or instance is None or now_inst[0] != instance[0]:
                    return  # the pod went away or a new instance started: the kubelet ends the stream too
                new = res[seen:]
                seen = len(res)
                if new:
                    self.wfile.write("".join((f"{ts_nano(t)} " if stamp else "") + ln + "\n" for t, ln in new).encode())
                    self.wfile.flush()
                if now_inst[1] != "running":
                    return  # the container exited: the stream ends with it
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            return

    def _metrics(self, path: str, qs: dict[str, str]) -> None:
        """The exporters' scrape paths (text exposition format) and a health check."""
        if path == "/-/healthy":
            return self._send(200, "Healthy.\n", "text/plain")
        registry = self.agent.metrics.registries.get(path.rstrip("/") or path)
        if registry is None:
            return self._send(404, "404 page not found\n", "text/plain")
        self._send(200, generate_latest(registry), CONTENT_TYPE_LATEST)

    def _queue(self, path: str, qs: dict[str, str]) -> None:
        a = self.agent
        sc = a.view.scenario
        queues = []
        if sc and sc.queue and a.queue.depth is not None:
            q = sc.queue
            depth = int(a.queue.depth)
            pub, deliv = a.queue.rates
            queues.append(
                {
                    "name": q.name,
                    "vhost": q.vhost,
                    "durable": True,
                    "auto_delete": False,
                    "state": "running",
                    "type": "classic",
                    "node": "rabbit@rabbitmq-0",
                    "messages": depth,
                    "messages_ready": depth,
                    "messages_unacknowledged": 0,
                    "consumers": a.queue.consumers,
                    "consumer_utilisation": 1.0 if a.queue.consumers else None,
                    "message_stats": {
                        "publish_details": {"rate": round(pub, 1)},
                        "deliver_get_details": {"rate": round(deliv, 1)},
                        "ack_details": {"rate": round(deliv, 1)},
                    },
                }
            )
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if parts == ["api", "overview"]:
            total = sum(q["messages"] for q in queues)
            return self._send(
                200,
                json.dumps(
                    {
                        "rabbitmq_version": "3.12.13",
                        "cluster_name": "rabbit@rabbitmq-0",
                        "queue_totals": {"messages": total, "messages_ready": total, "messages_unacknowledged": 0},
                        "object_totals": {"queues": len(queues), "consumers": sum(q["consumers"] for q in queues)},
                    }
                ),
            )
        if parts == ["api", "queues"]:
            return self._send(200, json.dumps(queues))
        if len(parts) == 3 and parts[:2] == ["api", "queues"]:
            return self._send(200, json.dumps([q for q in queues if q["vhost"] == parts[2]]))
        if len(parts) == 4 and parts[:2] == ["api", "queues"]:
            for q in queues:
                if q["vhost"] == parts[2] and q["name"] == parts[3]:
                    return self._send(200, json.dumps(q))
            return self._send(404, json.dumps({"error": "Object Not Found", "reason": "Not Found"}))
        self._send(404, json.dumps({"error": "Object Not Found", "reason": "Not Found"}))


def serve(agent: Agent, kind: str, port: int, tls: tuple[Path, Path] | None = None) -> ThreadingHTTPServer:
    handler = type(f"{kind.title()}Handler", (_Handler,), {"agent": agent, "kind": kind})
    srv = ThreadingHTTPServer(("127.0.0.1", port), handler)
    srv.daemon_threads = True
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(tls[0]), str(tls[1]))
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, name=f"http-{kind}", daemon=True).start()
    return srv


class TlsEndpoint:
    """Serves, on a loopback port, the certificate the active scenario's Secret holds at this moment."""

    def __init__(self, agent: Agent, port: int) -> None:
        self.agent = agent
        self.sock = socket.create_server(("127.0.0.1", port))
        self.dir = agent.lay.home / "tls-endpoint"
        self.cache: tuple[str, ssl.SSLContext] | None = None
        threading.Thread(target=self.loop, name="tls-endpoint", daemon=True).start()

    def context(self) -> ssl.SSLContext | None:
        sc = self.agent.view.scenario
        if not sc or not sc.tls_endpoint:
            return None
        sec = self.agent.view.world.secrets.get((sc.namespace, sc.tls_endpoint.secret))
        data = (sec or {}).get("data") or {}
        if not data.get("tls.crt") or not data.get("tls.key"):
            return None
        digest = hashlib.sha256((data["tls.crt"] + data["tls.key"]).encode()).hexdigest()
        if self.cache and self.cache[0] == digest:
            return self.cache[1]
        self.dir.mkdir(parents=True, exist_ok=True)
        crt, key = self.dir / "tls.crt", self.dir / "tls.key"
        crt.write_bytes(base64.b64decode(data["tls.crt"]))
        key.touch(mode=0o600)
        key.write_bytes(base64.b64decode(data["tls.key"]))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(crt), str(key))
        self.cache = (digest, ctx)
        return ctx

    def loop(self) -> None:
        while not self.agent.view.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn: socket.socket) -> None:
        try:
            ctx = self.context()
            if ctx is None:
                return
            conn.settimeout(5)
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(4096)
                body = b"ok\n"
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\n" + body)
        except (OSError, ssl.SSLError, ValueError):
            pass  # a client that rejects the certificate ends the handshake: that is the point
        finally:
            conn.close()
