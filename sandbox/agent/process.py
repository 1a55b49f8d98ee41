"""The node agent process: each tick it reads the cluster, follows the active scenario and hands
what it read to its parts (nodes, pods, the queue, metrics); its HTTP faces answer meanwhile."""

from __future__ import annotations

import argparse
import logging
import signal
import time
from pathlib import Path

from sandbox.agent.api import View, items, log
from sandbox.agent.endpoints import TlsEndpoint, serve
from sandbox.agent.metrics import Metrics
from sandbox.agent.nodes import Nodes
from sandbox.agent.pods import Kubelet
from sandbox.agent.workload import QueueModel
from sandbox.cluster import CONTEXT, Layout
from sandbox.scenario import ScenarioError, World, load_scenario

TICK = 0.5
"""Seconds between reconcile passes."""


class Agent:
    """One process: the cluster's clients, the view the parts share, and the parts themselves."""

    def __init__(self, home: Path) -> None:
        from kubernetes import client, config

        self.lay = Layout(home)
        state = self.lay.read_state()
        self.ports = state["ports"]
        """Loopback ports: kubelet, metrics (the exporters' scrape paths), queue, tls."""
        self.api = config.new_client_from_config(config_file=str(self.lay.kubeconfig), context=CONTEXT)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.ApiException = client.ApiException
        self.view = View(float(state.get("time_scale") or 1.0))
        self.scenario_key: tuple[str, float] | None = None
        self.nodes = Nodes(
            self.core, self.api, self.ApiException, int(state.get("nodes") or 2), self.ports, state.get("started_at")
        )
        self.queue = QueueModel(self.view)
        self.kubelet = Kubelet(self.core, self.ApiException, self.view, self.nodes, self.queue)
        self.metrics = Metrics(self.view, self.nodes, self.kubelet, self.queue)

    def follow_scenario(self) -> None:
        """Follow scenario.json: the rules of the scenario `lantern sandbox scenario` started."""
        rec = self.lay.read_scenario()
        key = (rec.get("path", ""), float(rec.get("started_at") or 0)) if rec else None
        if key == self.scenario_key:
            return
        self.scenario_key = key
        if not rec:
            self.view.scenario = None
            self.queue.depth = None
            return
        try:
            self.view.scenario = load_scenario(rec["path"])
        except (ScenarioError, KeyError) as exc:
            log.error("cannot load scenario %s: %s", rec, exc)
            self.view.scenario = None
            return
        self.queue.start()
        log.info("scenario %s active", self.view.scenario.name)

    def tick(self) -> None:
        """One reconcile pass over everything the agent owns."""
        self.follow_scenario()
        now = time.time()
        # Raw JSON, not client models: building models for every object twice a second costs the CPU.
        pods = items(self.core.list_pod_for_all_namespaces(_preload_content=False))
        services = items(self.core.list_service_for_all_namespaces(_preload_content=False))
        secrets = items(self.core.list_secret_for_all_namespaces(_preload_content=False))
        cms = items(self.core.list_config_map_for_all_namespaces(_preload_content=False))
        self.view.deployments = items(self.apps.list_deployment_for_all_namespaces(_preload_content=False))
        self.view.world = World(services, secrets, cms)
        self.kubelet.sync(pods, now)
        self.queue.update(now)
        self.metrics.advance(now)
        self.nodes.beat(now)

    def run(self) -> None:
        """Register the nodes, then tick until stopped."""
        self.nodes.register()
        try:
            self.kubelet.recorder.recall()
        except self.ApiException as exc:
            log.warning("could not read earlier events: %s", exc.reason)
        while not self.view.stop.is_set():
            t0 = time.monotonic()
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - keep the node alive through API hiccups; say what failed
                log.warning("tick failed: %s", exc)
            self.view.stop.wait(max(0.05, TICK - (time.monotonic() - t0)))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the node agent process."""
    ap = argparse.ArgumentParser(prog="python -m sandbox.agent", description="Lantern sandbox node agent")
    ap.add_argument("--home", required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    agent = Agent(Path(args.home))
    signal.signal(signal.SIGTERM, lambda *_: agent.view.stop.set())
    signal.signal(signal.SIGINT, lambda *_: agent.view.stop.set())
    pki_dir = agent.lay.pki
    servers = [
        serve(agent, "kubelet", int(agent.ports["kubelet"]), (pki_dir / "kubelet.crt", pki_dir / "kubelet.key")),
        serve(agent, "metrics", int(agent.ports["metrics"])),
        serve(agent, "queue", int(agent.ports["queue"])),
    ]
    if agent.ports.get("tls"):
        TlsEndpoint(agent, int(agent.ports["tls"]))
    log.info("node agent up: nodes %s, kubelet port %s", ", ".join(agent.nodes.names), agent.ports["kubelet"])
    agent.run()
    for s in servers:
        s.shutdown()
    log.info("node agent stopped")
    return 0
