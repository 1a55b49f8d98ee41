"""Each kind of miss the outside incidents showed, on text written from the Kubernetes documentation."""

from __future__ import annotations

import re

import pytest

from engine.diagnose import Diagnoser
from skills.kube import catalogue
from skills.kube import checks as kube
from skills.kube.checks import KubernetesChecks


def checking(namespace: str = "default") -> Diagnoser:
    """A diagnoser with the Kubernetes checks, as a session with the kubernetes pack has."""
    return Diagnoser([KubernetesChecks()], namespace=namespace)


LOGS = "kubernetes.get_pod_logs"
KUBECTL = "kubernetes.kubectl"


def _top(*reads: tuple[str, dict, str]) -> list[tuple[str, str]]:
    d = checking(namespace="shop")
    for tool, args, text in reads:
        d.observe(tool, args, text)
    return [(f.cause, f.object) for f in d.ranked()]


def test_every_entry_names_its_source_and_compiles():
    entries = catalogue.entries()
    assert len(entries) >= 40
    for e in entries:
        assert e.source and ("kubernetes.io" in e.source or "k8sgpt" in e.source), e.cause
        assert e.family in {"admission", "scheduling", "startup", "runtime", "service", "infrastructure", "performance"}
        assert e.object in {"workload", "node", "namespace", "service"}


@pytest.mark.parametrize(
    ("line", "cause"),
    [
        ("Error: environment variable DATABASE_URL is not set", "missing_env_var"),
        ("panic: required env var STRIPE_API_BASE missing", "missing_env_var"),
        ("FATAL config: required option SMTP_RELAY_HOST is missing", "missing_env_var"),
        ("error: required configuration key REDIS_URL not set (see .env.example)", "missing_env_var"),
        (
            "x509: certificate has expired or is not yet valid: current time 2024-03-02T10:00:00Z is after 2024-03-01T00:00:00Z",
            "tls_certificate_expired",
        ),
        ("/docker-entrypoint.sh: line 12: syntax error near unexpected token `fi'", "shell_syntax_error"),
        ('sh: 1: Syntax error: "(" unexpected', "shell_syntax_error"),
        (
            "dial tcp: lookup payments-db.shop.svc.cluster.local on 10.96.0.10:53: no such host",
            "dns_resolution_failure",
        ),
        ("curl: (6) Could not resolve host: api.internal", "dns_resolution_failure"),
        ("Exception in thread main java.lang.OutOfMemoryError: Java heap space", "memory_leak"),
    ],
)
def test_failures_visible_only_in_logs(line, cause):
    found = _top((LOGS, {"name": "api-7d9f8b6c5d-x2x9q"}, f"2024-03-02T10:00:00Z starting\n{line}\n"))
    assert (cause, "service/api") in found


INIT_EXEC = """Name:             migrate-job-pod-7d9f8b6c5d-x2x9q
Namespace:        shop
Node:             worker-1/10.0.0.11
Status:           Pending
Init Containers:
  migrate:
    Image:         registry.example.com/shop/migrate:1.4
    State:         Waiting
      Reason:      CrashLoopBackOff
    Last State:    Terminated
      Reason:      StartError
      Message:     failed to create containerd task: failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: "migrate": executable file not found in $PATH: unknown
      Exit Code:   128
Containers:
  api:
    Image:          registry.example.com/shop/api:1.4
    State:          Waiting
      Reason:       PodInitializing
Events:
  Type     Reason   Age                From     Message
  ----     ------   ----               ----     -------
  Warning  BackOff  2m (x12 over 5m)   kubelet  Back-off restarting failed container migrate in pod migrate-job-pod-7d9f8b6c5d-x2x9q
"""


def test_an_init_container_whose_executable_is_not_found():
    assert ("executable_not_found", "service/migrate-job-pod") in _top((KUBECTL, {}, INIT_EXEC))


def _sched(msg: str) -> list[tuple[str, str]]:
    rows = f"LAST SEEN   TYPE      REASON             OBJECT                      MESSAGE\n2m          Warning   FailedScheduling   pod/train-6c9f7d8b5-abcde   {msg}\n"
    return _top((KUBECTL, {}, rows))


def test_causes_outside_the_benchmarks_vocabulary():
    assert _sched(
        "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: 3 No preemption victims found."
    )[0] == ("insufficient_extended_resource", "service/train")
    assert _sched("0/2 nodes are available: 2 Too many pods.")[0] == ("node_pod_capacity_full", "service/train")


INGRESS = """Name:             shop
Labels:           <none>
Namespace:        shop
Address:
Ingress Class:    <none>
Default backend:  <default>
Rules:
  Host              Path  Backends
  ----              ----  --------
  shop.example.com
                    /   web:80 (10.244.1.5:8080)
Events:
  Type     Reason  Age   From                      Message
  ----     ------  ----  ----                      -------
  Warning  Sync    1m    nginx-ingress-controller  IngressClass "nginx-internal" not found
"""

NETPOL = """Name:         default-deny-egress
Namespace:    shop
Created on:   2024-03-02 10:00:00 +0000 UTC
Labels:       <none>
Annotations:  <none>
Spec:
  PodSelector:     app=checkout
  Not affecting ingress traffic
  Allowing egress traffic:
    <none> (Selected pods are isolated for egress connectivity)
  Policy Types: Egress
"""


def test_a_missing_ingress_class_and_a_policy_that_denies_egress():
    assert _top((KUBECTL, {}, INGRESS))[0] == ("ingress_class_missing", "service/shop")
    assert _top((KUBECTL, {}, NETPOL))[0] == ("network_policy_denies_egress", "service/checkout")


def test_cpu_throttling_is_named():
    rows = "LAST SEEN   TYPE      REASON              OBJECT               MESSAGE\n1m          Warning   CPUThrottlingHigh   pod/api-7d9f8b6c5d-x2x9q   39% throttling of CPU in namespace shop for container api\n"
    assert ("cpu_throttling", "service/api") in _top((KUBECTL, {}, rows))


NODE = """Name:               worker-2
Roles:              <none>
Labels:             kubernetes.io/hostname=worker-2
Taints:             node.kubernetes.io/memory-pressure:NoSchedule
Unschedulable:      false
Conditions:
  Type             Status  LastHeartbeatTime                 LastTransitionTime                Reason                       Message
  ----             ------  -----------------                 ------------------                ------                       -------
  MemoryPressure   True    Sat, 02 Mar 2024 10:00:00 +0000   Sat, 02 Mar 2024 09:50:00 +0000   KubeletHasInsufficientMemory kubelet has insufficient memory available
  DiskPressure     False   Sat, 02 Mar 2024 10:00:00 +0000   Sat, 02 Mar 2024 09:00:00 +0000   KubeletHasNoDiskPressure     kubelet has no disk pressure
  PIDPressure      False   Sat, 02 Mar 2024 10:00:00 +0000   Sat, 02 Mar 2024 09:00:00 +0000   KubeletHasSufficientPID      kubelet has sufficient PID available
  Ready            True    Sat, 02 Mar 2024 10:00:00 +0000   Sat, 02 Mar 2024 09:00:00 +0000   KubeletReady                 kubelet is posting ready status
Capacity:
  cpu:     4
  pods:    110
Events:   <none>
"""

NODE_DOWN = NODE.replace("MemoryPressure   True ", "MemoryPressure   Unknown").replace(
    "Ready            True    Sat, 02 Mar 2024 10:00:00 +0000   Sat, 02 Mar 2024 09:00:00 +0000   KubeletReady                 kubelet is posting ready status",
    "Ready            Unknown Sat, 02 Mar 2024 10:00:00 +0000   Sat, 02 Mar 2024 09:00:00 +0000   NodeStatusUnknown            Kubelet stopped posting node status.",
)


def test_describe_node_reads_its_conditions():
    assert _top((KUBECTL, {}, NODE))[0] == ("node_memory_pressure", "node/worker-2")
    d = checking()
    d.observe(KUBECTL, {}, NODE_DOWN)
    assert d.ranked()[0].cause == "kubelet_unavailable" and d.checks[0].state.nodes["worker-2"] == "NotReady"


SERVICE = """Name:              payments
Namespace:         shop
Labels:            app=payments
Selector:          app=payment
Type:              ClusterIP
IP:                10.96.12.7
Port:              http  80/TCP
TargetPort:        8080/TCP
Endpoints:         <none>
Session Affinity:  None
Events:            <none>
"""

PVC = """Name:          data-db-0
Namespace:     shop
StorageClass:  fast-ssd
Status:        Pending
Volume:
Capacity:
Access Modes:
VolumeMode:    Filesystem
Events:
  Type     Reason              Age               From                         Message
  ----     ------              ----              ----                         -------
  Warning  ProvisioningFailed  10s (x3 over 1m)  persistentvolume-controller  storageclass.storage.k8s.io "fast-ssd" not found
"""


def test_describe_of_services_and_claims():
    assert _top((KUBECTL, {}, SERVICE))[0] == ("service_selector_mismatch", "service/payments")
    assert _top((KUBECTL, {}, PVC))[0] == ("storage_class_missing", "service/data-db-0")


JOB = """Name:             nightly-report
Namespace:        shop
Selector:         batch.kubernetes.io/controller-uid=1f0c2a9e
Parallelism:      1
Completions:      1
Completion Mode:  NonIndexed
Start Time:       Sat, 02 Mar 2024 02:00:00 +0000
Pods Statuses:    0 Active (0 Ready) / 0 Succeeded / 7 Failed
Pod Template:
  Containers:
   report:
    Image:      registry.example.com/shop/report:2.1
    Command:
      /bin/sh
      -c
      ./report.sh
Events:
  Type     Reason                Age   From            Message
  ----     ------                ----  ----            -------
  Normal   SuccessfulCreate      30m   job-controller  Created pod: nightly-report-x7k2p
  Warning  BackoffLimitExceeded  2m    job-controller  Job has reached the specified backoff limit
"""

DEPLOY = """Name:                   web
Namespace:              shop
Selector:               app=web
Replicas:               3 desired | 1 updated | 3 total | 2 available | 1 unavailable
StrategyType:           RollingUpdate
Pod Template:
  Containers:
   web:
    Image:        registry.example.com/shop/web:9.9
Conditions:
  Type           Status  Reason
  ----           ------  ------
  Available      True    MinimumReplicasAvailable
  Progressing    False   ProgressDeadlineExceeded
Events:          <none>
"""


def test_job_and_deployment_describes_are_not_read_as_a_pod():
    assert (
        kube.describe_kind(JOB) == "job"
        and kube.describe_kind(DEPLOY) == "deployment"
        and kube.describe_kind(INIT_EXEC) == "pod"
    )
    assert _top((KUBECTL, {}, JOB))[0] == ("job_backoff_limit_exceeded", "service/nightly-report")
    assert _top((KUBECTL, {}, DEPLOY))[0] == ("rollout_stuck", "service/web")


def test_a_jobs_pods_map_to_the_job_and_its_live_error_outranks_a_stale_event():
    pods = "NAME                   READY   STATUS   RESTARTS   AGE\nnightly-report-x7k2p   0/1     Error    0          3m\n"
    found = _top(
        (KUBECTL, {}, JOB),
        (KUBECTL, {}, pods),
        (LOGS, {"name": "nightly-report-x7k2p"}, "./report.sh: line 3: syntax error: unexpected end of file\n"),
    )
    assert ("shell_syntax_error", "service/nightly-report") in found[:2]
    d = checking()
    d.observe(KUBECTL, {}, JOB)
    d.observe(KUBECTL, {}, pods)
    assert d.checks[0].state.pods["nightly-report-x7k2p"].workload == "nightly-report"


def test_tables_and_rows_without_a_header():
    d = checking()
    d.observe(
        KUBECTL,
        {},
        "NAME       STATUS     ROLES           AGE   VERSION\ncp-1       Ready      control-plane   40d   v1.29.2\nworker-1   NotReady   <none>          40d   v1.29.2\n",
    )
    assert (
        d.checks[0].state.nodes == {"cp-1": "Ready", "worker-1": "NotReady"}
        and "cp-1" in d.checks[0].state.control_plane
    )
    d.observe(
        KUBECTL,
        {},
        "NAME             STATUS   COMPLETIONS   DURATION   AGE\nnightly-report   Failed   0/1           30m        30m\n",
    )
    assert "nightly-report" in d.checks[0].state.jobs
    d.observe(
        KUBECTL,
        {},
        "api-7d9f8b6c5d-x2x9q   0/1   CrashLoopBackOff   7 (2m ago)   14m\nweb-5c8d7f9b6-q2w3e   1/1   Running   0   14m\n",
    )
    assert d.checks[0].state.pods["api-7d9f8b6c5d-x2x9q"].status == "CrashLoopBackOff"
    assert (
        _top(
            (
                KUBECTL,
                {},
                "NAME   CLASS    HOSTS              ADDRESS   PORTS   AGE\nshop   <none>   shop.example.com             80      5m\n",
            )
        )[0][0]
        == "ingress_class_missing"
    )


def test_events_whose_last_seen_counts_repeats():
    rows = (
        "LAST SEEN               TYPE      REASON    OBJECT                     MESSAGE\n"
        '3m30s (x256 over 58m)   Warning   Failed    pod/api-7d9f8b6c5d-x2x9q   Error: configmap "api-config" not found\n'
    )
    assert _top((KUBECTL, {}, rows))[0] == ("configmap_missing", "service/api")


def test_a_repository_that_does_not_exist_or_needs_a_login_is_a_wrong_reference():
    msg = "Failed to pull image \"shop/api:1.4\": pull access denied for shop/api, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
    assert kube.image_pull_cause(msg)[0] == "incorrect_image_reference"
    assert (
        kube.image_pull_cause('Failed to pull image "r.example.com/a:1": 401 Unauthorized')[0]
        == "missing_image_pull_secret"
    )


@pytest.mark.parametrize(
    ("key", "cause"),
    [
        ("requests.cpu", "namespace_cpu_quota_exceeded"),
        ("limits.memory", "namespace_memory_quota_exceeded"),
        ("requests.storage", "namespace_storage_quota_exceeded"),
        ("persistentvolumeclaims", "namespace_storage_quota_exceeded"),
        ("services.nodeports", "namespace_service_quota_exceeded"),
        ("count/services", "namespace_service_quota_exceeded"),
        ("pods", "namespace_pod_quota_exceeded"),
        ("requests.ephemeral-storage", "namespace_ephemeral_storage_quota_exceeded"),
        ("requests.nvidia.com/gpu", "namespace_extended_resource_quota_exceeded"),
        ("count/deployments.apps", "namespace_object_count_quota_exceeded"),
        ("configmaps", "namespace_object_count_quota_exceeded"),
        ("secrets", "namespace_object_count_quota_exceeded"),
    ],
)
def test_every_quota_kind(key, cause):
    msg = f'pods "x" is forbidden: exceeded quota: q, requested: {key}=1, used: {key}=4, limited: {key}=4'
    assert kube.quota_causes(msg)[0] == cause


def test_catalogue_patterns_do_not_fire_on_healthy_lines():
    healthy = "Successfully pulled image\nStarted container api\nListening on :8080\nconnected to db in 12ms\n"
    for e in catalogue.entries():
        if e.pattern is not None:
            assert not e.pattern.search(healthy), e.cause
    assert re.search("x", "x")


def test_performance_named_by_kind():
    alerts = (
        "status: has_anomalies\nalert_count: 3\nalerts:\n"
        "- type: Service\n  name: cart\n  evidence: ['RESOURCE_SATURATION [memory working set] | Normal=120Mi -> Current=980Mi (+716.7%)']\n"
        "- type: Service\n  name: web\n  evidence: ['LATENCY_DEGRADATION [Slow Response] | web-p90latency: Normal=40ms -> Current=900ms (+2150.0%)']\n"
        "- type: Node\n  name: worker-3\n  evidence: ['NETWORK [packet loss] | Normal=0.0% -> Current=30.0%']\n"
    )
    found = _top(("cloudops.GetAlerts", {}, alerts))
    assert ("pod_memory_pressure", "service/cart") in found and ("pod_network_delay", "service/web") in found
    assert ("node_network_packet_loss", "node/worker-3") in found


def test_the_resource_pushed_furthest_past_its_quota_comes_first():
    msg = (
        'pods "web-1" is forbidden: exceeded quota: compute, requested: requests.memory=256Mi,requests.cpu=2, '
        "used: requests.memory=1Gi,requests.cpu=3, limited: requests.memory=2Gi,requests.cpu=4"
    )
    assert kube.quota_causes(msg) == ["namespace_cpu_quota_exceeded", "namespace_memory_quota_exceeded"]
