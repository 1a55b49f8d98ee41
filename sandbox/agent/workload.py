"""The scenario's message queue, simulated from the workloads that feed and drain it."""

from __future__ import annotations

import time

from sandbox.agent.api import View


class QueueModel:
    """Depth follows ready producer and consumer pods: consumers at 0 → it grows; scaled up → it drains."""

    def __init__(self, view: View) -> None:
        self.view = view
        self.depth: float | None = None
        """Messages ready; None when the scenario has no queue."""
        self.rates = (0.0, 0.0)
        """(published, delivered) messages per second."""
        self.consumers = 0
        """Ready consumer pods."""
        self._t: float | None = None

    def start(self) -> None:
        """A scenario was loaded: its queue starts at its initial depth (none without a queue)."""
        sc = self.view.scenario
        q = sc.queue if sc else None
        self.depth = float(q.initial_depth) if q else None
        self._t = time.time()

    def update(self, now: float) -> None:
        """Advance the depth to `now` at the rates the ready pods give."""
        sc = self.view.scenario
        if not sc or not sc.queue or self.depth is None:
            return
        q = sc.queue
        prod, _ = self.view.ready_replicas(sc.namespace, q.producer)
        cons, _ = self.view.ready_replicas(sc.namespace, q.consumer)
        pub = prod * q.publish_rate_per_pod
        cap = cons * q.consume_rate_per_pod
        last = now if self._t is None else self._t
        self._t = now
        dt_s = max(0.0, now - last) / self.view.time_scale
        backlog = self.depth + pub * dt_s
        delivered = min(backlog, cap * dt_s)
        with self.view.lock:
            self.depth = max(0.0, backlog - delivered)
            self.rates = (pub, delivered / dt_s if dt_s else min(cap, pub))
            self.consumers = cons
