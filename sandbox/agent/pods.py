"""The kubelet's part: the pods bound to the sandbox's nodes, each container moved through the
lifecycle the scenario's rule picks, and the pod status the kubelet would post."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from typing import Any

from sandbox.agent.api import View, log, parse_ts, ts
from sandbox.agent.events import EventRecorder
from sandbox.agent.logs import ContainerLogs
from sandbox.agent.nodes import Nodes
from sandbox.agent.workload import QueueModel
from sandbox.scenario import Rule, pick_rule


class Container:
    """The agent's memory of one container of one pod."""

    def __init__(self, restart: int = 0) -> None:
        self.restart = restart
        self.phase = "creating"  # creating | running | backoff | pull-failed | config-error | exited
        self.since = time.time()
        self.started_at: float | None = None
        self.rule: Rule = Rule()
        self.ready = False
        self.last_term: dict[str, Any] | None = None
        self.backoff_until = 0.0
        self.waiting: tuple[str, str] | None = ("ContainerCreating", "")
        self.next_periodic = 0.0
        self.next_probe_event = 0.0
        self.pull_attempts = 0
        self.term: dict[str, Any] | None = None


def _probe_message(c: dict, ip: str) -> str:
    """The kubelet's wording for a failed readiness probe, from the container's own probe spec."""
    probe = c.get("readinessProbe") or {}
    if probe.get("httpGet"):
        return "Readiness probe failed: HTTP probe failed with statuscode: 503"
    if probe.get("tcpSocket"):
        return f"Readiness probe failed: dial tcp {ip}:{probe['tcpSocket'].get('port')}: connect: connection refused"
    if probe.get("exec"):
        return "Readiness probe failed: command exited with status 1"
    return "Readiness probe failed: HTTP probe failed with statuscode: 503"


def _container_id(uid: str, name: str, restart: int) -> str:
    return "containerd://" + hashlib.sha256(f"{uid}/{name}/{restart}".encode()).hexdigest()


class Kubelet:
    """The pods on the sandbox's nodes: container lifecycles, pod status, deletion, and their logs."""

    def __init__(self, core: Any, api_exception: type[Exception], view: View, nodes: Nodes, queue: QueueModel) -> None:
        self.core = core
        self.ApiException = api_exception
        self.view = view
        self.nodes = nodes
        self.pods: dict[str, dict] = {}
        """uid → pod dict (last seen)."""
        self.by_name: dict[tuple[str, str], str] = {}
        """(ns, name) → uid."""
        self.containers: dict[tuple[str, str], Container] = {}
        """(uid, container name) → its state."""
        self.pod_ips: dict[str, str] = {}
        self.cond_times: dict[tuple[str, str], tuple[str, float]] = {}
        self.sent: dict[str, str] = {}
        """uid → the last status posted (unchanged ones are not posted again)."""
        self.recorder = EventRecorder(core, api_exception)
        self.logs = ContainerLogs(view, queue, self.pod_ips)

    # ------------------------------------------------------------ pods

    def sync(self, pods: list[dict], now: float) -> None:
        """One pass over every pod: reconcile those on our nodes, finish the deleted, forget the gone."""
        seen: set[str] = set()
        for pod in pods:
            node = pod["spec"].get("nodeName") or ""
            if node not in self.nodes.names:
                if node.startswith("sandbox-node-"):
                    # Bound to a sandbox node that no longer exists (fewer nodes now): what the pod GC
                    # would do after its quarantine, done at once so namespaces can finish deleting.
                    self.finish_pod(pod)
                continue
            uid = pod["metadata"]["uid"]
            if pod["metadata"].get("deletionTimestamp"):
                self.finish_pod(pod)
                continue
            seen.add(uid)
            with self.view.lock:
                self.pods[uid] = pod
                self.by_name[(pod["metadata"]["namespace"], pod["metadata"]["name"])] = uid
            try:
                self.reconcile(pod, now)
            except self.ApiException as exc:
                if exc.status not in (404, 409):
                    log.warning("pod %s/%s: %s", pod["metadata"]["namespace"], pod["metadata"]["name"], exc.reason)
        with self.view.lock:
            for uid in [u for u in self.pods if u not in seen]:
                self.forget(uid)

    def forget(self, uid: str) -> None:
        """Drop everything remembered of a pod."""
        pod = self.pods.pop(uid, None)
        if pod:
            self.by_name.pop((pod["metadata"]["namespace"], pod["metadata"]["name"]), None)
        for k in [k for k in self.containers if k[0] == uid]:
            del self.containers[k]
        self.logs.forget(uid)
        self.pod_ips.pop(uid, None)
        self.sent.pop(uid, None)
        self.recorder.forget(uid)

    def finish_pod(self, pod: dict) -> None:
        """No real kubelet runs here, so a terminating pod would hang forever: stop it and delete it now."""
        md = pod["metadata"]
        uid = md["uid"]
        if uid in self.pods:
            for c in pod["spec"].get("containers") or []:
                self.recorder.event(
                    pod,
                    "Killing",
                    f"Stopping container {c['name']}",
                    field_path=f"spec.containers{{{c['name']}}}",
                    node=pod["spec"].get("nodeName"),
                )
        try:
            self.core.delete_namespaced_pod(
                md["name"],
                md["namespace"],
                grace_period_seconds=0,
                body={"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
            )
        except self.ApiException as exc:
            if exc.status not in (404, 409):
                log.warning("force delete %s/%s: %s", md["namespace"], md["name"], exc.reason)
        with self.view.lock:
            self.forget(uid)

    def pod_ip(self, pod: dict) -> str:
        """The pod's IP: the one it has, else a stable one in its node's range."""
        uid = pod["metadata"]["uid"]
        if uid not in self.pod_ips:
            ip = (pod.get("status") or {}).get("podIP")
            if not ip:
                idx = self.nodes.names.index(pod["spec"]["nodeName"]) + 1
                used = set(self.pod_ips.values())
                host = int(hashlib.sha256(uid.encode()).hexdigest(), 16) % 250 + 2
                while f"10.244.{idx}.{host}" in used:
                    host = host % 253 + 2
                ip = f"10.244.{idx}.{host}"
            self.pod_ips[uid] = ip
        return self.pod_ips[uid]

    def reconcile(self, pod: dict, now: float) -> None:
        """Advance each container's state machine and post the pod's status if it changed."""
        uid = pod["metadata"]["uid"]
        node = pod["spec"]["nodeName"]
        policy = pod["spec"].get("restartPolicy", "Always")
        prior = {cs["name"]: cs for cs in ((pod.get("status") or {}).get("containerStatuses") or [])}
        statuses = []
        for c in pod["spec"]["containers"]:
            key = (uid, c["name"])
            st = self.containers.get(key)
            if st is None:
                st = self.adopt(uid, pod, c, prior.get(c["name"]) or {}, now)
                self.containers[key] = st
                if st.restart == 0 and st.phase == "creating":
                    self.recorder.event(
                        pod,
                        "Pulling",
                        f'Pulling image "{c.get("image")}"',
                        field_path=f"spec.containers{{{c['name']}}}",
                        node=node,
                    )
            self.step(pod, c, st, now, policy)
            statuses.append(self.container_status(uid, c, st))
        self.post_status(pod, statuses, now)

    def adopt(self, uid: str, pod: dict, c: dict, prior: dict, now: float) -> Container:
        """After an agent restart, carry on from what the API server remembers, like a restarted kubelet
        finds its containers still running: same restart count, running ones keep running."""
        st = Container(restart=int(prior.get("restartCount") or 0))
        last = (prior.get("lastState") or {}).get("terminated")
        if last:
            st.last_term = dict(last)
        rule = pick_rule(self.view.scenario, pod, c, self.view.world, dt.datetime.now(dt.UTC))
        running = (prior.get("state") or {}).get("running")
        if last:
            # lastState is the instance before the running one, or during back-off the one that just died.
            idx = st.restart - 1 if running else st.restart
            if idx >= 0:
                st.rule = rule
                keep, st.restart = st.restart, idx
                self.logs.start_instance(uid, pod, c, st, parse_ts(last.get("startedAt")) or now)  # re-told
                st.restart = keep
        if running:
            st.rule = rule
            st.phase = "running"
            st.started_at = parse_ts(running.get("startedAt")) or now
            st.waiting = None
            st.ready = rule.behaviour == "healthy"
            self.logs.start_instance(uid, pod, c, st, st.started_at)
            st.next_probe_event = now
        elif (prior.get("state") or {}).get("waiting", {}).get("reason") == "CrashLoopBackOff":
            st.rule = rule
            st.phase, st.backoff_until = "backoff", now
        return st

    # ------------------------------------------------------------ one container's lifecycle

    def step(self, pod: dict, c: dict, st: Container, now: float, policy: str) -> None:
        """Move one container on: start it when it is due, or run its rule while it runs."""
        if st.phase in ("creating", "config-error", "pull-failed") or (
            st.phase == "backoff" and now >= st.backoff_until
        ):
            self._start(pod, c, st, now)
        elif st.phase == "running":
            self._run(pod, c, st, now, policy)

    def _start(self, pod: dict, c: dict, st: Container, now: float) -> None:
        """Try to start the container: a config error, a failed pull, or a new running instance."""
        uid, ns, node = pod["metadata"]["uid"], pod["metadata"]["namespace"], pod["spec"]["nodeName"]
        fp = f"spec.containers{{{c['name']}}}"
        scale = self.view.time_scale
        if st.phase == "pull-failed" and now < st.backoff_until:
            if st.waiting and st.waiting[0] == "ErrImagePull" and now >= st.since + scale:
                img = c.get("image")
                st.waiting = ("ImagePullBackOff", f'Back-off pulling image "{img}"')
                self.recorder.event(pod, "BackOff", f'Back-off pulling image "{img}"', field_path=fp, node=node)
                self.recorder.event(pod, "Failed", "Error: ImagePullBackOff", warning=True, field_path=fp, node=node)
            return
        missing = self.view.world.missing_refs(ns, c)
        if missing:
            if st.phase != "config-error" or now >= st.next_probe_event:
                self.recorder.event(pod, "Failed", f"Error: {missing}", warning=True, field_path=fp, node=node)
                st.next_probe_event = now + 10 * scale
            st.phase, st.waiting, st.ready = "config-error", ("CreateContainerConfigError", missing), False
            return
        rule = pick_rule(self.view.scenario, pod, c, self.view.world, dt.datetime.now(dt.UTC))
        if rule.behaviour == "image-pull":
            self._pull_failed(pod, c, st, rule, now)
            return
        if st.phase == "backoff":
            st.restart += 1
        if st.phase in ("creating", "pull-failed") or st.phase == "config-error":
            self.recorder.event(
                pod,
                "Pulled",
                f'Container image "{c.get("image")}" already present on machine',
                field_path=fp,
                node=node,
            )
        self.recorder.event(pod, "Created", f"Created container {c['name']}", field_path=fp, node=node)
        self.recorder.event(pod, "Started", f"Started container {c['name']}", field_path=fp, node=node)
        st.rule = rule
        st.phase, st.started_at, st.waiting, st.term = "running", now, None, None
        st.ready = rule.behaviour == "healthy"
        st.next_probe_event = now + 3 * scale
        self.logs.start_instance(uid, pod, c, st, now)

    def _pull_failed(self, pod: dict, c: dict, st: Container, rule: Rule, now: float) -> None:
        """The image cannot be pulled: ErrImagePull now, the next attempt after an exponential back-off."""
        node, fp, sc = pod["spec"]["nodeName"], f"spec.containers{{{c['name']}}}", self.view.scenario
        st.pull_attempts += 1
        img = c.get("image")
        self.recorder.event(pod, "Pulling", f'Pulling image "{img}"', field_path=fp, node=node)
        self.recorder.event(
            pod,
            "Failed",
            f'Failed to pull image "{img}": rpc error: code = NotFound desc = failed to pull and unpack '
            f'image "{img}": failed to resolve reference "{img}": {img}: not found',
            warning=True,
            field_path=fp,
            node=node,
        )
        self.recorder.event(pod, "Failed", "Error: ErrImagePull", warning=True, field_path=fp, node=node)
        st.rule = rule
        st.phase, st.since = "pull-failed", now
        st.waiting = (
            "ErrImagePull",
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{img}": not found',
        )
        base, cap = (sc.backoff_base, sc.backoff_cap) if sc else (5.0, 80.0)
        st.backoff_until = now + min(base * 2 ** (st.pull_attempts - 1), cap) * self.view.time_scale

    def _run(self, pod: dict, c: dict, st: Container, now: float, policy: str) -> None:
        """A running instance follows its rule: it crashes when its run time is up, fails its readiness
        probe, or serves; a live rule changes with the cluster (a dependency back, a cert replaced)."""
        uid, node = pod["metadata"]["uid"], pod["spec"]["nodeName"]
        fp = f"spec.containers{{{c['name']}}}"
        rule = st.rule
        if rule.live:
            new = pick_rule(self.view.scenario, pod, c, self.view.world, dt.datetime.now(dt.UTC))
            if new.behaviour in ("healthy", "unready") and rule.behaviour in ("healthy", "unready") and new != rule:
                st.rule = rule = new
                self.logs.rule_changed(uid, pod, c, st, now)
        if rule.behaviour in ("crash", "oom"):
            if now - (st.started_at or now) >= rule.run_seconds * self.view.time_scale:
                self._exit(pod, c, st, now, policy)
            return
        if rule.behaviour == "unready":
            st.ready = False
            if now >= st.next_probe_event:
                msg = rule.probe_message or _probe_message(c, self.pod_ip(pod))
                self.recorder.event(
                    pod, "Unhealthy", msg.format_map(self.logs.fmt(pod, c, st)), warning=True, field_path=fp, node=node
                )
                st.next_probe_event = now + 10 * self.view.time_scale
        else:
            st.ready = True
        self.logs.periodic(uid, pod, c, st, now)

    def _exit(self, pod: dict, c: dict, st: Container, now: float, policy: str) -> None:
        """The instance ends (crash or OOM kill): terminated for good under its restart policy, else back-off."""
        uid, ns, node = pod["metadata"]["uid"], pod["metadata"]["namespace"], pod["spec"]["nodeName"]
        rule, sc, scale = st.rule, self.view.scenario, self.view.time_scale
        oom = rule.behaviour == "oom"
        code = rule.exit_code if rule.exit_code is not None else (137 if oom else 1)
        st.last_term = {
            "exitCode": code,
            "reason": "OOMKilled" if oom else ("Error" if code else "Completed"),
            "startedAt": ts(st.started_at or now),
            "finishedAt": ts(now),
            "containerID": _container_id(uid, c["name"], st.restart),
        }
        st.ready = False
        if oom:
            self.recorder.event(
                {"kind": "Node", "metadata": {"name": node, "uid": self.nodes.uids.get(node, node)}},
                "SystemOOM",
                f"System OOM encountered, victim process: {c['name']}, pid: "
                f"{10000 + int(hashlib.sha256((uid + str(st.restart)).encode()).hexdigest(), 16) % 50000}",
                warning=True,
                node=node,
            )
        if policy == "Never" or (policy == "OnFailure" and code == 0):
            st.phase, st.term, st.waiting = "exited", st.last_term, None
            return
        base, cap = (sc.backoff_base, sc.backoff_cap) if sc else (5.0, 80.0)
        delay = min(base * 2**st.restart, cap) * scale
        st.phase, st.backoff_until = "backoff", now + delay
        st.waiting = (
            "CrashLoopBackOff",
            f"back-off {int(delay)}s restarting failed container={c['name']} pod={pod['metadata']['name']}_{ns}({uid})",
        )
        self.recorder.event(
            pod,
            "BackOff",
            "Back-off restarting failed container",
            warning=True,
            field_path=f"spec.containers{{{c['name']}}}",
            node=node,
        )

    # ------------------------------------------------------------ status

    def container_status(self, uid: str, c: dict, st: Container) -> dict:
        """The container's entry in the pod's containerStatuses."""
        image = c.get("image", "")
        img_id = ""
        if st.phase not in ("creating", "pull-failed", "config-error"):
            img_id = f"{image.split(':')[0]}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"
        out: dict[str, Any] = {
            "name": c["name"],
            "image": image,
            "imageID": img_id,
            "ready": st.ready,
            "restartCount": st.restart,
            "started": st.phase == "running",
        }
        if st.phase == "running":
            out["state"] = {"running": {"startedAt": ts(st.started_at or time.time())}}
            out["containerID"] = _container_id(uid, c["name"], st.restart)
        elif st.phase == "exited" and st.term:
            out["state"] = {"terminated": st.term}
            out["containerID"] = st.term["containerID"]
        else:
            reason, msg = st.waiting or ("ContainerCreating", "")
            out["state"] = {"waiting": {"reason": reason, **({"message": msg} if msg else {})}}
        if st.last_term:
            out["lastState"] = {"terminated": st.last_term}
        else:
            out["lastState"] = {}
        return out

    def post_status(self, pod: dict, statuses: list[dict], now: float) -> None:
        """Post the pod's phase, conditions, IPs and container statuses, when they changed."""
        uid = pod["metadata"]["uid"]
        all_ready = all(s["ready"] for s in statuses)
        any_started = any(
            s["restartCount"] > 0 or "running" in s["state"] or "terminated" in s["state"] for s in statuses
        )
        every_exited = all("terminated" in s["state"] for s in statuses)
        if every_exited:
            phase = "Succeeded" if all(s["state"]["terminated"]["exitCode"] == 0 for s in statuses) else "Failed"
        else:
            phase = "Running" if any_started else "Pending"
        not_ready = [s["name"] for s in statuses if not s["ready"]]

        def cond(ctype: str, ok: bool, reason: str | None = None, msg: str | None = None) -> dict:
            status = "True" if ok else "False"
            prev = self.cond_times.get((uid, ctype))
            t = prev[1] if prev and prev[0] == status else now
            self.cond_times[(uid, ctype)] = (status, t)
            d = {"type": ctype, "status": status, "lastProbeTime": None, "lastTransitionTime": ts(t)}
            if reason:
                d["reason"] = reason
                d["message"] = msg
            return d

        why = f"containers with unready status: [{' '.join(not_ready)}]"
        body = {
            "status": {
                "phase": phase,
                "conditions": [
                    cond("Initialized", True),
                    cond("Ready", all_ready, None if all_ready else "ContainersNotReady", why),
                    cond("ContainersReady", all_ready, None if all_ready else "ContainersNotReady", why),
                    cond("PodScheduled", True),
                ],
                "hostIP": "127.0.0.1",
                "podIP": self.pod_ip(pod),
                "podIPs": [{"ip": self.pod_ip(pod)}],
                "startTime": (pod.get("status") or {}).get("startTime") or ts(now),
                "containerStatuses": statuses,
            }
        }
        sig = json.dumps(body, sort_keys=True)
        if self.sent.get(uid) == sig:
            return
        self.core.patch_namespaced_pod_status(pod["metadata"]["name"], pod["metadata"]["namespace"], body)
        self.sent[uid] = sig

    # ------------------------------------------------------------ log access

    def instance_of(self, ns: str, pod: str, container: str) -> tuple[int, str] | None:
        """(restart count, phase) of a container, or None when the agent does not know it."""
        with self.view.lock:
            uid = self.by_name.get((ns, pod))
            st = self.containers.get((uid, container)) if uid else None
            return (st.restart, st.phase) if st else None

    def read_logs(self, ns: str, pod: str, container: str, previous: bool) -> tuple[int, list[tuple[float, str]] | str]:
        """Lines of a container instance, or (status, message) the way the kubelet words it."""
        with self.view.lock:
            uid = self.by_name.get((ns, pod))
            if uid is None:
                return 404, f'pod "{pod}" not found'
            p = self.pods[uid]
            names = [c["name"] for c in p["spec"]["containers"]]
            if container not in names:
                return 400, f"container {container} is not valid for pod {pod}"
            st = self.containers.get((uid, container))
            if st is None:
                return 400, f'container "{container}" in pod "{pod}" is waiting to start: ContainerCreating'
            if previous:
                # The kubelet's "previous" is the instance before the latest one, dead or alive.
                lines = self.logs.lines.get((uid, container, st.restart - 1)) if st.restart > 0 else None
                if lines is None:
                    return 400, f'previous terminated container "{container}" in pod "{pod}" not found'
                return 200, list(lines)
            if st.phase in ("creating", "pull-failed", "config-error"):
                reason = (st.waiting or ("ContainerCreating", ""))[0]
                return 400, f'container "{container}" in pod "{pod}" is waiting to start: {reason}'
            lines = self.logs.lines.get((uid, container, st.restart), [])
            return 200, [ln for ln in lines if ln[0] <= time.time()]
