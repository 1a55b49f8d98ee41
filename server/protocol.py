"""The attach protocol: JSON text frames over one WebSocket per face and session.

Server → face, in order:
  {"frame": "hello", "protocol": PROTOCOL_VERSION, "session_id", "user", "roles", "history": N}
  the session's events so far, each its JSON line (`engine.events.to_json`, carries `kind` and `seq`)
  {"frame": "live", "seq": LAST, "running": bool}     history done; what follows is live
  then live events, and control frames interleaved:
  {"frame": "approvers", "request_id", "approvers": [NAME…] | null, "can_answer": bool, "why"?}
                                                      right after each open approval-requested event
                                                      (history or live): who may answer it, and whether
                                                      this face may (false: show it pending, no Approve)
  {"frame": "accepted", "turn": N, "id"}              your message started turn N
  {"frame": "refused", "request_id", "reason"}        your approval answer did not count
  {"frame": "cancelling" | "idle" | "pong", "id"}
  {"frame": "error", "code", "message", "id"}        e.g. busy (a turn runs, here or on another
                                                      server), no-request (an answer to no open request:
                                                      refused and audited)
Face → server:
  {"frame": "message", "text", "id"?}
  {"frame": "cancel"}
  {"frame": "approval", "request_id", "call_hash", "approved": bool, "reason"?}
  {"frame": "apply", "manifest", "namespace"?, "id"?}  the inspector's Apply (server/apply.py)
  {"frame": "fix", "seq", "id"?}  run the fix an answer offered (the FixOffered event `seq`; the latest one only)
  {"frame": "ping"}
An event frame has no `frame` key; a face ignores kinds it does not know (UnknownEvent). The
identity of an answer is the connection's token, never a field of the frame.
"""

from __future__ import annotations

import json
from typing import Any

from engine import events as ev
from server.hub import HubError
from server.identity import Identity

CLIENT_FRAMES = frozenset({"message", "cancel", "approval", "apply", "fix", "ping"})
"""What a face may send."""


def hello(session_id: str, who: Identity, history: int) -> dict[str, Any]:
    """The first frame of an attachment."""
    return {
        "frame": "hello",
        "protocol": ev.PROTOCOL_VERSION,
        "session_id": session_id,
        "user": who.name,
        "roles": list(who.roles),
        "history": history,
    }


def parse_client(raw: str) -> dict[str, Any]:
    """A face's frame, checked for shape (not for meaning)."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise HubError("bad-frame", "a frame is one JSON object") from None
    if not isinstance(data, dict) or data.get("frame") not in CLIENT_FRAMES:
        raise HubError("bad-frame", f"unknown frame; one of {', '.join(sorted(CLIENT_FRAMES))}")
    return data
