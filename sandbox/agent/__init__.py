"""The sandbox's node agent: a stand-in kubelet that makes the real API server's pods behave.

It registers 1-3 Nodes, clears their not-ready taint and keeps their heartbeats; it watches the
pods bound to its nodes and moves each container through the lifecycle the active scenario's
rules pick from the live pod spec and cluster objects (Running/Ready, CrashLoopBackOff with
growing restart counts, OOMKilled, ImagePullBackOff, failing readiness probes, config errors),
writing core/v1 Events the way the kubelet does. It serves container logs over HTTPS on the
kubelet port, so `pods/log` works through the API server, and, on loopback, the workloads'
metrics in the Prometheus exposition format (scraped by the sandbox's Prometheus) and a
RabbitMQ-management-shaped API, whose numbers derive from cluster state.

Run by `lantern sandbox up` as `python -m sandbox.agent --home DIR`. Its parts:

    process.Agent      one process: reads the cluster each tick, follows the scenario, drives the rest
      nodes.Nodes          registration, status heartbeats, leases
      pods.Kubelet         each container's lifecycle and the pod status it posts
        events.EventRecorder   core/v1 Events, aggregated as the kubelet does
        logs.ContainerLogs     the lines each container instance writes
      workload.QueueModel  the scenario's message queue (depth from ready producers and consumers)
      metrics.Metrics      the exporters' metrics: kube-state-metrics, cAdvisor, HTTP, RabbitMQ, certificates
    endpoints          the HTTP faces (kubelet logs, metrics, queue) and the scenario's TLS endpoint
"""
