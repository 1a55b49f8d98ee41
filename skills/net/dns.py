"""DNS lookups for the dns pack: resolve a name, compare what several resolvers answer, reverse lookups."""

from __future__ import annotations

from typing import Any

import dns.exception
import dns.name
import dns.resolver
import dns.reversename

RECORD_TYPES = ["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "SOA", "PTR"]
"""Record types the pack offers."""


def _resolver(nameserver: str | None, timeout: float) -> dns.resolver.Resolver:
    if nameserver:
        r = dns.resolver.Resolver(configure=False)
        host, port = nameserver, 53
        if nameserver.count(":") == 1:
            host, _, p = nameserver.partition(":")
            port = int(p)
        elif nameserver.startswith("[") and "]:" in nameserver:
            host, _, p = nameserver[1:].partition("]:")
            port = int(p)
        r.nameservers = [host]
        r.port = port
    else:
        r = dns.resolver.Resolver()
    r.timeout = timeout
    r.lifetime = timeout
    return r


def _query(name: str, record_type: str, nameserver: str | None, timeout: float) -> dict[str, Any]:
    r = _resolver(nameserver, timeout)
    where = nameserver or ",".join(r.nameservers) or "system resolver"
    try:
        ans = r.resolve(name, record_type, search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return {"resolver": where, "status": "NXDOMAIN", "answers": []}
    except dns.resolver.NoNameservers as exc:
        return {"resolver": where, "status": "SERVFAIL", "answers": [], "detail": str(exc)[:200]}
    except dns.exception.Timeout:
        return {"resolver": where, "status": "TIMEOUT", "answers": [], "detail": f"no answer within {timeout:g}s"}
    records = sorted(rr.to_text() for rr in ans.rrset) if ans.rrset is not None else []
    chain = [str(rrset.name) for rrset in ans.response.answer if rrset.rdtype == dns.rdatatype.CNAME]
    out: dict[str, Any] = {"resolver": where, "status": "NOERROR" if records else "NODATA", "answers": records}
    if ans.rrset is not None:
        out["ttl"] = ans.rrset.ttl
    if chain:
        out["cname_chain"] = chain
    return out


def resolve(name: str, record_type: str = "A", nameserver: str | None = None, timeout: float = 3.0) -> dict[str, Any]:
    """Resolve `name` (A, AAAA, CNAME, MX, TXT, ...) with the system or a given resolver (ip or ip:port)."""
    return {"name": name, "type": record_type, **_query(name, record_type, nameserver, timeout)}


def compare_resolvers(
    name: str, nameservers: list[str], record_type: str = "A", timeout: float = 3.0
) -> dict[str, Any]:
    """Ask several resolvers the same question and say whether they agree (split-horizon, stale caches)."""
    results = [_query(name, record_type, ns, timeout) for ns in nameservers]
    distinct = {(r["status"], tuple(r["answers"])) for r in results}
    return {"name": name, "type": record_type, "agree": len(distinct) == 1, "results": results}


def reverse_lookup(ip: str, nameserver: str | None = None, timeout: float = 3.0) -> dict[str, Any]:
    """The PTR name(s) of an IP address."""
    rev = dns.reversename.from_address(ip)
    return {"ip": ip, **_query(str(rev), "PTR", nameserver, timeout)}
