"""The checks read a cut-off, binary or garbled output as absent: no check raises on it."""

from __future__ import annotations

import random

import pytest

from engine.diagnose import Diagnoser
from skills.kube.checks import KubernetesChecks


def checking(namespace: str = "default") -> Diagnoser:
    """A diagnoser with the Kubernetes checks, as a session with the kubernetes pack has."""
    return Diagnoser([KubernetesChecks()], namespace=namespace)


SAMPLES = [
    "NAME                     READY   STATUS             RESTARTS   AGE\napi-7d9f8b6c5d-x2x9q     0/1     CrashLoopBackOff   5 (2m ago) 3m\n",
    "LAST SEEN   TYPE      REASON             OBJECT                 MESSAGE\n3m30s (x256 over 58m)   Warning   BackOff   pod/api-7d9f8b6c5d-x2x9q   Back-off restarting failed container\n",
    "Name:         api-7d9f8b6c5d-x2x9q\nNamespace:    shop\nStatus:       Pending\nContainers:\n  api:\n    Port:  8080/TCP\nEvents:\n  Type     Reason            Age   From               Message\n  ----     ------            ----  ----               -------\n  Warning  FailedScheduling  2m    default-scheduler  0/3 nodes are available: 3 Insufficient cpu.\n",
    "NAME   ENDPOINTS   AGE\napi    <none>      5m\n",
    "alerts:\n- type: Service\n  name: api\n  evidence: ['LATENCY_DEGRADATION p99 (+340.0%)']\n",
    "Service: kubelet\nNode: worker-1\n   Active: inactive (dead)\n",
]
TOOLS = [
    ("cloudops.GetResources", {"resource_type": "pods"}),
    ("cloudops.DescribeResource", {"name": "api"}),
    ("cloudops.GetRecentLogs", {"service_name": "api"}),
]


def _mangle(text: str, rng: random.Random) -> list[str]:
    cut = rng.randrange(1, len(text))
    noise = bytes(rng.randrange(256) for _ in range(200)).decode("latin-1")
    return [
        text[:cut],
        text[cut:],
        noise,
        text[:cut] + noise,
        text.replace("\n", "\r\n"),
        text.replace(" ", "\t"),
        "\x00" * 50 + text,
    ]


@pytest.mark.parametrize("seed", range(6))
def test_no_check_raises_on_cut_off_or_binary_output(seed):
    rng = random.Random(seed)
    d = checking(namespace="shop")
    for sample in SAMPLES:
        for text in _mangle(sample, rng):
            for tool, args in TOOLS:
                d.observe(tool, args, text)  # must not raise
    d.ranked(), d.next_reads()


def test_structured_data_of_the_wrong_shape_is_read_as_text():
    d = checking()
    for data in (
        {"pods": [None, 3, {"name": 5}]},
        {"events": ["x", {"type": "Warning"}]},
        {"containers": [1], "name": "p", "events": [None]},
    ):
        d.observe("kubernetes.list_pods", {}, "", data)
