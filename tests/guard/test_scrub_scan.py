"""The one-pass scan finds what the rules alone find; phones by libphonenumber; cluster addresses kept."""

from __future__ import annotations

import pytest

from engine.guard import scan
from engine.guard.scrub import Scrubber

S = Scrubber()

MIXED = (
    "GITHUB_TOKEN=ghp_R2d2C3poL7Hs9Qw8Er4Ty6Ui1Op3As5Df7Gh\n"
    "Events:\n  Warning  Failed  3m  kubelet  Failed to pull image: 401 Unauthorized\n"
    "contact: +44 20 7946 0958, or jane@corp.example.org, from 203.0.113.77\n"
    "db: postgres://app:Sup3rS3cret!@db.prod:5432/shop — naïve ünïcode line\n"
    "card 4539 1488 0343 6467 ssn 123-45-6789\n"
)


def _spans(s: Scrubber, text: str) -> list[tuple[int, int, str]]:
    return [(f.start, f.end, f.type) for f in s.find(text)]


def test_the_one_pass_scan_finds_what_running_every_rule_finds(monkeypatch):
    fast = _spans(S, MIXED * 3)
    assert S._scanner.accelerated
    slow_scanner = scan.Scanner.__new__(scan.Scanner)
    slow_scanner.specs, slow_scanner._db, slow_scanner._always = S._scanner.specs, None, []
    monkeypatch.setattr(S, "_scanner", slow_scanner)
    assert _spans(S, MIXED * 3) == fast
    assert {t for _, _, t in fast} >= {
        "github-token",
        "phone-number",
        "email",
        "ip-address",
        "url-password",
        "card-number",
        "us-ssn",
    }


def test_a_long_text_is_read_in_windows_and_misses_nothing():
    filler = "I1202 21:17:00.071147 1271314 controller.go:186] synced 10.244.1.17 in 12ms\n" * 400
    text = filler + MIXED + filler
    out, counts = S.clean(text)
    assert "ghp_R2d2" not in out and "Sup3rS3cret" not in out and "7946 0958" not in out
    assert "10.244.1.17" in out and counts.get("ip-address") == 1


@pytest.mark.parametrize(
    "text",
    [
        "Phone:\n467 3395",
        "mobile: 99 577450",
        "Desk: 5403926876",
        "tel. 0378 3549890",
        "call +1-541-754-3010 x123",
        "(415) 555-0199",
    ],
)
def test_phone_numbers_by_label_or_libphonenumber(text):
    assert "phone-number" in S.clean(text)[1], text


@pytest.mark.parametrize(
    "text",
    [
        "took 5403926876 ns",
        "2024-05-01 12:00:00",
        "ports 30000-32767",
        "version 1.28.3",
        "5533 119 Countess Close",
        "restarts 12 (3m ago) 14 15",
    ],
)
def test_numbers_that_are_not_phones_stay(text):
    assert S.clean(text)[0] == text


def test_cluster_addresses_are_evidence_unless_the_org_masks_them():
    text = "pod 10.244.1.17 svc 172.20.0.10 node 192.168.49.2 link 169.254.169.254 pods 44.10.0.5 client 203.0.113.77"
    out, _ = S.clean(text)
    for ip in ("10.244.1.17", "172.20.0.10", "192.168.49.2", "169.254.169.254"):
        assert ip in out
    assert "203.0.113.77" not in out and "44.10.0.5" not in out
    assert "44.10.0.5" in Scrubber(cluster_cidrs=["44.10.0.0/16"]).clean(text)[0]
    masked, _ = Scrubber(keep_private_ips=False).clean(text)
    assert "10.244.1.17" not in masked and "192.168.49.2" not in masked


def test_gitleaks_rules_come_in_as_data():
    from engine.guard.rulesets.port_gitleaks import python_regex

    assert python_regex(r"\b(LTAI(?i)[a-z0-9]{20})(?:x|$)") == r"\b(LTAI(?i:[a-z0-9]{20}))(?:x|$)"
    assert python_regex(r"\b(pat[[:alnum:]]{14})") == r"\b(pat[a-zA-Z0-9]{14})"
    ids = {r.id for r in S.rules}
    assert {"age-secret-key", "anthropic-api-key", "sendgrid-api-token", "doppler-api-token"} <= ids
    key = "AGE-SECRET-KEY-1" + "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L" * 2
    out, counts = S.clean(f"identity: {key[:74]}\n")
    assert "AGE-SECRET-KEY-1QPZ" not in out and counts


@pytest.mark.parametrize(
    "text",
    [
        'level=info msg="bound" pod="boutique/paymentservice-869f9f96cd-qkds4" node="worker-2"',
        "secret_key_id: 3f0c2a9e-1b2d-4c5e-8f70-1234567890ab",
        "token_sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        'image: "registry.example.io/team/payments-api:v2.31.4"',
    ],
)
def test_known_false_positive_shapes_stay(text):
    assert S.clean(text)[0] == text


def test_a_quoted_high_entropy_string_goes():
    out, counts = S.clean('signing = "q8Xf2LmZ7rTb9VwK3nYp6HsJ4dGc1aEuQo5iR0tBvN"')
    assert counts.get("high-entropy-string") == 1 or counts.get("secret") == 1, counts
