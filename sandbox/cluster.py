"""The sandbox cluster's lifecycle: etcd, a real kube-apiserver, controller-manager, scheduler, node agent,
and Prometheus and Alertmanager scraping the agent's metrics (`sandbox.monitoring`; off when not installed).

Everything listens on 127.0.0.1 on free ports and keeps its data under $LANTERN_HOME/sandbox
(or ~/.local/share/lantern/sandbox). The processes run detached (own session), so the console and
other commands can use the cluster after `lantern sandbox up` returns. The kubeconfig goes to its
own file with the context `lantern-sandbox`; the user's ~/.kube/config is never touched.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.config import lantern_home
from sandbox import build as _build
from sandbox import monitoring, pki

CONTEXT = "lantern-sandbox"
"""The kubeconfig context name the sandbox writes."""

DEFAULT_SCENARIO = "bad-deploy"
"""The scenario the embedded default world starts with."""

REPO_ROOT = Path(__file__).resolve().parents[1]
SERVICE_CIDR = "10.96.0.0/16"
COMPONENT_ORDER = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "agent")
"""The cluster's own processes, in start order."""
ALL_COMPONENTS = COMPONENT_ORDER + monitoring.COMPONENTS
"""With Prometheus and Alertmanager, which run when installed."""
PORT_NAMES = (
    "etcd_client",
    "etcd_peer",
    "apiserver",
    "controller_manager",
    "scheduler",
    "kubelet",
    "metrics",
    "queue",
    "tls",
    "prometheus",
    "alertmanager",
)


class SandboxError(RuntimeError):
    """The sandbox could not be started, stopped or used; the message says what to do."""


@dataclass
class SandboxInfo:
    """How to reach a running sandbox."""

    home: Path
    kubeconfig: Path
    context: str
    server: str
    scenario: str | None = None
    symptom: str | None = None
    endpoints: dict[str, str] = field(default_factory=dict)


def sandbox_home(home: Path | str | None = None) -> Path:
    """The sandbox's data directory."""
    return Path(home) if home else lantern_home() / "sandbox"


class Layout:
    """File names inside one sandbox data directory."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = sandbox_home(home)
        self.pki = self.home / "pki"
        self.logs = self.home / "logs"
        self.etcd_data = self.home / "etcd"
        self.state = self.home / "state.json"
        self.kubeconfig = self.home / "kubeconfig"
        self.tokens = self.home / "pki" / "tokens.csv"
        self.scenario = self.home / "scenario.json"

    def read_state(self) -> dict[str, Any]:
        """The saved ports, pids and token (empty when never started)."""
        try:
            return json.loads(self.state.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def write_state(self, state: dict[str, Any]) -> None:
        """Save state atomically (the agent and commands read it concurrently)."""
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.state.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True), encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(self.state)

    def read_scenario(self) -> dict[str, Any] | None:
        """The active scenario record, if any."""
        try:
            return json.loads(self.scenario.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None


# ---------------------------------------------------------------- processes

_LOCKS: dict[str, tuple[int, int]] = {}
_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def locked(home: Path | str | None = None):
    """Hold the data directory's lock (re-entrant in this process) so two commands don't start it twice."""
    lay = Layout(home)
    lay.home.mkdir(parents=True, exist_ok=True)
    key = str(lay.home)
    with _LOCKS_GUARD:
        fd, depth = _LOCKS.get(key, (-1, 0))
        if depth == 0:
            fd = os.open(lay.home / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    if depth == 0:
        fcntl.flock(fd, fcntl.LOCK_EX)
    with _LOCKS_GUARD:
        _LOCKS[key] = (fd, depth + 1)
    try:
        yield
    finally:
        with _LOCKS_GUARD:
            fd, depth = _LOCKS[key]
            if depth == 1:
                del _LOCKS[key]
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            else:
                _LOCKS[key] = (fd, depth - 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [p.decode(errors="replace") for p in raw.split(b"\0") if p]


def _alive(pid: int | None, marker: str, home: Path) -> bool:
    """Whether pid is still our process (guards against a recycled pid belonging to someone else)."""
    if not pid:
        return False
    argv = _cmdline(pid)
    if not argv:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    except OSError:
        return False
    joined = " ".join(argv)
    return marker in joined and str(home) in joined


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _spawn(name: str, argv: list[str], lay: Layout, env: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a detached process with its output in logs/NAME.log."""
    lay.logs.mkdir(parents=True, exist_ok=True)
    log = (lay.logs / f"{name}.log").open("ab")
    proc = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        cwd=str(lay.home),
        env=env or os.environ.copy(),
        close_fds=True,
    )
    log.close()
    return proc


def _stop(pid: int, marker: str, home: Path, timeout: float = 15.0) -> None:
    """SIGTERM, wait, then SIGKILL; only if pid is still ours."""
    if not _alive(pid, marker, home):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid, marker, home):
            _reap(pid)
            return
        _reap(pid)
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    _reap(pid)


def _reap(pid: int) -> None:
    """Collect a child we started in this process, so it doesn't linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _tail(path: Path, n: int = 15) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


# ---------------------------------------------------------------- setup


def _ensure_pki(lay: Layout, state: dict[str, Any]) -> None:
    """CA, serving certs, service-account keys and the admin token; made once per data directory."""
    p = lay.pki
    if not (p / "ca.crt").is_file():
        ca, ca_key = pki.make_ca()
        pki.write(p / "ca.crt", ca)
        pki.write(p / "ca.key", ca_key, private=True)
        crt, key = pki.issue(
            ca,
            ca_key,
            "kube-apiserver",
            sans=[
                "127.0.0.1",
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
                "10.96.0.1",
            ],
        )
        pki.write(p / "apiserver.crt", crt)
        pki.write(p / "apiserver.key", key, private=True)
        crt, key = pki.issue(ca, ca_key, "sandbox-kubelet", sans=["127.0.0.1", "localhost"])
        pki.write(p / "kubelet.crt", crt)
        pki.write(p / "kubelet.key", key, private=True)
        crt, key = pki.issue(ca, ca_key, "kube-apiserver-kubelet-client", organization="system:masters", client=True)
        pki.write(p / "kubelet-client.crt", crt)
        pki.write(p / "kubelet-client.key", key, private=True)
        sa_key, sa_pub = pki.rsa_keypair()
        pki.write(p / "sa.key", sa_key, private=True)
        pki.write(p / "sa.pub", sa_pub)
    if not state.get("token") or not lay.tokens.is_file():
        state["token"] = secrets.token_hex(24)
        lay.tokens.write_text(f'{state["token"]},lantern-admin,lantern-admin,"system:masters"\n', encoding="utf-8")
        lay.tokens.chmod(0o600)


def _ensure_ports(state: dict[str, Any], running: bool) -> dict[str, int]:
    """Keep last run's ports (etcd remembers its peer URL); pick new ones where they are taken."""
    ports: dict[str, int] = dict(state.get("ports") or {})
    used: set[int] = set()
    for name in PORT_NAMES:
        port = ports.get(name)
        if port and (running or _port_free(port)) and port not in used:
            used.add(port)
            continue
        while True:
            port = _free_port()
            if port not in used:
                break
        ports[name] = port
        used.add(port)
    state["ports"] = ports
    return ports


def _write_kubeconfig(lay: Layout, state: dict[str, Any]) -> None:
    server = f"https://127.0.0.1:{state['ports']['apiserver']}"
    cfg = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CONTEXT, "cluster": {"server": server, "certificate-authority": str(lay.pki / "ca.crt")}}
        ],
        "users": [{"name": "lantern-sandbox-admin", "user": {"token": state["token"]}}],
        "contexts": [
            {"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "lantern-sandbox-admin", "namespace": "default"}}
        ],
        "current-context": CONTEXT,
    }
    tmp = lay.kubeconfig.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(lay.kubeconfig)


def _argv(name: str, lay: Layout, state: dict[str, Any]) -> list[str]:
    """The command line that starts one component of the sandbox cluster."""
    bins = _build.binaries()
    ports = state["ports"]
    if name not in _COMMAND_LINES:
        raise ValueError(name)
    return _COMMAND_LINES[name](bins, lay, ports)


def _etcd_url(ports: dict[str, int]) -> str:
    return f"http://127.0.0.1:{ports['etcd_client']}"


def _etcd_argv(bins: dict[str, Path], lay: Layout, ports: dict[str, int]) -> list[str]:
    etcd_url = _etcd_url(ports)
    peer = f"http://127.0.0.1:{ports['etcd_peer']}"
    return [
        str(bins["etcd"]),
        "--name",
        "lantern-sandbox",
        "--data-dir",
        str(lay.etcd_data),
        "--listen-client-urls",
        etcd_url,
        "--advertise-client-urls",
        etcd_url,
        "--listen-peer-urls",
        peer,
        "--initial-advertise-peer-urls",
        peer,
        "--initial-cluster",
        f"lantern-sandbox={peer}",
        "--listen-metrics-urls",
        "",
        "--quota-backend-bytes",
        str(512 * 1024 * 1024),
        "--snapshot-count",
        "5000",
        "--logger",
        "zap",
        "--log-level",
        "warn",
    ]


def _apiserver_argv(bins: dict[str, Path], lay: Layout, ports: dict[str, int]) -> list[str]:
    etcd_url = _etcd_url(ports)
    p = lay.pki
    return [
        str(bins["kube-apiserver"]),
        f"--etcd-servers={etcd_url}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={ports['apiserver']}",
        "--insecure-port=0",
        f"--tls-cert-file={p / 'apiserver.crt'}",
        f"--tls-private-key-file={p / 'apiserver.key'}",
        f"--client-ca-file={p / 'ca.crt'}",
        f"--token-auth-file={lay.tokens}",
        "--authorization-mode=RBAC",
        "--allow-privileged=true",
        f"--service-account-key-file={p / 'sa.pub'}",
        f"--service-account-signing-key-file={p / 'sa.key'}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--kubelet-preferred-address-types=InternalIP,Hostname",
        f"--kubelet-client-certificate={p / 'kubelet-client.crt'}",
        f"--kubelet-client-key={p / 'kubelet-client.key'}",
        "--enable-priority-and-fairness=false",
        "--profiling=false",
        "--event-ttl=2h",
        f"--cert-dir={lay.home / 'apiserver-certs'}",
        "--v=1",
    ]


def _controller_manager_argv(bins: dict[str, Path], lay: Layout, ports: dict[str, int]) -> list[str]:
    p = lay.pki
    return [
        str(bins["kube-controller-manager"]),
        f"--kubeconfig={lay.kubeconfig}",
        "--leader-elect=false",
        "--controllers=*,-nodelifecycle",
        f"--service-account-private-key-file={p / 'sa.key'}",
        f"--root-ca-file={p / 'ca.crt'}",
        "--use-service-account-credentials=false",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--address=127.0.0.1",
        f"--port={ports['controller_manager']}",
        "--secure-port=0",
        "--profiling=false",
        f"--cert-dir={lay.home / 'cm-certs'}",
        "--v=1",
    ]


def _scheduler_argv(bins: dict[str, Path], lay: Layout, ports: dict[str, int]) -> list[str]:
    return [
        str(bins["kube-scheduler"]),
        f"--kubeconfig={lay.kubeconfig}",
        "--leader-elect=false",
        "--address=127.0.0.1",
        f"--port={ports['scheduler']}",
        "--secure-port=0",
        "--profiling=false",
        "--v=1",
    ]


def _agent_argv(bins: dict[str, Path], lay: Layout, ports: dict[str, int]) -> list[str]:
    return [sys.executable, "-m", "sandbox.agent", "--home", str(lay.home)]


_COMMAND_LINES: dict[str, Callable[[dict[str, Path], Layout, dict[str, int]], list[str]]] = {
    "etcd": _etcd_argv,
    "kube-apiserver": _apiserver_argv,
    "kube-controller-manager": _controller_manager_argv,
    "kube-scheduler": _scheduler_argv,
    "agent": _agent_argv,
    "alertmanager": lambda bins, lay, ports: monitoring.argv("alertmanager", lay.home, ports),
    "prometheus": lambda bins, lay, ports: monitoring.argv("prometheus", lay.home, ports),
}
"""Component name → its command line, from the binaries, the layout and the ports this cluster uses."""


_MARKERS = {
    "etcd": "etcd",
    "kube-apiserver": "kube-apiserver",
    "kube-controller-manager": "kube-controller-manager",
    "kube-scheduler": "kube-scheduler",
    "agent": "sandbox.agent",
    **monitoring.MARKERS,
}


def _ssl_context(lay: Layout) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(lay.pki / "ca.crt"))
    return ctx


def _get(url: str, lay: Layout, token: str | None = None, timeout: float = 2.0) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(
            req, timeout=timeout, context=_ssl_context(lay) if url.startswith("https") else None
        ) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, ssl.SSLError) as exc:
        return 0, str(exc)


def _probe(name: str, lay: Layout, state: dict[str, Any]) -> bool:
    """Whether a component answers its health endpoint."""
    ports = state.get("ports") or {}
    if name == "etcd":
        code, body = _get(f"http://127.0.0.1:{ports.get('etcd_client')}/health", lay)
        return code == 200 and '"true"' in body
    if name == "kube-apiserver":
        code, _ = _get(f"https://127.0.0.1:{ports.get('apiserver')}/readyz", lay, state.get("token"))
        return code == 200
    if name == "kube-controller-manager":
        return _get(f"http://127.0.0.1:{ports.get('controller_manager')}/healthz", lay)[0] == 200
    if name == "kube-scheduler":
        return _get(f"http://127.0.0.1:{ports.get('scheduler')}/healthz", lay)[0] == 200
    if name == "agent":
        return _get(f"http://127.0.0.1:{ports.get('metrics')}/-/healthy", lay)[0] == 200
    if name in monitoring.COMPONENTS:
        return monitoring.probe(name, ports)
    return False


def components(state: dict[str, Any]) -> tuple[str, ...]:
    """The processes this sandbox runs: the cluster's, and Prometheus and Alertmanager when they were installed at `up`."""
    return ALL_COMPONENTS if state.get("monitoring") else COMPONENT_ORDER


def _wait(name: str, lay: Layout, state: dict[str, Any], proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _probe(name, lay, state):
            return
        if proc.poll() is not None:
            raise SandboxError(
                f"{name} exited during start-up; last lines of {lay.logs / (name + '.log')}:\n"
                + _tail(lay.logs / f"{name}.log")
            )
        time.sleep(0.1)
    raise SandboxError(
        f"{name} not ready after {timeout:.0f}s; see {lay.logs / (name + '.log')}:\n" + _tail(lay.logs / f"{name}.log")
    )


# ---------------------------------------------------------------- public API


def is_running(home: Path | str | None = None) -> bool:
    """Whether every sandbox process is alive and the API server is ready."""
    lay = Layout(home)
    state = lay.read_state()
    pids = state.get("pids") or {}
    return all(_alive(pids.get(n), _MARKERS[n], lay.home) for n in components(state)) and _probe(
        "kube-apiserver", lay, state
    )


def up(
    home: Path | str | None = None,
    nodes: int = 2,
    timeout: float = 90.0,
    progress: Any = None,
    time_scale: float | None = None,
) -> SandboxInfo:
    """Start whatever part of the sandbox is not running and wait until it is ready (idempotent).

    time_scale < 1 makes scripted run times and back-offs shorter (tests); it applies when the
    node agent starts.
    """
    with locked(home):
        return _up(home, nodes, timeout, progress, time_scale)


def _up(home: Path | str | None, nodes: int, timeout: float, progress: Any, time_scale: float | None) -> SandboxInfo:
    missing = _build.missing_binaries()
    if missing:
        raise SandboxError(
            f"sandbox binaries missing ({', '.join(missing)}); run `lantern sandbox build` first "
            f"(builds once per machine into {_build.bin_dir()})"
        )
    if not 1 <= nodes <= 3:
        raise SandboxError(f"nodes must be 1 to 3, not {nodes}")
    lay = Layout(home)
    lay.home.mkdir(parents=True, exist_ok=True)
    state = lay.read_state()
    pids: dict[str, int] = dict(state.get("pids") or {})
    alive = {n: _alive(pids.get(n), _MARKERS[n], lay.home) for n in ALL_COMPONENTS}
    if alive["agent"] and int(state.get("nodes") or nodes) != nodes:
        _stop(pids["agent"], _MARKERS["agent"], lay.home)  # it registers its nodes at start
        alive["agent"] = False
    _ensure_pki(lay, state)
    _ensure_ports(state, running=any(alive.values()))
    state["nodes"] = nodes
    if time_scale is not None:
        state["time_scale"] = time_scale
    state.setdefault("started_at", time.time())
    if not any(alive.values()):
        state["started_at"] = time.time()
    say = progress or (lambda msg: None)
    reload = _configure_monitoring(lay, state, say)
    lay.write_state(state)
    _write_kubeconfig(lay, state)
    t_start = time.time()
    restarted_agent = False
    # etcd, then the API server, one after the other; its clients and the monitoring together.
    for group in (
        ("etcd",),
        ("kube-apiserver",),
        tuple(n for n in components(state) if n not in ("etcd", "kube-apiserver")),
    ):
        started = []
        for name in group:
            if alive[name] and _probe(name, lay, state):
                continue
            if alive[name]:
                _stop(pids[name], _MARKERS[name], lay.home)
            say(f"starting {name}")
            proc = _spawn(name, _argv(name, lay, state), lay, _env(name))
            pids[name] = proc.pid
            state["pids"] = pids
            lay.write_state(state)
            started.append((name, proc))
            restarted_agent = restarted_agent or name == "agent"
            reload.discard(name)
            _remember_home(lay.home)
        for name, proc in started:
            _wait(name, lay, state, proc, timeout)
        if group[0] == "kube-apiserver" and started:
            say("API server ready")
    for name in sorted(reload):
        if why := monitoring.reload(name, state["ports"]):
            say(why)
    # Nodes left in etcd from the last run look Ready too: count only those this agent has heartbeated.
    _wait_nodes(lay, state, nodes, timeout, since=t_start - 2 if restarted_agent else 0.0)
    return info(lay.home)


def _env(name: str) -> dict[str, str]:
    """The environment one component starts with."""
    env = os.environ.copy()
    if name == "agent":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    if name in monitoring.COMPONENTS:
        env = monitoring.env()
    return env


def _configure_monitoring(lay: Layout, state: dict[str, Any], say: Callable[[str], None]) -> set[str]:
    """Whether Prometheus and Alertmanager run (installed or not, said in one line when not), and their
    configuration written; returns the running ones whose configuration changed."""
    state["monitoring"] = not monitoring.missing()
    if not state["monitoring"]:
        say(monitoring.OFF)
        return set()
    scale = float(state.get("time_scale") or 1.0)
    return monitoring.write_configs(lay.home, state["ports"], scale, state.get("alert_webhook"))


def _wait_nodes(lay: Layout, state: dict[str, Any], nodes: int, timeout: float, since: float = 0.0) -> None:
    """Until exactly the agent's nodes are Ready (heartbeat after `since`) and untainted, so pods can be scheduled."""
    url = f"https://127.0.0.1:{state['ports']['apiserver']}/api/v1/nodes?labelSelector=lantern.dev%2Fsandbox%3Dtrue"
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        code, body = _get(url, lay, state["token"])
        if code == 200:
            items = json.loads(body).get("items", [])
            ready = [
                n
                for n in items
                if not (n.get("spec") or {}).get("taints")
                and any(
                    c["type"] == "Ready" and c["status"] == "True" and _epoch(c.get("lastHeartbeatTime")) >= since
                    for c in (n.get("status") or {}).get("conditions") or []
                )
            ]
            if len(ready) >= nodes and len(items) == nodes:
                return
            last = f"{len(ready)} of {nodes} nodes ready"
        time.sleep(0.2)
    raise SandboxError(
        f"nodes did not become ready ({last}); see {lay.logs / 'agent.log'}:\n" + _tail(lay.logs / "agent.log")
    )


def _epoch(ts: str | None) -> float:
    """An API timestamp as epoch seconds (0 when absent)."""
    if not ts:
        return 0.0
    try:
        return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


_STARTED_HERE: set[Path] = set()


def started_here(home: Path | str | None = None) -> bool:
    """True when this process started the sandbox in `home` (default: this LANTERN_HOME's) and it
    still runs."""
    lay = Layout(home)
    return lay.home in _STARTED_HERE and is_running(lay.home)


def _registry() -> Path:
    from engine.config import cache_dir

    return cache_dir() / "sandbox" / "started.json"


def _remember_home(home: Path) -> None:
    """Note a data directory this user started a sandbox in (so `down_all` finds it)."""
    _STARTED_HERE.add(home)
    path = _registry()
    try:
        homes = set(json.loads(path.read_text())) if path.exists() else set()
    except (OSError, ValueError):
        homes = set()
    homes.add(str(home))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(sorted(homes)))
    tmp.replace(path)


def down_all(home: Path | str | None = None) -> list[Path]:
    """Stop every sandbox this user started (each data directory ever started from here, and
    `home`); returns the directories that had something running."""
    try:
        homes = {Path(h) for h in json.loads(_registry().read_text())}
    except (OSError, ValueError):
        homes = set()
    homes.add(sandbox_home(home))
    return [h for h in sorted(homes) if h.is_dir() and down(h)]


def footprint(home: Path | str | None = None) -> tuple[int, int]:
    """(processes alive, their resident memory in MB) of the sandbox in `home`."""
    lay = Layout(home)
    pids = lay.read_state().get("pids") or {}
    alive = [pid for name, pid in pids.items() if name in _MARKERS and _alive(pid, _MARKERS[name], lay.home)]
    kb = 0
    for pid in alive:
        try:
            kb += next(
                int(line.split()[1])
                for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("VmRSS:")
            )
        except (OSError, StopIteration, ValueError):
            pass
    return len(alive), kb // 1024


def down(home: Path | str | None = None) -> bool:
    """Stop every sandbox process, API server before etcd; data stays for a warm start. True if anything ran."""
    with locked(home):
        return _down(home)


def _down(home: Path | str | None) -> bool:
    lay = Layout(home)
    state = lay.read_state()
    pids = state.get("pids") or {}
    stopped = False
    for name in reversed(ALL_COMPONENTS):
        pid = pids.get(name)
        if pid and _alive(pid, _MARKERS[name], lay.home):
            _stop(pid, _MARKERS[name], lay.home)
            stopped = True
    if state:
        state["pids"] = {}
        lay.write_state(state)
    return stopped


def info(home: Path | str | None = None) -> SandboxInfo:
    """Connection details of the sandbox in this data directory (running or not)."""
    lay = Layout(home)
    state = lay.read_state()
    sc = lay.read_scenario() or {}
    ports = state.get("ports") or {}
    endpoints = {}
    if state.get("monitoring"):
        for name in ("prometheus", "alertmanager"):
            if ports.get(name):
                endpoints[name] = f"http://127.0.0.1:{ports[name]}"
    if ports.get("queue"):
        endpoints["rabbitmq"] = f"http://127.0.0.1:{ports['queue']}"
    if ports.get("tls") and sc.get("tls_endpoint"):
        endpoints["tls"] = f"127.0.0.1:{ports['tls']}"
        endpoints["tls-server-name"] = sc["tls_endpoint"]["server_name"]
    return SandboxInfo(
        home=lay.home,
        kubeconfig=lay.kubeconfig,
        context=CONTEXT,
        server=f"https://127.0.0.1:{ports.get('apiserver', 0)}",
        scenario=sc.get("name"),
        symptom=sc.get("symptom"),
        endpoints=endpoints,
    )


def status(home: Path | str | None = None) -> dict[str, Any]:
    """Pids, ports, readiness and memory of each process."""
    lay = Layout(home)
    state = lay.read_state()
    pids = state.get("pids") or {}
    procs = []
    total = 0
    for name in components(state):
        pid = pids.get(name)
        alive = _alive(pid, _MARKERS[name], lay.home)
        rss = _rss_kb(pid) if alive and pid else 0
        total += rss
        procs.append(
            {
                "name": name,
                "pid": pid if alive else None,
                "alive": alive,
                "ready": alive and _probe(name, lay, state),
                "rss_mb": round(rss / 1024, 1),
            }
        )
    sc = lay.read_scenario() or {}
    return {
        "home": str(lay.home),
        "kubeconfig": str(lay.kubeconfig),
        "context": CONTEXT,
        "ports": state.get("ports") or {},
        "processes": procs,
        "rss_mb_total": round(total / 1024, 1),
        "running": all(p["alive"] for p in procs),
        "ready": all(p["ready"] for p in procs),
        "scenario": sc.get("name"),
        "endpoints": info(lay.home).endpoints,
        "monitoring": "on" if state.get("monitoring") else ("off" if state else "not started"),
        "alert_webhook": state.get("alert_webhook"),
    }


def set_alert_webhook(url: str | None, token: str | None = None, home: Path | str | None = None) -> None:
    """Point the sandbox Alertmanager's receiver at `url` (None: no receiver), sending `token` as
    `Authorization: Bearer` (Alertmanager's `http_config.authorization` with a `credentials_file`);
    a running Alertmanager reloads, a stopped one uses it at the next `up`."""
    if url is not None and not url.startswith(("http://", "https://")):
        raise SandboxError(f"alert webhook must be an http:// or https:// URL, not {url!r}")
    if token is not None and (not token.strip() or any(ch in token.strip() for ch in "\r\n")):
        raise SandboxError("alert webhook token must be one non-empty line")
    with locked(home):
        lay = Layout(home)
        state = lay.read_state()
        state["alert_webhook"] = url
        monitoring.write_token(lay.home, token if url else None)
        lay.write_state(state)
        if not (state.get("monitoring") and state.get("ports")):
            return
        scale = float(state.get("time_scale") or 1.0)
        changed = monitoring.write_configs(lay.home, state["ports"], scale, url)
        alive = _alive((state.get("pids") or {}).get("alertmanager"), _MARKERS["alertmanager"], lay.home)
        if alive and (changed or token is not None):
            if why := monitoring.reload("alertmanager", state["ports"]):
                raise SandboxError(why)


def set_nodes(nodes: int, home: Path | str | None = None) -> None:
    """Change how many nodes the agent registers (restarts the agent; extra nodes are removed)."""
    lay = Layout(home)
    state = lay.read_state()
    if int(state.get("nodes") or 0) == nodes and is_running(lay.home):
        return
    pid = (state.get("pids") or {}).get("agent")
    if pid:
        _stop(pid, _MARKERS["agent"], lay.home)
    up(lay.home, nodes=nodes)


def ensure_up(
    scenario: str | None = None, home: Path | str | None = None, nodes: int | None = None, progress: Any = None
) -> SandboxInfo:
    """Start the sandbox if needed and, when asked, make `scenario` the running one (kept if already running)."""
    with locked(home):
        return _ensure_up(scenario, home, nodes, progress)


def _ensure_up(scenario: str | None, home: Path | str | None, nodes: int | None, progress: Any) -> SandboxInfo:
    lay = Layout(home)
    state = lay.read_state()
    if not is_running(lay.home):
        up(lay.home, nodes=nodes or int(state.get("nodes") or 2), progress=progress)
    elif nodes and int(state.get("nodes") or 0) != nodes:
        set_nodes(nodes, lay.home)
    if scenario is not None:
        from sandbox.scenario import apply_scenario

        current = lay.read_scenario() or {}
        if current.get("name") != scenario or not current.get("applied"):
            if progress:
                progress(f"starting scenario {scenario}")
            apply_scenario(scenario, home=lay.home)
    return info(lay.home)


def default_world(
    home: Path | str | None = None, scenario: str = DEFAULT_SCENARIO, progress: Any = None, rearm: bool = False
) -> tuple[Path, str, str] | None:
    """With no kubeconfig on this machine, the sandbox with a live scenario: (kubeconfig, context, symptom).

    Returns None when the user has a kubeconfig (theirs wins). Raises SandboxError when the sandbox
    cannot start (for example, binaries not built), with the command that fixes it. `rearm` starts
    the scenario afresh even when it already ran (a fix approved earlier may have healed it, and
    its alert would no longer be true).
    """
    if os.environ.get("KUBECONFIG") or (Path.home() / ".kube" / "config").is_file():
        return None
    lay = Layout(home)
    current = lay.read_scenario() or {}
    # Keep whatever scenario the user last chose; start the default one only on a fresh sandbox.
    wanted = current.get("name") if current.get("applied") else scenario
    si = ensure_up(wanted, home=lay.home, progress=progress)
    if rearm and current.get("applied"):
        from sandbox.scenario import apply_scenario

        apply_scenario(wanted, home=lay.home)
        si = info(lay.home)
    return si.kubeconfig, si.context, si.symptom or ""
