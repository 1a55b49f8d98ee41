"""core/v1 Events written the way the kubelet writes them."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sandbox.agent.api import items, log, parse_ts, ts


class EventRecorder:
    """Writes Events aggregated by object, field, reason and message: a repeat bumps the count."""

    def __init__(self, core: Any, api_exception: type[Exception]) -> None:
        self.core = core
        self.ApiException = api_exception
        self.written: dict[tuple, tuple[str, str, int, float]] = {}
        """(uid, fieldPath, reason, message) → (event name, namespace, count, first time)."""

    def event(
        self,
        obj: dict,
        reason: str,
        message: str,
        warning: bool = False,
        field_path: str | None = None,
        node: str | None = None,
    ) -> None:
        """Write or bump a core/v1 Event like the kubelet (aggregated by object, reason and message)."""
        md = obj["metadata"]
        kind = obj.get("kind") or "Pod"
        ns = md.get("namespace") or "default"
        key = (md["uid"], field_path, reason, message)
        now = time.time()
        try:
            if key in self.written:
                name, ens, count, _first = self.written[key]
                count += 1
                self.core.patch_namespaced_event(name, ens, {"count": count, "lastTimestamp": ts(now)})
                self.written[key] = (name, ens, count, _first)
                return
            name = f"{md['name']}.{uuid.uuid4().hex[:16]}"
            involved = {
                "kind": kind,
                "namespace": ns if kind != "Node" else "",
                "name": md["name"],
                "uid": md["uid"],
                "apiVersion": "v1",
                "resourceVersion": md.get("resourceVersion", ""),
            }
            if field_path:
                involved["fieldPath"] = field_path
            # A plain dict: the python client would turn eventTime into a form this server rejects.
            body = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": name, "namespace": ns},
                "involvedObject": involved,
                "reason": reason,
                "message": message,
                "type": "Warning" if warning else "Normal",
                "source": {"component": "kubelet", "host": node or ""},
                "firstTimestamp": ts(now),
                "lastTimestamp": ts(now),
                "count": 1,
                "reportingComponent": "kubelet",
                "reportingInstance": node or "",
            }
            self.core.create_namespaced_event(ns, body)
            self.written[key] = (name, ns, 1, now)
        except self.ApiException as exc:
            if exc.status == 404 and key in self.written:
                del self.written[key]  # expired or deleted with its namespace; next call recreates it
            elif exc.status not in (403, 404, 409):
                log.warning("event %s/%s failed: %s", reason, md.get("name"), exc.reason)

    def recall(self) -> None:
        """Pick up the Events an earlier agent wrote, so repeats bump their counts instead of duplicating them."""
        for e in items(self.core.list_event_for_all_namespaces(_preload_content=False)):
            if (e.get("source") or {}).get("component") != "kubelet":
                continue
            io = e.get("involvedObject") or {}
            key = (io.get("uid"), io.get("fieldPath"), e.get("reason"), e.get("message"))
            first = parse_ts(e.get("firstTimestamp")) or time.time()
            self.written[key] = (e["metadata"]["name"], e["metadata"]["namespace"], int(e.get("count") or 1), first)

    def forget(self, uid: str) -> None:
        """Drop what is remembered of an object's Events (it is gone)."""
        for k in [k for k in self.written if k[0] == uid]:
            del self.written[k]
