"""From a suggested read (an intent) to a concrete call of a tool this session has.

A pack that prints kubectl-style output is listed here with how each intent is asked of it;
the first pack whose tool is loaded answers. An intent no loaded tool serves is skipped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.diagnose.findings import Read

Builder = Callable[[dict[str, Any]], dict[str, Any]]

ROUTES: dict[str, list[tuple[str, Builder]]] = {
    "describe_pod": [
        ("cloudops.DescribeResource", lambda a: {"resource_type": "pods", "name": a["name"], "namespace": a["namespace"]}),
        ("kubernetes.describe_pod", lambda a: {"name": a["name"], "namespace": a["namespace"]}),
    ],
    "node_service": [
        ("cloudops.CheckNodeServiceStatus", lambda a: {"node_name": a["node"], "service_name": a["agent"]}),
    ],
    "logs": [
        ("cloudops.GetRecentLogs", lambda a: {"service_name": a["service"], "namespace": a["namespace"]}),
        # A crash-looping pod's error is in the terminated container's log, not the new one's.
        ("kubernetes.get_pod_logs", lambda a: {"name": a["pod"], "namespace": a["namespace"], "previous": True, "tail_lines": 60}),
    ],
    "manifest": [
        ("cloudops.GetAppYAML", lambda a: {"app_name": a["app"]}),
        ("kubernetes.get_resource_yaml", lambda a: {"kind": "deployment", "name": a["app"]}),
    ],
    "endpoints": [
        ("cloudops.GetResources", lambda a: {"resource_type": "endpoints", "namespace": a["namespace"]}),
    ],
    "quota": [
        ("cloudops.GetResources", lambda a: {"resource_type": "resourcequota", "namespace": a["namespace"]}),
    ],
    "services": [
        ("cloudops.GetResources", lambda a: {"resource_type": "services", "namespace": a["namespace"]}),
    ],
}


def resolve(read: Read, available: set[str]) -> dict[str, Any] | None:
    """`{"name": tool, "arguments": {...}}` for the first loaded tool that serves the intent."""
    for tool, build in ROUTES.get(read.intent, []):
        if tool in available:
            return {"name": tool, "arguments": build(read.arguments())}
    return None
