"""`lantern scrub`: read text on stdin, write it scrubbed of credentials and personal data."""

from __future__ import annotations

import argparse
import json
import sys
import time

from engine.guard.scrub import Scrubber


def configure(p: argparse.ArgumentParser) -> None:
    """Arguments of `lantern scrub`."""
    p.add_argument("--no-pii", action="store_true", help="credentials only; leave emails, phones, IPs, cards")
    p.add_argument("--all-ips", action="store_true", help="also redact private/cluster IP addresses")
    p.add_argument("--stats", action="store_true", help="print counts by type and throughput on stderr")
    p.add_argument(
        "--known",
        action="append",
        default=[],
        metavar="VALUE",
        help="a credential value to remove verbatim (repeatable)",
    )


def run(args: argparse.Namespace) -> int:
    """Scrub stdin to stdout."""
    scrubber = Scrubber(pii=not args.no_pii, keep_private_ips=not args.all_ips)
    data = sys.stdin.buffer.read()
    text = data.decode("utf-8", errors="replace")
    t0 = time.perf_counter()
    out, counts = scrubber.clean(text, known_values=args.known)
    dt = time.perf_counter() - t0
    sys.stdout.write(out)
    sys.stdout.flush()
    if args.stats:
        mbps = len(data) / 1e6 / dt if dt > 0 else 0.0
        print(
            json.dumps(
                {"redactions": counts, "total": sum(counts.values()), "bytes": len(data), "mb_s": round(mbps, 2)}
            ),
            file=sys.stderr,
        )
    return 0
