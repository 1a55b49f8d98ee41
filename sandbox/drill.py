"""What a drill needs from the sandbox: a scenario's health condition read from the cluster, and the
reference fix's calls (with a certificate renewed by the sandbox's own CA where a step asks for one)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sandbox.cluster import Layout
from sandbox.scenario import Healthy, Scenario


def unhealthy(sc: Scenario, home: Path | str | None = None) -> list[str]:
    """What is still wrong by the scenario's own condition ([] when healed)."""
    from sandbox.testing import k8s_clients

    assert sc.drill is not None
    _, core, apps = k8s_clients(_info(home))
    return _check(sc.drill.healthy, sc.namespace, core, apps)


def _info(home: Path | str | None) -> Any:
    from sandbox.cluster import info

    return info(Layout(home).home)


def _check(h: Healthy, ns: str, core: Any, apps: Any) -> list[str]:
    problems: list[str] = []
    for name in h.deployments:
        d = _read(apps.read_namespaced_deployment, name, ns)
        if d is None:
            problems.append(f"deployment {name} does not exist (deleted?)")
            continue
        want, st = d.spec.replicas or 0, d.status
        if want < 1:
            problems.append(f"deployment {name} has 0 replicas")
        elif (st.observed_generation or 0) < (d.metadata.generation or 0):
            problems.append(f"deployment {name}: the controller has not seen the change yet")
        elif not (
            st.updated_replicas == want
            and st.ready_replicas == want
            and st.available_replicas == want
            and (st.replicas or 0) == want
        ):
            problems.append(
                f"deployment {name}: {st.ready_replicas or 0}/{want} ready, {st.updated_replicas or 0} updated, {st.replicas or 0} in all"
            )
    for name in h.endpoints:
        ep = _read(core.read_namespaced_endpoints, name, ns)
        if ep is None or not any(s.addresses for s in ep.subsets or []):
            problems.append(f"service {name} has no ready endpoints")
    for name in h.service_ports:
        problems.extend(_unserved_ports(name, ns, core))
    return problems


def _read(read: Any, name: str, ns: str) -> Any:
    """The object, or None when the API server says it does not exist."""
    from kubernetes.client.exceptions import ApiException

    try:
        return read(name, ns)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _unserved_ports(name: str, ns: str, core: Any) -> list[str]:
    """The Service's endpoint ports that no container of the pod behind the address declares (connections there are refused)."""
    out: list[str] = []
    ep = _read(core.read_namespaced_endpoints, name, ns)
    if ep is None:
        return [f"service {name} has no endpoints object"]
    for subset in ep.subsets or []:
        for addr in subset.addresses or []:
            ref = addr.target_ref
            if ref is None or ref.kind != "Pod":
                continue
            pod = core.read_namespaced_pod(ref.name, ns)
            declared = {p.container_port for c in pod.spec.containers for p in c.ports or []}
            for port in subset.ports or []:
                if port.port not in declared:
                    listening = ", ".join(str(p) for p in sorted(declared)) or "no declared port"
                    out.append(
                        f"service {name}: port {port.name or port.port} goes to {port.port} on pod {ref.name}, which listens on {listening}"
                    )
    return sorted(set(out))


def wait_healthy(sc: Scenario, home: Path | str | None = None, timeout: float | None = None) -> list[str]:
    """Poll the health condition until it holds or `timeout` (the scenario's heal_seconds) passes; what is still wrong."""
    assert sc.drill is not None
    deadline = time.monotonic() + (timeout if timeout is not None else sc.drill.heal_seconds)
    while True:
        left = unhealthy(sc, home)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(1.0)


def reference_calls(sc: Scenario, home: Path | str | None = None) -> list[dict[str, Any]]:
    """The reference fix as model tool calls ({name, arguments}); renewed certificates are written beside the sandbox's PKI."""
    from sandbox import pki

    assert sc.drill is not None
    lay = Layout(home)
    calls = []
    for i, step in enumerate(sc.drill.reference):
        args = dict(step.arguments)
        if step.renew_cert:
            ca, ca_key = (lay.pki / "ca.crt").read_bytes(), (lay.pki / "ca.key").read_bytes()
            cn = step.renew_cert["common_name"]
            crt, key = pki.issue(ca, ca_key, cn, sans=list(step.renew_cert.get("sans") or [cn]))
            out = lay.home / "drill"
            out.mkdir(parents=True, exist_ok=True)
            (out / f"{sc.name}-{i}.crt").write_bytes(crt)
            (out / f"{sc.name}-{i}.key").write_bytes(key)
            (out / f"{sc.name}-{i}.key").chmod(0o600)
            args.update(cert=str(out / f"{sc.name}-{i}.crt"), key=str(out / f"{sc.name}-{i}.key"))
        calls.append({"name": step.tool, "arguments": args})
    return calls
