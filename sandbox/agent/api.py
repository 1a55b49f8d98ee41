"""What the agent's parts share: the view of the cluster the last tick read, the API server's
time formats and its raw list responses."""

from __future__ import annotations

import datetime as dt
import json
import logging
import threading
from typing import Any

from sandbox.scenario import Scenario, World

log = logging.getLogger("lantern.sandbox.agent")


class View:
    """What the last tick read of the cluster, and the scenario it follows; every part reads it."""

    def __init__(self, time_scale: float) -> None:
        self.time_scale = time_scale
        """Scenario seconds per real second (tests run the sandbox faster)."""
        self.lock = threading.RLock()
        """Guards what the HTTP threads read while a tick writes it."""
        self.stop = threading.Event()
        """Set to end the process (SIGTERM, SIGINT)."""
        self.scenario: Scenario | None = None
        """The active scenario's rules, or None."""
        self.world = World([], [], [])
        """Services, Secrets and ConfigMaps as last listed."""
        self.deployments: list[dict] = []
        """Deployments as last listed (raw JSON)."""

    def ready_replicas(self, ns: str, name: str) -> tuple[int, int]:
        """(ready, desired) replicas of a Deployment; (0, 0) when it is not there."""
        for d in self.deployments:
            if d["metadata"]["namespace"] == ns and d["metadata"]["name"] == name:
                return int((d.get("status") or {}).get("readyReplicas") or 0), int(
                    (d.get("spec") or {}).get("replicas") or 0
                )
        return 0, 0


def ts(t: float) -> str:
    """Epoch seconds as the API server's second-precision timestamp."""
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ts_nano(t: float) -> str:
    """Epoch seconds as the kubelet's nanosecond log timestamp."""
    d = dt.datetime.fromtimestamp(t, dt.UTC)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{d.microsecond:06d}000Z"


def parse_ts(s: str | None) -> float | None:
    """An API timestamp as epoch seconds."""
    if not s:
        return None
    try:
        return dt.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def items(resp: Any) -> list[dict]:
    """The items of a raw list response."""
    try:
        return json.loads(resp.data).get("items") or []
    finally:
        resp.release_conn()
