"""`lantern bench retrieval-scale --tools N`: index build time and query latency with N actions.

The actions are synthetic but shaped like real packs: systems (kubernetes, aws-ec2, github,
postgres, kafka, …) × resources × verbs, each with a description, keywords and parameters.
Queries are paraphrases of random actions, so the run also reports whether the intended action
came back in the top 10. Latency includes embedding the query (the query cache is emptied before
each timed query) and the full fused pipeline.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

SYSTEMS = [
    ("kubernetes", "Kubernetes cluster"),
    ("aws_ec2", "AWS EC2"),
    ("aws_s3", "AWS S3"),
    ("aws_rds", "AWS RDS"),
    ("aws_iam", "AWS IAM"),
    ("aws_lambda", "AWS Lambda"),
    ("gcp_compute", "Google Compute Engine"),
    ("gcp_gke", "GKE"),
    ("azure_vm", "Azure virtual machines"),
    ("github", "GitHub"),
    ("gitlab", "GitLab"),
    ("jenkins", "Jenkins"),
    ("argocd", "Argo CD"),
    ("terraform", "Terraform Cloud"),
    ("vault", "HashiCorp Vault"),
    ("consul", "Consul"),
    ("prometheus", "Prometheus"),
    ("grafana", "Grafana"),
    ("datadog", "Datadog"),
    ("newrelic", "New Relic"),
    ("sentry", "Sentry"),
    ("pagerduty", "PagerDuty"),
    ("opsgenie", "Opsgenie"),
    ("slack", "Slack"),
    ("jira", "Jira"),
    ("postgres", "PostgreSQL"),
    ("mysql", "MySQL"),
    ("redis", "Redis"),
    ("mongodb", "MongoDB"),
    ("elasticsearch", "Elasticsearch"),
    ("kafka", "Kafka"),
    ("rabbitmq", "RabbitMQ"),
    ("nginx", "NGINX"),
    ("cloudflare", "Cloudflare"),
    ("route53", "Route 53"),
    ("istio", "Istio"),
    ("linkerd", "Linkerd"),
    ("helm", "Helm"),
    ("docker", "Docker registry"),
    ("loki", "Grafana Loki"),
]
RESOURCES = [
    ("instance", "instances", ["instance_id", "region"]),
    ("cluster", "clusters", ["cluster", "region"]),
    ("node", "nodes", ["node"]),
    ("service", "services", ["service", "namespace"]),
    ("deployment", "deployments", ["name", "namespace"]),
    ("pipeline", "pipelines", ["project", "pipeline_id"]),
    ("alert", "alerts", ["alert_id", "severity"]),
    ("incident", "incidents", ["incident_id"]),
    ("dashboard", "dashboards", ["dashboard_uid"]),
    ("user", "users", ["user"]),
    ("role", "roles", ["role"]),
    ("policy", "policies", ["policy_arn"]),
    ("bucket", "buckets", ["bucket"]),
    ("snapshot", "snapshots", ["snapshot_id"]),
    ("queue", "queues", ["queue", "vhost"]),
    ("topic", "topics", ["topic"]),
    ("consumer_group", "consumer groups", ["group"]),
    ("database", "databases", ["database"]),
    ("index", "indices", ["index"]),
    ("certificate", "certificates", ["domain"]),
    ("dns_record", "DNS records", ["zone", "record"]),
    ("secret", "secrets", ["path"]),
    ("release", "releases", ["release", "namespace"]),
    ("image", "images", ["repository", "tag"]),
    ("log_stream", "log streams", ["query", "since"]),
    ("metric", "metrics", ["query", "start", "end"]),
    ("monitor", "monitors", ["monitor_id"]),
    ("ticket", "tickets", ["key"]),
]
VERBS = [
    ("list", "List {plural} in {system}, with status and age", "read"),
    ("get", "Get one {singular} from {system} with its full configuration", "read"),
    ("describe", "Describe a {singular} in {system}: state, recent events and conditions", "read"),
    ("metrics", "Show usage and error metrics of a {singular} in {system} over a time window", "read"),
    ("logs", "Read recent logs and errors of a {singular} in {system}", "read"),
    ("history", "Change history of a {singular} in {system}: who changed what and when", "read"),
    ("create", "Create a new {singular} in {system}", "write"),
    ("update", "Update the settings of a {singular} in {system}", "write"),
    ("restart", "Restart a {singular} in {system}", "write"),
    ("scale", "Scale a {singular} in {system} up or down", "write"),
    ("delete", "Delete a {singular} from {system}", "dangerous"),
    ("rollback", "Roll a {singular} in {system} back to its previous version", "dangerous"),
]
PARAPHRASE = [
    "can you {verb} the {singular} in {system}",
    "I need the {plural} from {system}",
    "{verb} {system} {singular} please",
    "what is going on with the {singular} in {system}",
    "how do I {verb} a {singular} on {system}",
]


def synthetic_docs(n: int, seed: int = 7) -> list:
    """N synthetic actions as Docs (deterministic for a seed)."""
    from engine.retrieval.index import Doc

    combos = [(s, r, v) for s in SYSTEMS for r in RESOURCES for v in VERBS]
    rnd = random.Random(seed)
    rnd.shuffle(combos)
    if n > len(combos):
        raise ValueError(f"at most {len(combos)} synthetic actions, asked for {n}")
    docs = []
    for (sys_id, sys_name), (single, plural, params), (verb, tmpl, _risk) in combos[:n]:
        desc = tmpl.format(plural=plural, singular=single.replace("_", " "), system=sys_name)
        docs.append(
            Doc(
                id=f"{sys_id}.{verb}_{single}",
                kind="tool",
                name=f"{sys_id}.{verb}_{single}",
                description=desc + ".",
                pack=sys_id,
                keywords=(sys_name.lower(), plural, verb),
                params=tuple(params),
            )
        )
    return docs


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `lantern bench retrieval-scale`."""
    p.add_argument("--tools", type=int, default=10_000, help="number of synthetic actions (≤ 13,440)")
    p.add_argument("--queries", type=int, default=200, help="timed queries")
    p.add_argument(
        "--threads", type=int, default=None, help="embedder threads (default: every core, as the console uses)"
    )
    p.add_argument("--index", type=Path, default=None, help="index directory (default: a fresh temp dir)")
    p.add_argument("--json", action="store_true", help="print JSON")


def run(args: argparse.Namespace) -> int:
    """Build the index from scratch, re-open it warm, then time queries."""
    import json

    from bench.retrieval import load_average
    from engine.retrieval.embed import Embedder
    from engine.retrieval.index import HybridIndex
    from engine.retrieval.rewrite import strip_filler
    from engine.retrieval.search import HybridSearch

    docs = synthetic_docs(args.tools)
    tmp = None
    path = args.index
    if path is None:
        tmp = tempfile.mkdtemp(prefix="lantern-scale-")
        path = Path(tmp)
    try:
        emb = Embedder(threads=args.threads)
        t0 = time.perf_counter()
        rep = HybridIndex(path, embedder=emb).sync(docs)
        build_s = time.perf_counter() - t0
        emb2 = Embedder(threads=args.threads)
        t0 = time.perf_counter()
        index = HybridIndex(path, embedder=emb2)
        warm = index.sync(docs)
        warm_s = time.perf_counter() - t0
        search = HybridSearch(index)
        rnd = random.Random(11)
        lat: list[float] = []
        parts: dict[str, list[float]] = {"embed": [], "dense": [], "bm25": [], "rest": []}
        hits = 0
        search.search("warm up the embedder", k=10)
        for _ in range(args.queries):
            d = rnd.choice(docs)
            sys_id, action = d.id.split(".", 1)
            verb, single = action.split("_", 1)
            sys_name = next(name for s, name in SYSTEMS if s == sys_id)
            plural = next(p for s, p, _ in RESOURCES if s == single)
            q = rnd.choice(PARAPHRASE).format(
                verb=verb, singular=single.replace("_", " "), plural=plural, system=sys_name
            )
            # The baseline from the same run: embedding the query alone, then one dense and one
            # BM25 ranking over the index, then the whole pipeline (cache emptied before each).
            emb2._qcache.clear()
            t = time.perf_counter()
            qv = emb2.query(strip_filler(q) or q)
            parts["embed"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            index.dense(qv, k=100)
            parts["dense"].append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            index.bm25(q, k=100)
            parts["bm25"].append((time.perf_counter() - t) * 1000)
            emb2._qcache.clear()
            t = time.perf_counter()
            res = search.search(q, k=10)
            lat.append((time.perf_counter() - t) * 1000)
            parts["rest"].append(lat[-1] - parts["embed"][-1])
            hits += d.id in [h.id for h in res]

        def pct(xs: list[float], p: float) -> float:
            xs = sorted(xs)
            return round(xs[min(len(xs) - 1, int(len(xs) * p))], 2) if xs else 0.0

        out = {
            "tools": len(docs),
            "build_s": round(build_s, 2),
            "embedded": rep.embedded,
            "warm_open_s": round(warm_s, 3),
            "warm_embedded": warm.embedded,
            "query_p50_ms": round(statistics.median(lat), 2),
            "query_p99_ms": pct(lat, 0.99),
            "breakdown_p50_ms": {k: round(statistics.median(v), 2) for k, v in parts.items()},
            "breakdown_p99_ms": {k: pct(v, 0.99) for k, v in parts.items()},
            "target_in_top10": round(hits / max(len(lat), 1), 3),
            "queries": len(lat),
            "load_average": load_average(),
        }
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(out, indent=1))
    else:
        print(
            f"{out['tools']} actions · build {out['build_s']}s ({out['embedded']} embedded) · warm open {out['warm_open_s']}s "
            f"({out['warm_embedded']} embedded)\nquery p50 {out['query_p50_ms']} ms · p99 {out['query_p99_ms']} ms "
            f"(embedding included, {out['queries']} queries) · intended action in top 10: {out['target_in_top10']:.0%}"
        )
        b50, b99 = out["breakdown_p50_ms"], out["breakdown_p99_ms"]
        print(
            "where the time goes, p50 / p99 ms: "
            + " · ".join(f"{k} {b50[k]} / {b99[k]}" for k in b50)
            + f"  (embed: the query alone through e5; dense, bm25: one ranking each over {out['tools']} actions; "
            f"rest: the pipeline minus the embedding) · load average {out['load_average']}"
        )
    return 0
