"""Output scrubbing: typed placeholders, counts, known values, infrastructure formats, and `lantern scrub`."""

from __future__ import annotations

import base64
import subprocess
import sys

from engine.guard.partial import detect_partial
from engine.guard.scrub import Scrubber, default_scrubber

S = Scrubber()

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    + "\n".join(["MIIEowIBAAKCAQEAx3k9Qf8vL2mZpT7rW1sY4nB6cD0eF5gH8iJ2kL3mN4oP5qR6"] * 6)
    + "\n-----END RSA PRIVATE KEY-----"
)


def test_typed_placeholders_and_counts():
    text = (
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2lnbmF0dXJlX3ZhbHVl\n"
        "remote: https://ci:glpat-Zx8Qw2Lm4Np6Rt8Vb0Yc@gitlab.example.com/repo.git\n"
        "GITHUB_TOKEN=ghp_R2d2C3poL7Hs9Qw8Er4Ty6Ui1Op3As5Df7Gh\n"
        "aws_access_key_id = AKIAZ7QW4ERT5YUI8OPL\n"
        "DATABASE_URL=postgres://app:Sup3rS3cret!@db.prod:5432/shop\n"
        f"{PEM}\n"
        "slack: xoxb-2048-4096-Ab1Cd2Ef3Gh4Ij5Kl6Mn\n"
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc in the log\n"
    )
    out, counts = S.clean(text)
    for secret in (
        "eyJhbGci",
        "glpat-Zx8",
        "ghp_R2d2",
        "AKIAZ7QW",
        "Sup3rS3cret",
        "MIIEowIBAAK",
        "xoxb-2048",
        "sk_live_4eC",
    ):
        assert secret not in out, secret
    assert "[REDACTED:github-token]" in out and "[REDACTED:private-key]" in out and "[REDACTED:aws-access-key]" in out
    assert counts["private-key"] == 1 and sum(counts.values()) >= 8
    assert "gitlab.example.com/repo.git" in out  # the host stays: the agent needs it


def test_kubeconfig_and_secret_manifest():
    kubeconfig = (
        "users:\n- name: admin\n  user:\n"
        "    client-certificate-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUM4akNDQWRxZ0F3SUJBZ0lJRXhhbXBs\n"
        "    client-key-data: " + base64.b64encode(PEM.encode()).decode() + "\n"
        "    token: 8f2b1c7d9e4a6b3c5d7e9f1a2b4c6d8e0f2a4b6c\n"
    )
    out, counts = S.clean(kubeconfig)
    assert "8f2b1c7d9e4a" not in out and "LS0tLS1CRUdJTiBSU0" not in out
    secret = (
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n"
        "  username: YWRtaW4=\n  password: c3VwZXJzZWNyZXQ=\n"
    )
    out, counts = S.clean(secret)
    assert "c3VwZXJzZWNyZXQ=" not in out and "YWRtaW4=" not in out
    assert "password: [REDACTED:k8s-secret-data]" in out and counts["k8s-secret-data"] == 2
    # a ConfigMap's data is not a secret
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  LOG_LEVEL: debug\n  FEATURE_FLAGS: Y2hlY2tvdXQtdjI=\n"
    assert S.clean(cm)[0] == cm


def test_known_values_are_removed_verbatim():
    out, counts = S.clean("echo 'plainword-not-a-pattern' done", known_values=["plainword-not-a-pattern", "ab"])
    assert out == "echo '[REDACTED:credential]' done" and counts == {"credential": 1}


def test_pii_and_cluster_ips():
    text = "user jane.doe@corp.example.org from 203.0.113.77 called +1 (415) 555-0199; pod 10.244.1.17 node 192.168.49.2; card 4539 1488 0343 6467; iban GB82 WEST 1234 5698 7654 32; ssn 123-45-6789"
    out, counts = S.clean(text)
    assert "jane.doe" not in out and "203.0.113.77" not in out and "555-0199" not in out
    assert "10.244.1.17" in out and "192.168.49.2" in out  # the agent needs cluster IPs
    assert "4539" not in out and "GB82" not in out and "123-45-6789" not in out
    assert set(counts) >= {"email", "ip-address", "phone-number", "card-number", "iban", "us-ssn"}
    assert "10.244.1.17" not in Scrubber(keep_private_ips=False).clean(text)[0]


def test_ordinary_infrastructure_output_is_left_alone():
    text = (
        "NAME                        READY   STATUS             RESTARTS   AGE\n"
        "checkout-7d9f8b6c5d-x2x7q   0/1     CrashLoopBackOff   14         2024-05-01 12:00:00\n"
        "image: registry.k8s.io/pause:3.9  version 1.28.3  uid 3f0c2a9e-1b2d-4c5e-8f70-123456789abc\n"
        "password: ${DB_PASSWORD}\nsecretName: checkout-tls\ntoken: null\n"
        "      /var/run/secrets/tokens from istio-token (rw)\n"
        "ghcr-secret   kubernetes.io/dockerconfigjson   1      12d\n"
        "   at RedisCache.GetAsync(String key, CancellationToken token)\n"
        "    nodePort: 30080  # 30000-32767\n"
        "    Container ID:   containerd://978772827669991456ff50b92025a258a7dcff02e2f0f3fbbd94fdb0c28eedf9\n"
        "I1202 21:17:00.071147 1271314 requestheader_controller.go:186] Shutting down\n"
    )
    out, counts = S.clean(text)
    assert out == text, counts


def test_lantern_scrub_reads_stdin():
    p = subprocess.run(
        [sys.executable, "-c", "from console.cli import main; raise SystemExit(main(['scrub', '--stats']))"],
        input="token=ghp_R2d2C3poL7Hs9Qw8Er4Ty6Ui1Op3As5Df7Gh\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout == "token=[REDACTED:github-token]\n"
    assert '"total": 1' in p.stderr


def test_partial_markers():
    assert (
        detect_partial({"items": list(range(500)), "metadata": {"continue": "x", "remainingItemCount": 1640}})
        == "partial: 500 of ≥ 2,140 items"
    )
    assert detect_partial({"results": [1, 2], "has_more": True}) == "partial: 2 items, more exist (has_more)"
    assert detect_partial({"data": [1], "next": "https://api/x?page=2"}) == "partial: 1 items, more exist (next page)"
    assert detect_partial([1, 2, 3], {"limit": 3}) == "partial: 3 items, more exist (limit 3 reached)"
    assert detect_partial({"items": [1, 2, 3]}, {"limit": 10}) is None
    assert detect_partial(None, declared="HTTP 206") == "partial: HTTP 206"
    assert detect_partial({"items": [1]}, declared="partial: 1 of ≥ 9 items") == "partial: 1 of ≥ 9 items"


def test_an_image_path_with_p_slash_w_in_it_is_not_a_password():
    s = default_scrubber()
    for text in ("image: registry.example.com/shop/web:1.0.0", "ghcr.io/acme/group/worker:2.4"):
        assert s.clean(text, [])[0] == text
    assert "hunter2xyz" not in s.clean("P/W: hunter2xyz!", [])[0]
