"""The dns and tls packs (python executor) against a real DNS server and a real TLS server on 127.0.0.1."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import threading
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from skills.loader import load_packs
from skills.registry import pack_tools

ZONES = {
    "a": {"api.shop.test.": ["10.0.0.5"], "db.shop.test.": ["10.0.0.9"]},
    "b": {"api.shop.test.": ["10.0.0.6"], "db.shop.test.": ["10.0.0.9"]},
}


def _serve_dns(zone: dict[str, list[str]], sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data, addr = sock.recvfrom(4096)
        except TimeoutError:
            continue
        except OSError:
            return
        q = dns.message.from_wire(data)
        resp = dns.message.make_response(q)
        name = str(q.question[0].name)
        if name in zone and q.question[0].rdtype == dns.rdatatype.A:
            resp.answer.append(dns.rrset.from_text(name, 60, "IN", "A", *zone[name]))
        elif name not in zone:
            resp.set_rcode(dns.rcode.NXDOMAIN)
        resp.flags |= dns.flags.AA
        sock.sendto(resp.to_wire(), addr)


@pytest.fixture(scope="module")
def resolvers() -> Iterator[dict[str, str]]:
    stop = threading.Event()
    out = {}
    socks = []
    for key, zone in ZONES.items():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        threading.Thread(target=_serve_dns, args=(zone, s, stop), daemon=True).start()
        out[key] = f"127.0.0.1:{s.getsockname()[1]}"
    yield out
    stop.set()
    for s in socks:
        s.close()


@pytest.fixture(scope="module")
def tools():
    return {t.name: t for t in pack_tools(load_packs().packs)}


async def test_resolve_and_nxdomain(resolvers, tools):
    out = await tools["dns.resolve"].handler({"name": "api.shop.test", "nameserver": resolvers["a"]})
    assert out.status == "ok" and out.data["answers"] == ["10.0.0.5"] and out.data["status"] == "NOERROR"
    missing = await tools["dns.resolve"].handler({"name": "nope.shop.test", "nameserver": resolvers["a"]})
    assert missing.data["status"] == "NXDOMAIN"


async def test_compare_resolvers_finds_the_disagreement(resolvers, tools):
    out = await tools["dns.compare_resolvers"].handler(
        {"name": "api.shop.test", "nameservers": [resolvers["a"], resolvers["b"]]}
    )
    assert out.data["agree"] is False
    assert [r["answers"] for r in out.data["results"]] == [["10.0.0.5"], ["10.0.0.6"]]
    same = await tools["dns.compare_resolvers"].handler(
        {"name": "db.shop.test", "nameservers": [resolvers["a"], resolvers["b"]]}
    )
    assert same.data["agree"] is True


async def test_unanswering_resolver_times_out_as_a_finding(tools):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        out = await tools["dns.resolve"].handler(
            {"name": "api.shop.test", "nameserver": f"127.0.0.1:{s.getsockname()[1]}", "timeout": 0.5}
        )
    finally:
        s.close()
    assert out.data["status"] == "TIMEOUT"


def _cert(cn: str, key, issuer_name, issuer_key, days_from: int, days_to: int, ca: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    b = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=days_from))
        .not_valid_after(now + dt.timedelta(days=days_to))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


def _pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@pytest.fixture(scope="module")
def expired_tls_server(tmp_path_factory) -> Iterator[int]:
    d = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = _cert("Test CA", ca_key, ca_name, ca_key, -400, 3000, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _cert("api.shop.test", key, ca_name, ca_key, -374, -9)
    (d / "chain.pem").write_bytes(_pem(leaf, ca))
    (d / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "chain.pem", d / "key.pem")
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    stop = threading.Event()

    def serve() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

    threading.Thread(target=serve, daemon=True).start()
    yield srv.getsockname()[1]
    stop.set()
    srv.close()


async def test_endpoint_certificate_chain_and_expiry(expired_tls_server, tools):
    out = await tools["tls.check_endpoint_certificate"].handler(
        {"host": "127.0.0.1", "port": expired_tls_server, "server_name": "api.shop.test"}
    )
    assert out.status == "ok", out.text
    d = out.data
    assert d["verified"] is False and d["verify_error"]
    leaf = d["chain"][0]
    assert leaf["status"] == "expired" and -10 < leaf["days_left"] < -8
    assert leaf["sans"] == ["api.shop.test"] and "Test CA" in leaf["issuer"]
    assert len(d["chain"]) == 2 and d["chain"][1]["subject"] == "CN=Test CA"


async def test_unreachable_endpoint_is_an_error(tools):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    out = await tools["tls.check_endpoint_certificate"].handler({"host": "127.0.0.1", "port": port, "timeout": 1})
    assert out.status == "error" and "refused" in out.text.lower()


def test_pem_chain_parsing_reports_expiry():
    from skills.net.tls import parse_pem_chain

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "soon.test")])
    soon = _cert("soon.test", key, name, key, -80, 5)
    (info,) = parse_pem_chain(_pem(soon))
    assert info["status"] == "expires soon" and info["self_signed"] is True and info["key"] == "EC secp256r1"
