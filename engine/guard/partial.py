"""Partial results: say so in the event and in what the model reads ("partial: 500 of ≥ 2,140 items").

Executors set `ToolOutput.partial` when they know (HTTP 206, a page cap); this module also reads
the usual markers in structured data: Kubernetes list `metadata.continue` and
`remainingItemCount`, `has_more`/`hasMore`, `next`/`next_page`/`nextPageToken`/`cursor`,
`truncated`, a `status_code` of 206, and a list exactly as long as the `limit` argument.
"""

from __future__ import annotations

from typing import Any

_NEXT_KEYS = (
    "next",
    "next_page",
    "nextPage",
    "next_page_token",
    "nextPageToken",
    "next_cursor",
    "nextCursor",
    "continuation",
    "continuationToken",
    "cursor",
)
_MORE_KEYS = ("has_more", "hasMore", "more", "truncated", "is_truncated", "IsTruncated", "incomplete_results")
_ITEM_KEYS = ("items", "results", "data", "entries", "records", "values", "nodes", "hits")
_TOTAL_KEYS = ("total", "total_count", "totalCount", "count_total", "totalItems", "total_results")


def _items(data: Any) -> tuple[int | None, Any]:
    if isinstance(data, list):
        return len(data), data
    if isinstance(data, dict):
        for k in _ITEM_KEYS:
            v = data.get(k)
            if isinstance(v, list):
                return len(v), v
    return None, None


def _fmt(n: int | None, total: int | None, why: str) -> str:
    if n is not None and total is not None and total > n:
        return f"partial: {n:,} of ≥ {total:,} items"
    if n is not None:
        return f"partial: {n:,} items, more exist ({why})"
    return f"partial: more exist ({why})"


def detect_partial(
    data: Any, args: dict[str, Any] | None = None, declared: str | None = None, status_code: int | None = None
) -> str | None:
    """A one-line partial flag, or None when the result looks complete."""
    n, _ = _items(data)
    total: int | None = None
    why = ""
    if isinstance(data, dict):
        for k in _TOTAL_KEYS:
            v = data.get(k)
            if isinstance(v, int) and not isinstance(v, bool):
                total = v
                break
        meta = _as_dict(data.get("metadata"))
        remaining = meta.get("remainingItemCount")
        if isinstance(remaining, int) and n is not None:
            total = n + remaining
            why = "continue token"
        if meta.get("continue") and not why:
            why = "continue token"
        if not why:
            for k in _MORE_KEYS:
                if data.get(k) is True:
                    why = k
                    break
        if not why:
            for k in _NEXT_KEYS:
                v = data.get(k)
                if v and isinstance(v, (str, int, dict)):
                    why = f"{k} page"
                    break
        links = _as_dict(data.get("links"))
        if not why and links.get("next"):
            why = "next page"
        if not why and data.get("status_code") == 206:
            why = "HTTP 206"
    if status_code == 206 and not why:
        why = "HTTP 206"
    if not why and args and n is not None:
        for k in (
            "limit",
            "max_results",
            "maxResults",
            "page_size",
            "pageSize",
            "per_page",
            "tail",
            "tail_lines",
            "count",
        ):
            lim = args.get(k)
            if isinstance(lim, int) and not isinstance(lim, bool) and lim > 0 and n >= lim:
                why = f"{k} {lim} reached"
                total = None if total is None or total <= n else total
                break
    if total is not None and n is not None and total > n and not why:
        why = "total larger than returned"
    if declared:
        text = declared.strip()
        if text.lower().startswith("partial"):
            return text
        if why or n is not None:
            return _fmt(n, total, text)
        return f"partial: {text}"
    return _fmt(n, total, why) if why else None


def _as_dict(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}
