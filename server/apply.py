"""The inspector's Apply over the attach protocol: a person's own call, run by the server.

    face ──{"frame": "apply", "manifest", "namespace"}──▶ apply(hub, live, who, …)
        ─▶ the same checks as a message (busy, identity) ─▶ Session.run_call(kubernetes.apply_manifest)
        ─▶ guard, policy, the API server's dry-run diff, the approval (every face sees it), audit
        ─▶ its events stream to every face, as a turn of its own

Only this one tool can be asked for this way, and its arguments are the manifest and namespace:
a face never names a tool. A person's own call teaches retrieval nothing, so it is not scored.
"""

from __future__ import annotations

import logging
from typing import Any

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
    args = {"manifest": manifest, "namespace": namespace}
    return await hub.send(live, who, "apply the manifest from the inspector", call=(APPLY_TOOL, args))
