"""The sandbox's Prometheus and Alertmanager: Debian's binaries (`prometheus`, `prometheus-alertmanager`)
on loopback ports, with configuration generated into the sandbox's data directory.

    node agent  /metrics/kube-state  /metrics/cadvisor  /metrics
        ▲ scraped every 1-2 s (jobs kube-state-metrics, kubelet, workloads)
    prometheus  rules.yml: alert-rules.yaml, its windows scaled by the sandbox's time_scale
        │ firing and resolved alerts
    alertmanager  route → the webhook `set_alert_webhook` names (v4 JSON, Bearer token from a file)

Files under HOME/monitoring: prometheus.yml, rules.yml, alertmanager.yml and webhook.token (0600);
the TSDB (two hours kept) in HOME/prometheus, Alertmanager's state in HOME/alertmanager. The
processes themselves are started, probed and stopped by `sandbox.cluster` with the rest.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

COMPONENTS = ("alertmanager", "prometheus")
"""The monitoring processes, in start order (Prometheus sends to Alertmanager)."""

PACKAGES = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager"}
"""Component → the Debian package that ships its binary."""

RULES_TEMPLATE = Path(__file__).with_name("alert-rules.yaml")
"""The alerting rules, with durations for time_scale 1."""

OFF = (
    "metrics and alerts are off: Prometheus and Alertmanager are not installed "
    "(`make sandbox` installs them as root; else `apt-get install prometheus prometheus-alertmanager`)"
)
"""The one line the sandbox says when it starts without them."""

RECEIVER = "lantern"
"""The Alertmanager receiver that carries the webhook."""

_ENV = {"GOMAXPROCS": "1", "GOGC": "50"}
"""Both are small here: one thread of Go scheduling and a tighter heap keep their memory low."""


def find_binaries() -> dict[str, Path | None]:
    """The two binaries, from PATH or Debian's place (Alertmanager is `prometheus-alertmanager` there)."""
    names = {"prometheus": ("prometheus",), "alertmanager": ("prometheus-alertmanager", "alertmanager")}
    out: dict[str, Path | None] = {}
    for comp, cands in names.items():
        found = None
        for name in cands:
            for path in (shutil.which(name), f"/usr/bin/{name}"):
                if path and Path(path).is_file() and os.access(path, os.X_OK):
                    found = Path(path)
                    break
            if found:
                break
        out[comp] = found
    return out


def missing() -> list[str]:
    """The Debian packages whose binary is not installed."""
    return [PACKAGES[c] for c, p in find_binaries().items() if p is None]


class Files:
    """File names of the monitoring configuration and data inside one sandbox data directory."""

    def __init__(self, home: Path) -> None:
        self.dir = home / "monitoring"
        self.prometheus = self.dir / "prometheus.yml"
        self.rules = self.dir / "rules.yml"
        self.alertmanager = self.dir / "alertmanager.yml"
        self.token = self.dir / "webhook.token"
        self.tsdb = home / "prometheus"
        self.am_data = home / "alertmanager"


# ---------------------------------------------------------------- configuration


def scrape_interval(time_scale: float) -> float:
    """Seconds between scrapes and between rule evaluations: 2 s, shorter for a faster sandbox (never under 1 s)."""
    return max(1.0, min(2.0, 2.0 * time_scale))


def duration(seconds: float) -> str:
    """Seconds as a Prometheus duration."""
    ms = max(0, round(seconds * 1000))
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


_UNIT = {"s": 1, "m": 60, "h": 3600}
_RANGE = re.compile(r"\[(\d+)([smh])\]")
_FOR = re.compile(r"^(\s*for:\s*)(\d+)([smh])\s*$", re.M)


def scaled_rules(text: str, time_scale: float) -> str:
    """The rule file with every range and `for:` scaled by time_scale (ranges keep at least four scrapes)."""
    floor = 4 * scrape_interval(time_scale)

    def rng(m: re.Match[str]) -> str:
        return f"[{duration(max(floor, int(m.group(1)) * _UNIT[m.group(2)] * time_scale))}]"

    def for_(m: re.Match[str]) -> str:
        return m.group(1) + duration(int(m.group(2)) * _UNIT[m.group(3)] * time_scale)

    return _FOR.sub(for_, _RANGE.sub(rng, text))


def prometheus_config(home: Path, ports: dict[str, int], time_scale: float) -> dict[str, Any]:
    """prometheus.yml: the agent's three scrape paths, the rules, and the sandbox's Alertmanager."""
    every = duration(scrape_interval(time_scale))
    agent = f"127.0.0.1:{ports['metrics']}"
    jobs = (("kube-state-metrics", "/metrics/kube-state"), ("kubelet", "/metrics/cadvisor"), ("workloads", "/metrics"))
    return {
        "global": {
            "scrape_interval": every,
            "scrape_timeout": every,
            "evaluation_interval": every,
            "external_labels": {"cluster": "lantern-sandbox"},
        },
        "rule_files": [str(Files(home).rules)],
        "alerting": {
            "alertmanagers": [
                {"api_version": "v2", "static_configs": [{"targets": [f"127.0.0.1:{ports['alertmanager']}"]}]}
            ]
        },
        "scrape_configs": [
            {"job_name": job, "metrics_path": path, "static_configs": [{"targets": [agent]}]} for job, path in jobs
        ],
    }


def alertmanager_config(home: Path, time_scale: float, webhook: str | None) -> dict[str, Any]:
    """alertmanager.yml: one route with the sandbox's short timers, to the webhook when one is set."""
    files = Files(home)
    receivers: list[dict[str, Any]] = [{"name": "none"}]
    if webhook:
        hook: dict[str, Any] = {"url": webhook, "send_resolved": True, "max_alerts": 0}
        if files.token.is_file():
            hook["http_config"] = {"authorization": {"type": "Bearer", "credentials_file": str(files.token)}}
        receivers.append({"name": RECEIVER, "webhook_configs": [hook]})
    return {
        "route": {
            "receiver": RECEIVER if webhook else "none",
            "group_by": ["alertname", "namespace"],
            "group_wait": duration(max(1.0, 5 * time_scale)),
            "group_interval": duration(max(1.0, 10 * time_scale)),
            "repeat_interval": "5m",
        },
        "receivers": receivers,
    }


def write_configs(home: Path, ports: dict[str, int], time_scale: float, webhook: str | None) -> set[str]:
    """Write the three files; returns the components whose configuration changed (those to reload)."""
    files = Files(home)
    files.dir.mkdir(parents=True, exist_ok=True)
    texts = {
        "prometheus": (files.prometheus, yaml.safe_dump(prometheus_config(home, ports, time_scale), sort_keys=False)),
        "rules": (files.rules, scaled_rules(RULES_TEMPLATE.read_text(encoding="utf-8"), time_scale)),
        "alertmanager": (
            files.alertmanager,
            yaml.safe_dump(alertmanager_config(home, time_scale, webhook), sort_keys=False),
        ),
    }
    changed = set()
    for name, (path, text) in texts.items():
        try:
            same = path.read_text(encoding="utf-8") == text
        except OSError:
            same = False
        if not same:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(path)
            changed.add("prometheus" if name == "rules" else name)
    return changed


def write_token(home: Path, token: str | None) -> None:
    """Keep the webhook's bearer token in a 0600 file Alertmanager reads (`credentials_file`); None removes it."""
    files = Files(home)
    if token is None:
        files.token.unlink(missing_ok=True)
        return
    files.dir.mkdir(parents=True, exist_ok=True)
    tmp = files.token.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.chmod(0o600)
    tmp.write_text(token.strip(), encoding="utf-8")
    tmp.replace(files.token)


# ---------------------------------------------------------------- processes


def argv(name: str, home: Path, ports: dict[str, int]) -> list[str]:
    """The command line of one monitoring process."""
    files = Files(home)
    binary = str(find_binaries()[name] or f"/usr/bin/{PACKAGES[name]}")
    url = f"http://127.0.0.1:{ports[name]}"
    if name == "prometheus":
        return [
            binary,
            f"--config.file={files.prometheus}",
            f"--storage.tsdb.path={files.tsdb}",
            "--storage.tsdb.retention.time=2h",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            f"--web.external-url={url}",
            "--web.enable-lifecycle",
            "--web.max-connections=64",
            "--query.max-concurrency=4",
            "--rules.alert.resend-delay=5s",
            "--log.level=warn",
        ]
    return [
        binary,
        f"--config.file={files.alertmanager}",
        f"--storage.path={files.am_data}",
        "--data.retention=2h",
        f"--web.listen-address=127.0.0.1:{ports['alertmanager']}",
        f"--web.external-url={url}",
        "--cluster.listen-address=",  # a single instance: no gossip port
        "--log.level=warn",
    ]


def env() -> dict[str, str]:
    """The environment the monitoring processes run with."""
    return {**os.environ, **_ENV}


MARKERS = {"prometheus": "prometheus.yml", "alertmanager": "alertmanager.yml"}
"""A string of each process's command line (with the data directory it names, it tells ours from others)."""


def _request(url: str, method: str = "GET", timeout: float = 2.0) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as exc:
        return 0, str(exc)


def probe(name: str, ports: dict[str, int]) -> bool:
    """Whether the process answers its readiness endpoint."""
    return _request(f"http://127.0.0.1:{ports.get(name)}/-/ready")[0] == 200


def reload(name: str, ports: dict[str, int]) -> str:
    """Ask a running process to read its configuration again; '' when it did, else why not."""
    code, body = _request(f"http://127.0.0.1:{ports.get(name)}/-/reload", method="POST", timeout=10.0)
    return "" if code == 200 else f"{name} did not reload its configuration ({code or 'unreachable'}): {body.strip()}"


def alerts(prometheus_url: str, namespace: str | None = None) -> list[dict[str, Any]]:
    """The alerts Prometheus has firing now (of one namespace when given); [] when it cannot be reached."""
    code, body = _request(f"{prometheus_url.rstrip('/')}/api/v1/alerts")
    if code != 200:
        return []
    try:
        found = json.loads(body)["data"]["alerts"]
    except (ValueError, KeyError, TypeError):
        return []
    return [
        a
        for a in found
        if a.get("state") == "firing" and (namespace is None or a.get("labels", {}).get("namespace") == namespace)
    ]
