"""Findings: deterministic checks over what the read tools returned.

An on-call engineer reads `kubectl get pods`, sees a pod Pending, describes it and reads the
scheduler's message; the checks here do the same reading, so that a small model is handed the
decisive line instead of having to find it in 200 lines of output. Each check knows one
well-known failure signal of Kubernetes (an `exceeded quota` admission error, a FailedScheduling
reason, an image pull error, a probe aimed at the wrong port, a node agent that is down), and
states it as a `Finding`: a cause, the object it names, the line that shows it and a weight.

The checks never decide anything: findings are notes on tool results that the model (and the
console) read, and the model still gives the answer. They also name the next reads that would
confirm or rule a cause out (`Read`), which a triage playbook may run before the model's first
step. Nothing here calls a tool or a model.
"""

from engine.diagnose.findings import Diagnoser, Finding, Read

__all__ = ["Diagnoser", "Finding", "Read"]
