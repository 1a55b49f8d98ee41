"""The sandbox's Nodes: registered at start, kept Ready by status heartbeats and leases."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
import uuid
from typing import Any

from sandbox.agent.api import ts

HEARTBEAT = 20.0
"""Seconds between node status posts."""


class Nodes:
    """The Nodes this agent stands behind, as the kubelet keeps them: status, taints, leases."""

    def __init__(
        self, core: Any, api: Any, api_exception: type[Exception], count: int, ports: dict, started_at: Any
    ) -> None:
        self.core = core
        self.api = api
        self.ApiException = api_exception
        self.names = [f"sandbox-node-{i}" for i in range(1, count + 1)]
        """sandbox-node-1 .. N."""
        self.uids: dict[str, str] = {}
        """Node name → its uid (events about a node name it)."""
        self.ports = ports
        self.started_at = started_at
        """When the sandbox started (state.json), the nodes' transition time; now when unknown."""
        self.last_heartbeat = 0.0

    def register(self) -> None:
        """Create the Nodes if missing, post Ready status and clear the admission's not-ready taint."""
        for old in self.core.list_node(label_selector="lantern.dev/sandbox=true").items:
            if old.metadata.name not in self.names:
                # Fewer nodes than last time: drop the extras (the pod GC then removes their pods).
                self.core.delete_node(old.metadata.name)
        for i, name in enumerate(self.names, start=1):
            try:
                node = self.core.read_node(name)
            except self.ApiException as exc:
                if exc.status != 404:
                    raise
                node = self.core.create_node(
                    {
                        "apiVersion": "v1",
                        "kind": "Node",
                        "metadata": {
                            "name": name,
                            "labels": {
                                "kubernetes.io/hostname": name,
                                "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64",
                                "beta.kubernetes.io/os": "linux",
                                "beta.kubernetes.io/arch": "amd64",
                                "topology.kubernetes.io/zone": f"sandbox-{'abc'[i - 1]}",
                                "node.kubernetes.io/instance-type": "sandbox.large",
                                "lantern.dev/sandbox": "true",
                            },
                        },
                        "spec": {"podCIDR": f"10.244.{i}.0/24", "podCIDRs": [f"10.244.{i}.0/24"]},
                    }
                )
            self.uids[name] = node.metadata.uid
            self.heartbeat(name)
            taints = [
                t
                for t in (self.core.read_node(name).spec.taints or [])
                if t.key not in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
            ]
            self.core.patch_node(
                name, {"spec": {"taints": [self.api.sanitize_for_serialization(t) for t in taints] or None}}
            )
        self.last_heartbeat = time.time()

    def beat(self, now: float) -> None:
        """Every HEARTBEAT seconds, post every node's status; a node deleted meanwhile is registered again."""
        if now - self.last_heartbeat < HEARTBEAT:
            return
        self.last_heartbeat = now
        for name in self.names:
            try:
                self.heartbeat(name)
            except self.ApiException as exc:
                if exc.status == 404:
                    self.register()
                    break
                raise

    def heartbeat(self, name: str) -> None:
        """Post the node's status: Ready, capacity, addresses and the kubelet port the API server dials for logs."""
        now = ts(time.time())
        started = ts(float(self.started_at or time.time()))
        conds = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]
        cap = {"cpu": "4", "memory": "16393216Ki", "pods": "110", "ephemeral-storage": "101203500Ki"}
        alloc = {"cpu": "3800m", "memory": "15241216Ki", "pods": "110", "ephemeral-storage": "93268120Ki"}
        mid = hashlib.sha256(name.encode()).hexdigest()[:32]
        body = {
            "status": {
                "conditions": [
                    {
                        "type": t,
                        "status": s,
                        "reason": r,
                        "message": m,
                        "lastHeartbeatTime": now,
                        "lastTransitionTime": started,
                    }
                    for t, s, r, m in conds
                ],
                "capacity": cap,
                "allocatable": alloc,
                "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": int(self.ports["kubelet"])}},
                "nodeInfo": {
                    "machineID": mid,
                    "systemUUID": str(uuid.UUID(mid)),
                    "bootID": str(uuid.uuid5(uuid.NAMESPACE_DNS, name + started)),
                    "kernelVersion": os.uname().release,
                    "osImage": "Debian GNU/Linux 12 (bookworm)",
                    "containerRuntimeVersion": "containerd://1.6.20",
                    "kubeletVersion": "v1.20.2",
                    "kubeProxyVersion": "v1.20.2",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                },
            }
        }
        self.core.patch_node_status(name, body)
        self.renew_lease(name)

    def renew_lease(self, name: str) -> None:
        """The node's Lease in kube-node-lease, which `kubectl describe node` and health checks read."""
        from kubernetes import client

        coord = client.CoordinationV1Api(self.api)
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": name, "leaseDurationSeconds": 40, "renewTime": now}
        try:
            coord.patch_namespaced_lease(name, "kube-node-lease", {"spec": spec})
        except self.ApiException as exc:
            if exc.status != 404:
                raise
            owner = (
                [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": self.uids.get(name, "")}]
                if self.uids.get(name)
                else []
            )
            coord.create_namespaced_lease(
                "kube-node-lease",
                {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": name, "ownerReferences": owner},
                    "spec": spec,
                },
            )
