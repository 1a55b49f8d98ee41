"""The inspector's Apply over the attach protocol: a person's own call, run by the server.

    face ──{"frame": "apply", "manifest", "namespace"}──▶ apply(hub, live, who, …)
        ─▶ the same checks as a message (busy, identity) ─▶ Session.run_call(kubernetes.apply_manifest)
        ─▶ guard, policy, the API server's dry-run diff, the approval (every face sees it), audit
        ─▶ its events stream to every face, as a turn of its own

Only this one tool can be asked for this way, and its arguments are the manifest and namespace:
a face never names a tool. A person's own call teaches retrieval nothing, so it is not scored.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from engine import events as ev
from server.hub import Hub, HubError, LiveSession
from server.identity import Identity

log = logging.getLogger("lantern.server")

APPLY_TOOL = "kubernetes.apply_manifest"
"""The one call a face may ask for by itself."""
MAX_MANIFEST = 1_000_000
"""Characters of one manifest."""


async def apply(hub: Hub, live: LiveSession, who: Identity, frame: dict[str, Any]) -> int:
    """Start `who`'s Apply of the frame's manifest as a turn; returns its number once its first event is stored."""
    manifest = str(frame.get("manifest") or "")
    namespace = str(frame.get("namespace") or "default")
    if not manifest.strip():
        raise HubError("empty", "the manifest is empty")
    if len(manifest) > MAX_MANIFEST:
        raise HubError("too-long", f"the manifest is {len(manifest):,} characters; at most {MAX_MANIFEST:,}")
    if live.session.toolbox.tool(APPLY_TOOL) is None:
        raise HubError("no-tool", f"this server's sessions have no {APPLY_TOOL} (the kubernetes pack is not loaded)")
    if live.running or live.session.running:
        raise HubError(
            "busy", f"a turn is already running in this session (asked by {live.asked_by}); wait for it or cancel it"
        )
    await hub.as_identity(live, who)
    first: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    live.asked_by = who.name
    stream = live.session.run_call(
        "apply the manifest from the inspector", APPLY_TOOL, {"manifest": manifest, "namespace": namespace}
    )
    live.task = asyncio.create_task(_run(live, stream, first), name=f"apply:{live.id}")
    return await first


async def _run(live: LiveSession, stream: Any, first: asyncio.Future[int]) -> None:
    try:
        async for e in stream:
            if not first.done():
                first.set_result(e.turn)
    except Exception as exc:
        log.exception("apply failed in session %s", live.id)
        if not first.done():
            first.set_exception(HubError("turn-failed", f"the apply failed: {type(exc).__name__}: {exc}"))
        else:
            await live.session.emit(
                ev.ErrorEvent, code="server", message=f"the apply failed on the server: {type(exc).__name__}: {exc}"
            )
    finally:
        live.approver.close_all()
