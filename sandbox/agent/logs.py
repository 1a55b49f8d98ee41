"""What each container instance writes: the scenario rule's lines, templated from the pod and
timed over the instance's run."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from sandbox.agent.api import View

if TYPE_CHECKING:
    from sandbox.agent.pods import Container
    from sandbox.agent.workload import QueueModel

MAX_LOG_LINES = 3000
"""Lines kept per container instance."""


class _Fmt(dict):
    """Template values for log lines; unknown names stay visible instead of raising."""

    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def stamp(line: str, t: float) -> str:
    """Fill {ts} in an app's own log format with the line's time."""
    if "{ts}" in line:
        return line.replace("{ts}", dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z")
    return line


class ContainerLogs:
    """The lines of every container instance, keyed (pod uid, container, restart count)."""

    def __init__(self, view: View, queue: QueueModel, pod_ips: dict[str, str]) -> None:
        self.view = view
        self.queue = queue
        self.pod_ips = pod_ips
        """The kubelet's pod IPs (a log line may name its own)."""
        self.lines: dict[tuple[str, str, int], list[tuple[float, str]]] = {}
        """(uid, container, restart) → (time, line), in order."""

    def fmt(self, pod: dict, c: dict, st: Container, extra: dict | None = None) -> _Fmt:
        """The values a log or probe template may name: pod, container, env, queue, certificate."""
        world, scenario = self.view.world, self.view.scenario
        ns = pod["metadata"]["namespace"]
        f = _Fmt(
            pod=pod["metadata"]["name"],
            namespace=ns,
            container=c["name"],
            image=c.get("image", ""),
            image_tag=c.get("image", "").rsplit(":", 1)[-1],
            node=pod["spec"].get("nodeName", ""),
            restart=st.restart,
            pod_ip=self.pod_ips.get(pod["metadata"]["uid"], ""),
            memory_limit=((c.get("resources") or {}).get("limits") or {}).get("memory", "none"),
            exit_code=st.rule.exit_code
            if st.rule.exit_code is not None
            else (137 if st.rule.behaviour == "oom" else 1),
        )
        for e in c.get("env") or []:
            f[f"env_{e['name']}"] = world.env_value(ns, c, e["name"]) or ""
        if scenario and scenario.queue:
            f["queue"] = scenario.queue.name
            f["queue_depth"] = int(self.queue.depth or 0)
            f["queue_consumers"] = self.queue.consumers
        for vol in pod["spec"].get("volumes") or []:
            sec = (vol.get("secret") or {}).get("secretName")
            if sec:
                na = world.cert_not_after(ns, sec)
                if na:
                    f["cert_not_after"] = na.strftime("%Y-%m-%dT%H:%M:%SZ")
        if extra:
            f.update(extra)
        return f

    def start_instance(self, uid: str, pod: dict, c: dict, st: Container, now: float) -> None:
        """The lines a new container instance writes; crash lines are spread over its run time."""
        f = self.fmt(pod, c, st)
        lines = [ln.format_map(f) for ln in st.rule.logs]
        run = st.rule.run_seconds * self.view.time_scale if st.rule.behaviour in ("crash", "oom") else 0.2
        out = []
        for i, ln in enumerate(lines):
            frac = (i / (len(lines) - 1)) if len(lines) > 1 else 0.0
            out.append((now + run * frac * 0.98, stamp(ln, now + run * frac * 0.98)))
        with self.view.lock:
            self.lines[(uid, c["name"], st.restart)] = out
        st.next_periodic = now + st.rule.periodic_seconds * self.view.time_scale

    def periodic(self, uid: str, pod: dict, c: dict, st: Container, now: float) -> None:
        """The rule's periodic lines, when they are due."""
        if not st.rule.periodic_logs or now < st.next_periodic:
            return
        f = self.fmt(pod, c, st)
        with self.view.lock:
            buf = self.lines.setdefault((uid, c["name"], st.restart), [])
            for ln in st.rule.periodic_logs:
                buf.append((now, stamp(ln.format_map(f), now)))
            del buf[:-MAX_LOG_LINES]
        st.next_periodic = now + st.rule.periodic_seconds * self.view.time_scale

    def rule_changed(self, uid: str, pod: dict, c: dict, st: Container, now: float) -> None:
        """A live rule change (a dependency came back, a cert was replaced): the running process logs it."""
        f = self.fmt(pod, c, st)
        with self.view.lock:
            buf = self.lines.setdefault((uid, c["name"], st.restart), [])
            for ln in st.rule.logs:
                buf.append((now, stamp(ln.format_map(f), now)))

    def forget(self, uid: str) -> None:
        """Drop a pod's lines (it is gone)."""
        for k in [k for k in self.lines if k[0] == uid]:
            del self.lines[k]
