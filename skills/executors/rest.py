"""The rest and graphql executors (httpx): auth from the credential, timeouts, bounded retries, pages, partials."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from engine.tools import ToolOutput
from skills.executors.common import CredentialResolver, dig, error, fill, finish
from skills.spec import Action, Connection

RETRY_STATUS = {429, 500, 502, 503, 504}
"""Statuses worth another try."""
BACKOFF_BASE = 0.25
"""First backoff in seconds; doubles each retry (plus jitter), capped by BACKOFF_CAP."""
BACKOFF_CAP = 8.0
"""Longest backoff between retries without a Retry-After."""


def _auth_headers(
    conn: Connection, resolver: CredentialResolver, secrets: dict[str, str]
) -> tuple[dict[str, str], httpx.Auth | None]:
    from skills.credentials import CredentialMissing

    headers = dict(conn.headers)
    auth: httpx.Auth | None = None
    if conn.credential and conn.auth != "none":
        try:
            value = resolver(conn.credential)
        except CredentialMissing:
            if not conn.credential_optional:
                raise
            value = None
        if value is not None:
            secrets[conn.credential] = value
            if conn.auth == "bearer":
                headers["Authorization"] = f"Bearer {value}"
            elif conn.auth == "token":
                headers["Authorization"] = f"token {value}"
            elif conn.auth == "header":
                headers[conn.auth_header] = value
            elif conn.auth == "basic":
                user, _, password = value.partition(":")
                auth = httpx.BasicAuth(user, password)
                # the encoded form could be echoed back too
                secrets[conn.credential + " (basic)"] = base64.b64encode(value.encode()).decode()
    for header, cred in conn.credential_headers.items():
        value = resolver(cred)
        secrets[cred] = value
        headers[header] = value
    return headers, auth


def _retry_after(resp: httpx.Response) -> float | None:
    raw = resp.headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def request(client: httpx.AsyncClient, method: str, url: str, *, conn: Connection, **kw: Any) -> httpx.Response:
    """One request with bounded retries on 429/5xx and connection errors, honouring Retry-After."""
    attempt = 0
    while True:
        try:
            resp = await client.request(method, url, **kw)
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectTimeout) as exc:
            if attempt >= conn.retries:
                raise
            wait = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * (1 + random.random() / 4)
            attempt += 1
            await asyncio.sleep(wait)
            del exc
            continue
        if resp.status_code not in RETRY_STATUS or attempt >= conn.retries:
            return resp
        # a non-idempotent write is only retried when the server says it was not processed (429/503)
        if method in ("POST", "PATCH") and resp.status_code not in (429, 503):
            return resp
        wait = _retry_after(resp)
        if wait is None:
            wait = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * (1 + random.random() / 4)
        elif wait > conn.max_retry_after:
            return resp
        attempt += 1
        await asyncio.sleep(wait)


def _describe(resp: httpx.Response) -> str:
    body = resp.text.strip().replace("\n", " ")
    if len(body) > 400:
        body = body[:400] + "…"
    reason = resp.reason_phrase or ""
    extra = ""
    if resp.status_code == 429:
        ra = resp.headers.get("Retry-After")
        extra = (
            f" (still rate limited after retries; Retry-After: {ra})" if ra else " (still rate limited after retries)"
        )
    elif resp.status_code in (401, 403):
        extra = " (check the credential's permissions)"
    return f"{resp.request.method} {resp.request.url.path} → HTTP {resp.status_code} {reason}{extra}: {body}"


def _marker(payload: Any) -> str | None:
    """A truncation marker in the answer body, if any."""
    if not isinstance(payload, dict):
        return None
    if payload.get("truncated") is True:
        return "the server marked the answer truncated"
    if payload.get("has_more") is True:
        return "the server says more results exist (has_more)"
    if payload.get("incomplete_results") is True:
        return "the server marked the results incomplete"
    meta = payload.get("metadata")
    if isinstance(meta, dict) and meta.get("continue"):
        remaining = meta.get("remainingItemCount")
        return (
            f"a continue token is set ({remaining} more items)"
            if remaining
            else "a continue token is set (more items exist)"
        )
    return None


def _items(payload: Any, path: str | None) -> list[Any] | None:
    found = dig(payload, path) if path else payload
    return found if isinstance(found, list) else None


def _count(n: int) -> str:
    return f"{n:,}"


async def run_rest(
    action: Action, args: dict[str, Any], *, credential_resolver: CredentialResolver, **_: Any
) -> ToolOutput:
    """Run a rest action: fill the request, call with retries, follow pages, report partial answers."""
    conn = action.pack.connection
    http = action.http
    assert http is not None
    secrets: dict[str, str] = {}
    headers, auth = _auth_headers(conn, credential_resolver, secrets)
    headers.update(http.headers)
    try:
        path = _fill_path(http.path, args, {k for k, p in action.parameters.properties.items() if p.slashes})
    except ValueError as exc:
        return error(f"{http.method} {http.path}: refused: {exc}", secrets, failure="client")
    query = fill(http.query, args)
    body = fill(http.body, args) if http.body is not None else None
    pag = action.pagination
    if pag.style != "none" and pag.page_size_param:
        query.setdefault(pag.page_size_param, pag.page_size)
    timeout = action.timeout or conn.timeout
    try:
        async with httpx.AsyncClient(
            base_url=conn.base_url or "",
            headers=headers,
            auth=auth,
            timeout=timeout,
            verify=conn.verify_tls,
            follow_redirects=True,
        ) as client:
            got = await _fetch_pages(client, action, _Request(path, query, body), secrets)
    except httpx.TimeoutException:
        return error(
            f"{http.method} {path}: timed out after {timeout:g}s ({conn.base_url})", secrets, failure="timeout"
        )
    except httpx.TransportError as exc:
        return error(
            f"{http.method} {path}: could not reach the backend: {type(exc).__name__}: {exc} ({conn.base_url})",
            secrets,
            failure="unavailable",
        )
    except httpx.HTTPError as exc:
        return error(f"{http.method} {path}: {type(exc).__name__}: {exc} ({conn.base_url})", secrets)
    if isinstance(got, ToolOutput):
        return got
    return finish(action, _shaped(action, got), partial=got.partial, secrets=secrets)


@dataclass
class _Request:
    """The filled request of the first page; later pages follow the links or cursors it leads to."""

    path: str
    query: dict[str, Any]
    body: Any


@dataclass
class _Pages:
    """What the page loop gathered: the last page's payload, the items of every page, and why the
    answer is incomplete (None when it is whole)."""

    payload: Any = None
    collected: list[Any] = field(default_factory=list)
    partial: str | None = None


async def _fetch_pages(
    client: httpx.AsyncClient, action: Action, req: _Request, secrets: dict[str, str]
) -> _Pages | ToolOutput:
    """Call, then follow the pages until they end, a page has no list of items, or a cap is reached;
    an error answer ends the call with an error output."""
    conn, http, pag = action.pack.connection, action.http, action.pagination
    assert http is not None
    got = _Pages()
    total: int | None = None
    pages = 0
    url: str = req.path
    params: dict[str, Any] | None = dict(req.query)
    while True:
        json_body = req.body if http.method not in ("GET", "HEAD") else None
        resp = await request(client, http.method, url, conn=conn, params=params, json=json_body)
        pages += 1
        if resp.status_code >= 400:
            return _http_error(resp, conn, secrets)
        payload = _json_or_text(resp)
        # Slack-style APIs answer 200 with {"ok": false, "error": ...}
        if isinstance(payload, dict) and payload.get("ok") is False:
            reason = payload.get("error") or payload.get("message") or "no reason given"
            return error(f"{http.method} {req.path}: the API answered ok=false: {reason}", secrets)
        if resp.status_code == 206:
            got.partial = "partial: the server answered 206 Partial Content"
        # some servers (older RabbitMQ, simple fakes) ignore paging and answer the bare list
        if http.items and "." not in http.items and isinstance(payload, list):
            payload = {http.items: payload}
        got.payload = payload
        if pag.total_path and total is None:
            total = _total(payload, pag.total_path)
        items = _items(payload, http.items)
        if pag.style == "none" or items is None:
            got.partial = got.partial or (f"partial: {_marker(payload)}" if _marker(payload) else None)
            return got
        got.collected.extend(items)
        nxt = _next_page(resp, payload, pag, req.query, pages, len(items))
        if nxt is None:
            return got
        if pages >= pag.max_pages or len(got.collected) >= pag.max_items:
            got.collected = got.collected[: pag.max_items]
            got.partial = _capped(len(got.collected), total, pages)
            return got
        url, params = nxt


def _http_error(resp: httpx.Response, conn: Connection, secrets: dict[str, str]) -> ToolOutput:
    """An error answer as an error output; a refusal for want of an unset credential says how to set it."""
    hint = ""
    if resp.status_code in (401, 403) and conn.credential and conn.credential not in secrets:
        from skills.credentials import env_var

        hint = f" [credential {conn.credential!r} is not set: run `lantern creds set {conn.credential}` or export {env_var(conn.credential)}]"
    return error(_describe(resp) + hint, secrets, status_code=resp.status_code)


def _total(payload: Any, total_path: str) -> int | None:
    """The item count the server reports for the whole answer, when it reports a whole number."""
    t = dig(payload, total_path)
    return int(t) if isinstance(t, (int, float, str)) and str(t).isdigit() else None


def _capped(collected: int, total: int | None, pages: int) -> str:
    """The partial note of an answer cut at the pack's page or item cap."""
    known = total if total is not None else collected + 1
    return f"partial: {_count(collected)} of ≥ {_count(known)} items (stopped after {pages} page{'s' if pages > 1 else ''}; narrow the query for the rest)"


def _shaped(action: Action, got: _Pages) -> Any:
    """The answer's data: a paged answer's items of every page, put back where the last page held its own."""
    http = action.http
    assert http is not None
    if action.pagination.style == "none" or _items(got.payload, http.items) is None:
        return got.payload
    if not http.items:
        return got.collected
    data = dict(got.payload) if isinstance(got.payload, dict) else {}
    _set(data, http.items, got.collected)
    return data


async def preview_rest(action: Action, args: dict[str, Any], **_: Any) -> Any:
    """A REST backend has no dry run: the preview is the exact request that will be sent (headers,
    which carry the credential, left out). Raises PreviewFailed when the request cannot be built."""
    import json as _json
    from urllib.parse import urlencode

    from engine.tools import Preview, PreviewFailed

    http = action.http
    assert http is not None
    try:
        path = _fill_path(http.path, args, {k for k, p in action.parameters.properties.items() if p.slashes})
    except ValueError as exc:
        raise PreviewFailed(f"{http.method} {http.path}: refused: {exc}") from None
    query = fill(http.query, args)
    body = fill(http.body, args) if http.body is not None else None
    line = f"{http.method} {(action.pack.connection.base_url or '').rstrip('/')}{path}" + (
        f"?{urlencode(query, doseq=True)}" if query else ""
    )
    text = line + ("\n" + _json.dumps(body, indent=2, ensure_ascii=False, default=str) if body is not None else "")
    return Preview(objects=[line], note="no dry run for this backend; the exact request:\n" + text)


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    cur = data
    for p in parts[:-1]:
        nxt = cur.get(p)
        nxt = dict(nxt) if isinstance(nxt, dict) else {}
        cur[p] = nxt
        cur = nxt
    cur[parts[-1]] = value


def _fill_path(template: str, args: dict[str, Any], slashes: frozenset[str] | set[str] = frozenset()) -> str:
    import re

    def sub(m: re.Match[str]) -> str:
        v = args.get(m.group(1))
        if v is None:
            raise ValueError(f"missing value for path parameter {m.group(1)!r}")
        return path_segment(m.group(1), str(v), m.group(1) in slashes)

    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, template)


def path_segment(param: str, value: str, slashes: bool = False) -> str:
    """One path segment that URL normalisation cannot fold into another endpoint: '/' and '\\'
    are refused (unless the parameter declares `slashes`: then '/' is sent as %2F), an empty value
    too, and a dots-only value ('.', '..') is percent-encoded."""
    if not value:
        raise ValueError(f"path parameter {param!r} is empty")
    if "\\" in value or ("/" in value and not slashes):
        raise ValueError(f"path parameter {param!r} must be one path segment, not {value!r}")
    if set(value) == {"."}:
        return "%2E" * len(value)
    return quote(value, safe="")


def _json_or_text(resp: httpx.Response) -> Any:
    if not resp.content:
        return None
    ctype = resp.headers.get("content-type", "")
    if "json" in ctype or resp.content[:1] in (b"{", b"["):
        try:
            return resp.json()
        except ValueError:
            return resp.text
    return resp.text


def _next_page(
    resp: httpx.Response, payload: Any, pag: Any, query: dict[str, Any], pages: int, got: int
) -> tuple[str, dict[str, Any] | None] | None:
    if pag.style == "link":
        nxt = resp.links.get("next", {}).get("url")
        return (nxt, None) if nxt else None
    if pag.style == "cursor":
        cur = dig(payload, pag.cursor_path)
        if not cur:
            return None
        return str(resp.request.url.copy_with(query=None)), {**query, pag.cursor_param: cur}
    if pag.style == "page":
        if got == 0 or (pag.page_size_param and got < pag.page_size):
            return None
        start = int(query.get(pag.page_param, 1) or 1)
        return str(resp.request.url.copy_with(query=None)), {**query, pag.page_param: start + pages}
    return None


async def run_graphql(
    action: Action, args: dict[str, Any], *, credential_resolver: CredentialResolver, **_: Any
) -> ToolOutput:
    """Run a graphql action: POST the query with the arguments as variables."""
    conn = action.pack.connection
    gql = action.graphql
    assert gql is not None
    secrets: dict[str, str] = {}
    headers, auth = _auth_headers(conn, credential_resolver, secrets)
    timeout = action.timeout or conn.timeout
    variables = {k: v for k, v in args.items() if v is not None}
    try:
        async with httpx.AsyncClient(headers=headers, auth=auth, timeout=timeout, verify=conn.verify_tls) as client:
            # the endpoint is the base URL itself (a relative "" would add a trailing slash)
            resp = await request(
                client, "POST", conn.base_url or "", conn=conn, json={"query": gql.query, "variables": variables}
            )
    except httpx.TimeoutException:
        return error(f"graphql query timed out after {timeout:g}s ({conn.base_url})", secrets)
    except httpx.HTTPError as exc:
        return error(f"graphql: {type(exc).__name__}: {exc} ({conn.base_url})", secrets)
    if resp.status_code >= 400:
        return error(_describe(resp), secrets, status_code=resp.status_code)
    payload = _json_or_text(resp)
    if not isinstance(payload, dict):
        return error(f"graphql: the answer is not JSON: {str(payload)[:200]}", secrets)
    errors = payload.get("errors") or []
    data = dig(payload.get("data"), gql.data_path)
    msgs = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
    if errors and data is None:
        return error(f"graphql errors: {msgs}", secrets)
    partial = f"partial: the server returned data with errors: {msgs}" if errors else None
    if partial is None:
        # connection-style page info: more pages exist
        info = _find_page_info(data)
        if info:
            partial = "partial: more results exist (pageInfo.hasNextPage)"
    if resp.status_code == 206:
        partial = partial or "partial: the server answered 206 Partial Content"
    return finish(action, data, partial=partial, secrets=secrets)


def _find_page_info(data: Any, depth: int = 0) -> bool:
    if depth > 4 or not isinstance(data, dict):
        return False
    pi = data.get("pageInfo")
    if isinstance(pi, dict) and pi.get("hasNextPage") is True:
        return True
    return any(_find_page_info(v, depth + 1) for v in data.values() if isinstance(v, dict))
