"""`recall_detail(ref)`: bring back an output that compaction shortened, re-trimmed to fit."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from engine.context.builder import ACTIVE
from engine.context.trim import key_lines
from engine.tools import Tool, ToolOutput

RECALL_DESCRIPTION = (
    "Bring back in full an earlier tool output or message that is listed under 'No longer held in full' "
    "(pass its ref, e.g. 'e12'). Long outputs come back trimmed to their key lines so they fit."
)


def recall_tool(store_getter: Callable[[], Any] | None, builder: Any = None, *, max_tokens: int | None = None) -> Tool:
    """The recall_detail tool: looks the ref up in the store's blobs, else in the session's own events.

    `store_getter` returns the open Store (or None, or an awaitable of it). `builder` is the
    session's CompactingContext, whose last build knows the events (and so each call's
    output_ref); left out, the builder of the turn in progress is used (the loop runs tool calls
    in tasks that inherit it), so one tool serves every session.
    """

    async def handler(args: dict[str, Any]) -> ToolOutput:
        ref = str(args.get("ref") or "").strip()
        if not ref:
            return ToolOutput(
                text="recall_detail needs a ref such as 'e12' (see 'No longer held in full').", status="error"
            )
        store = store_getter() if store_getter else None
        if inspect.isawaitable(store):
            store = await store
        active = builder if builder is not None else ACTIVE.get()
        event = active.find(ref) if active is not None else None
        text: str | None = None
        source = ""
        blob_ref = getattr(event, "output_ref", None) if event is not None else None
        owner = _session_of(active, event)
        if store is not None and owner is not None:
            for candidate in [r for r in (blob_ref, ref) if r]:
                try:
                    # a ref names a blob of this session only: another session's outputs stay there
                    text = await store.get_blob(candidate, session_id=owner)
                except Exception:  # noqa: BLE001 - a store error falls back to the event's own text
                    text = None
                if text is not None:
                    source = "store"
                    break
        if text is None and event is not None:
            kind = getattr(event, "kind", "")
            if kind == "tool-call-finished":
                text, source = event.output or event.summary, "event"
            elif kind in ("user-message", "assistant-message"):
                text, source = event.text, "event"
        if text is None:
            return ToolOutput(
                text=f"Nothing is stored under {ref!r}; refs look like 'e12' and are listed under 'No longer held in full'.",
                status="error",
            )
        limit = max_tokens or _limit(active)
        count = active.counter.text if active is not None else (lambda s: (len(s) + 3) // 4)
        total = count(text)
        shown = key_lines(text, limit, count) if total > limit else text
        what = getattr(event, "tool", "") or getattr(event, "kind", "") or "output"
        head = f"[recalled {ref} ({what}) from the {source}"
        head += (
            f"; trimmed to key lines: {count(shown):,} of {total:,} tokens]"
            if shown != text
            else f"; {total:,} tokens]"
        )
        return ToolOutput(
            text=head + "\n" + shown,
            partial=None if shown == text else f"trimmed: {count(shown):,} of {total:,} tokens",
        )

    return Tool(
        name="recall_detail",
        description=RECALL_DESCRIPTION,
        parameters={
            "type": "object",
            "properties": {
                "ref": {"type": "string", "description": "The ref from the 'No longer held in full' list, e.g. e12"}
            },
            "required": ["ref"],
        },
        handler=handler,
        risk="read",
        keywords=["recall", "detail", "dropped", "earlier output", "full output"],
    )


def _session_of(builder: Any, event: Any) -> str | None:
    """The session whose outputs a recall may read: the turn's own."""
    for e in ([event] if event is not None else []) + list(getattr(builder, "events", None) or []):
        sid = getattr(e, "session_id", None)
        if isinstance(sid, str) and sid:
            return sid
    return None


def _limit(builder: Any) -> int:
    if builder is None:
        return 2000
    return max(200, int(builder.budget * builder.config.max_output_share))
