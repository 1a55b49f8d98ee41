"""The rest and graphql executors against a real HTTP service on 127.0.0.1."""

from __future__ import annotations

import time

import pytest
import skills_http_app as http_app
from conftest import write_pack

from skills.executors import run
from skills.loader import load_packs


def _pack(tmp_path, base_url, actions: str, conn: str = "", name: str = "api"):
    write_pack(
        tmp_path,
        name,
        f"""
        name: {name}
        description: Test API.
        connection:
          executor: rest
          base_url: {base_url}
          retries: 3
          timeout: 1.5
{conn}
        actions:
{actions}
    """,
    )
    result = load_packs([tmp_path])
    assert result.errors == [], [str(e) for e in result.errors]
    return result.pack(name)


def _action(tmp_path, api, path, extra: str = "", method: str = "GET", risk: str = "read", conn: str = ""):
    actions = f"""          - name: call
            description: Call the test endpoint.
            risk: {risk}
            http: {{method: {method}, path: {path}}}
{extra}"""
    return _pack(tmp_path, api.url, actions, conn).by_name["call"]


async def test_429_is_retried_after_the_retry_after_delay(tmp_path, api):
    action = _action(tmp_path, api, "/flaky429")
    t0 = time.monotonic()
    out = await run(action, {})
    assert out.status == "ok" and out.data == {"ok": True, "attempt": 2}
    assert http_app.hits["/flaky429"] == 2
    assert time.monotonic() - t0 >= 0.95  # honoured Retry-After: 1


async def test_500_then_success_is_retried_with_backoff(tmp_path, api):
    out = await run(_action(tmp_path, api, "/flaky500"), {})
    assert out.status == "ok" and out.data["attempt"] == 2


async def test_persistent_5xx_gives_up_after_bounded_retries(tmp_path, api):
    out = await run(_action(tmp_path, api, "/always500"), {})
    assert out.status == "error"
    assert "HTTP 503" in out.text and "still broken" in out.text
    assert http_app.hits["/always500"] == 4  # one try + 3 retries


@pytest.mark.parametrize(
    ("path", "status", "kind"),
    [
        ("/always500", 503, "unavailable"),
        ("/long-retry-after", 429, "rate-limited"),
        ("/no-such-endpoint", 404, "client"),
    ],
)
async def test_an_http_error_carries_its_status_so_the_dispatcher_classifies_it(tmp_path, api, path, status, kind):
    """Without the status a 4xx read as "failed: internal" and a 5xx never counted toward the breaker."""
    from engine.dispatch import _status_code
    from engine.guard.breakers import classify

    out = await run(_action(tmp_path, api, path), {})
    assert out.status == "error" and out.data == {"status_code": status}
    failure = classify(None, status=_status_code(out.data), text=out.text)
    assert failure.kind == kind and failure.transient == (status >= 429)


async def test_retry_after_beyond_the_cap_fails_fast_with_the_reason(tmp_path, api):
    t0 = time.monotonic()
    out = await run(_action(tmp_path, api, "/long-retry-after"), {})
    assert out.status == "error" and "429" in out.text and "Retry-After: 3600" in out.text
    assert http_app.hits["/long-retry-after"] == 1 and time.monotonic() - t0 < 3


async def test_206_is_reported_partial_never_complete(tmp_path, api):
    out = await run(_action(tmp_path, api, "/partial"), {})
    assert out.status == "partial" and out.partial and "206" in out.partial
    assert out.text.startswith("partial:")


async def test_continue_token_is_reported_partial(tmp_path, api):
    out = await run(_action(tmp_path, api, "/k8s/pods", extra='            output: ["items[].name"]\n'), {})
    assert out.status == "partial" and "continue" in out.partial and "1640" in out.partial
    assert out.data["items"][0] == {"name": "item-1"}  # projection kept only the name


async def test_link_header_pagination_collects_every_page(tmp_path, api):
    out = await run(_action(tmp_path, api, "/pages/link", extra="            pagination: {style: link}\n"), {})
    assert out.status == "ok" and out.partial is None
    assert [i["id"] for i in out.data] == list(range(1, 13))
    assert http_app.hits["/pages/link"] == 3


async def test_cursor_pagination_follows_next_cursor(tmp_path, api):
    extra = "            pagination: {style: cursor, cursor_param: cursor, cursor_path: next_cursor}\n            http: {path: /pages/cursor, items: data}\n"
    actions = """          - name: call
            description: Call the cursor endpoint.
            http: {path: /pages/cursor, items: data}
            pagination: {style: cursor, cursor_param: cursor, cursor_path: next_cursor}
"""
    del extra
    action = _pack(tmp_path, api.url, actions).by_name["call"]
    out = await run(action, {})
    assert out.status == "ok"
    assert [i["id"] for i in out.data["data"]] == list(range(1, 13))


async def test_page_cap_reports_how_much_is_missing(tmp_path, api):
    actions = """          - name: call
            description: Call the numbered endpoint.
            http: {path: /pages/numbered, query: {page: 1, page_size: 100}, items: items}
            pagination: {style: page, page_param: page, page_size_param: page_size, page_size: 100, total_path: filtered_count, max_pages: 5}
            output: ["items[].id"]
"""
    out = await run(_pack(tmp_path, api.url, actions).by_name["call"], {})
    assert out.status == "partial"
    assert out.partial.startswith("partial: 500 of ≥ 2,140 items")
    assert len(out.data["items"]) == 500 and out.data["items"][-1] == {"id": 500}
    assert http_app.hits["/pages/numbered"] == 5


async def test_timeout_is_an_error_naming_the_limit(tmp_path, api):
    conn = "          retries: 0\n"
    out = await run(_action(tmp_path, api, "/slow", conn=""), {})
    del conn
    assert out.status == "error" and "timed out after 1.5s" in out.text


async def test_query_and_body_templates_leave_out_missing_values(tmp_path, api):
    actions = """          - name: call
            description: Post a thing to the API.
            risk: write
            http:
              method: POST
              path: /created
              body: {title: "{title}", count: "{count}", note: "{note}", fixed: yes}
            parameters:
              properties:
                title: {type: string}
                count: {type: integer}
                note: {type: string}
              required: [title]
"""
    out = await run(_pack(tmp_path, api.url, actions).by_name["call"], {"title": "t 1", "count": 3})
    assert out.status == "ok"
    assert out.data["received"] == {"title": "t 1", "count": 3, "fixed": True}


async def test_path_parameters_cannot_escape_their_segment(tmp_path, api):
    actions = """          - name: call
            description: Get one thing by name.
            http: {path: "/things/{name}"}
            parameters:
              properties:
                name: {type: string}
              required: [name]
"""
    await run(_pack(tmp_path, api.url, actions).by_name["call"], {"name": "../echo-auth"})
    assert http_app.hits["/echo-auth"] == 0
    assert http_app.hits == {} or all(k.startswith("/things/") for k in http_app.hits)


@pytest.mark.parametrize(
    "value, refused", [("..", False), (".", False), ("...", False), ("a/b", True), ("a\\b", True), ("", True)]
)
async def test_dot_segments_and_slashes_never_reach_another_endpoint(tmp_path, api, value, refused):
    actions = """          - name: drop
            description: Delete one thing by id.
            risk: dangerous
            http: {method: DELETE, path: "/things/{id}"}
            parameters:
              properties:
                id: {type: string}
              required: [id]
"""
    out = await run(_pack(tmp_path, api.url, actions).by_name["drop"], {"id": value})
    assert "/" not in http_app.hits and "/things" not in http_app.hits and "/things/" not in http_app.hits
    if refused:
        assert out.status == "error" and "refused" in out.text and not http_app.hits
        assert out.data == {"failure": "client"}
    else:
        assert f"DELETE /things/{value} →" in out.text  # sent as one segment (%2E), never folded into another path


async def test_ok_false_answers_are_errors(tmp_path, api):
    out = await run(_action(tmp_path, api, "/slack", method="POST", risk="write"), {})
    assert out.status == "error" and "channel_not_found" in out.text


async def test_graphql_variables_errors_and_page_info(tmp_path, api):
    write_pack(
        tmp_path,
        "gql",
        f"""
        name: gql
        description: GraphQL test API.
        connection: {{executor: graphql, base_url: "{api.url}/graphql"}}
        actions:
          - name: repo
            description: Look up a repository by name.
            graphql: {{query: "query($name: String!) {{ repository(name: $name) {{ name }} }}", data_path: repository}}
            parameters: {{properties: {{name: {{type: string}}}}, required: [name]}}
          - name: broken
            description: A query with an unknown field.
            graphql: {{query: "query {{ boom }}"}}
          - name: half
            description: A query that partially fails.
            graphql: {{query: "query {{ partial }}"}}
          - name: change
            description: A mutation declared read on purpose.
            risk: write
            graphql: {{query: "mutation {{ x }}"}}
    """,
    )
    pack = load_packs([tmp_path]).pack("gql")
    out = await run(pack.by_name["repo"], {"name": "lantern"})
    assert out.data["name"] == "lantern" and out.status == "partial" and "hasNextPage" in out.partial
    bad = await run(pack.by_name["broken"], {})
    assert bad.status == "error" and "field boom does not exist" in bad.text
    half = await run(pack.by_name["half"], {})
    assert half.status == "partial" and "rate limit" in half.partial


def test_graphql_mutation_declared_read_is_rejected(tmp_path):
    write_pack(
        tmp_path,
        "gql",
        """
        name: gql
        description: GraphQL test API.
        connection: {executor: graphql, base_url: "http://127.0.0.1:1/graphql"}
        actions:
          - name: change
            description: A mutation declared read on purpose.
            graphql: {query: "mutation { deleteEverything }"}
    """,
    )
    (err,) = load_packs([tmp_path]).errors
    assert err.field == "actions[0].risk" and "mutation" in err.message
