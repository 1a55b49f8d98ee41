"""A small real HTTP service on 127.0.0.1 that misbehaves the ways real APIs do (429, 500, 206, pages)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

hits: Counter[str] = Counter()
"""Requests per path (reset by the fixture)."""
seen_headers: list[dict[str, str]] = []
"""Headers of every request (to check auth was sent)."""

ITEMS = [{"id": i, "name": f"item-{i}", "noise": "x" * 20} for i in range(1, 2141)]


def _record(request: Request) -> None:
    hits[request.url.path] += 1
    seen_headers.append(dict(request.headers))


async def flaky429(request: Request) -> Response:
    _record(request)
    if hits[request.url.path] == 1:
        return JSONResponse({"message": "slow down"}, status_code=429, headers={"Retry-After": "1"})
    return JSONResponse({"ok": True, "attempt": hits[request.url.path]})


async def flaky500(request: Request) -> Response:
    _record(request)
    if hits[request.url.path] == 1:
        return PlainTextResponse("upstream exploded", status_code=500)
    return JSONResponse({"ok": True, "attempt": hits[request.url.path]})


async def always500(request: Request) -> Response:
    _record(request)
    return PlainTextResponse("still broken", status_code=503)


async def long_retry_after(request: Request) -> Response:
    _record(request)
    return JSONResponse({"message": "come back in an hour"}, status_code=429, headers={"Retry-After": "3600"})


async def partial206(request: Request) -> Response:
    _record(request)
    return JSONResponse({"items": ITEMS[:3]}, status_code=206)


async def link_pages(request: Request) -> Response:
    _record(request)
    page = int(request.query_params.get("page", "1"))
    size = 4
    items = ITEMS[(page - 1) * size : page * size]
    headers = {}
    if page < 3:
        headers["Link"] = f'<http://{request.url.netloc}/pages/link?page={page + 1}>; rel="next"'
    return JSONResponse(items, headers=headers)


async def cursor_pages(request: Request) -> Response:
    _record(request)
    cur = int(request.query_params.get("cursor", "0"))
    items = ITEMS[cur : cur + 5]
    nxt = str(cur + 5) if cur + 5 < 12 else None
    return JSONResponse({"data": items if cur + 5 < 12 else ITEMS[cur:12], "next_cursor": nxt})


async def numbered_pages(request: Request) -> Response:
    """RabbitMQ-style: page/page_size with a total count; 2,140 items so a capped fetch is partial."""
    _record(request)
    page = int(request.query_params.get("page", "1"))
    size = int(request.query_params.get("page_size", "100"))
    items = ITEMS[(page - 1) * size : page * size]
    return JSONResponse(
        {"items": items, "page": page, "filtered_count": len(ITEMS), "page_count": -(-len(ITEMS) // size)}
    )


async def k8s_continue(request: Request) -> Response:
    _record(request)
    return JSONResponse(
        {
            "kind": "PodList",
            "metadata": {"continue": "eyJ2IjoibWV0YS5rOHMuaW8vdjEifQ", "remainingItemCount": 1640},
            "items": ITEMS[:500],
        }
    )


async def echo_auth(request: Request) -> Response:
    """Echoes the credential back, as careless services do."""
    _record(request)
    return JSONResponse({"you_sent": request.headers.get("authorization"), "api_key": request.headers.get("x-api-key")})


async def echo_auth_fail(request: Request) -> Response:
    _record(request)
    return PlainTextResponse(f"invalid token: {request.headers.get('authorization')}", status_code=401)


async def slow(request: Request) -> Response:
    _record(request)
    await asyncio.sleep(3)
    return JSONResponse({"late": True})


async def created(request: Request) -> Response:
    _record(request)
    body = await request.json()
    return JSONResponse({"id": 99, "received": body}, status_code=201)


async def slack_style(request: Request) -> Response:
    _record(request)
    return JSONResponse({"ok": False, "error": "channel_not_found"})


async def graphql(request: Request) -> Response:
    _record(request)
    body = await request.json()
    if "boom" in body["query"]:
        return JSONResponse({"errors": [{"message": "field boom does not exist"}], "data": None})
    if "partial" in body["query"]:
        return JSONResponse({"data": {"repo": {"name": "x"}}, "errors": [{"message": "rate limit on nested field"}]})
    return JSONResponse(
        {
            "data": {
                "repository": {
                    "name": body["variables"].get("name"),
                    "issues": {"nodes": [{"title": "a"}], "pageInfo": {"hasNextPage": True}},
                }
            }
        }
    )


routes = [
    Route("/flaky429", flaky429),
    Route("/flaky500", flaky500),
    Route("/always500", always500),
    Route("/long-retry-after", long_retry_after),
    Route("/partial", partial206),
    Route("/pages/link", link_pages),
    Route("/pages/cursor", cursor_pages),
    Route("/pages/numbered", numbered_pages),
    Route("/k8s/pods", k8s_continue),
    Route("/echo-auth", echo_auth),
    Route("/echo-auth-fail", echo_auth_fail),
    Route("/slow", slow),
    Route("/created", created, methods=["POST"]),
    Route("/slack", slack_style, methods=["POST", "GET"]),
    Route("/graphql", graphql, methods=["POST"]),
]


class Served:
    """A uvicorn server in a background thread; `url` is its base URL."""

    def __init__(self, app: Any) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test HTTP server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(5)


def make_app() -> Starlette:
    """The misbehaving API."""
    return Starlette(routes=routes)
