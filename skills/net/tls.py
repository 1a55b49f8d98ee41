"""TLS certificate checks for the tls pack: a live endpoint's chain and expiry, and a Kubernetes TLS secret."""

from __future__ import annotations

import base64
import datetime as dt
import socket
import ssl
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def cert_info(cert: x509.Certificate) -> dict[str, Any]:
    """Subject, issuer, validity, days left, SANs and key of one certificate."""
    not_after = cert.not_valid_after_utc
    not_before = cert.not_valid_before_utc
    days_left = (not_after - _now()).total_seconds() / 86400
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(v) for v in sans.get_values_for_type(x509.DNSName)] + [
            str(v) for v in sans.get_values_for_type(x509.IPAddress)
        ]
    except x509.ExtensionNotFound:
        names = []
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        key_desc = f"RSA {key.key_size}"
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key_desc = f"EC {key.curve.name}"
    else:
        key_desc = type(key).__name__
    status = (
        "expired"
        if days_left < 0
        else ("not yet valid" if not_before > _now() else ("expires soon" if days_left < 14 else "valid"))
    )
    return {
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "not_before": not_before.isoformat(),
        "not_after": not_after.isoformat(),
        "days_left": round(days_left, 1),
        "status": status,
        "self_signed": cert.subject == cert.issuer,
        "sans": names,
        "key": key_desc,
        "serial": format(cert.serial_number, "x"),
    }


def check_endpoint(host: str, port: int = 443, server_name: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """Connect to host:port, read the certificate chain it presents, and say whether it verifies."""
    sni = server_name or host
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with ctx.wrap_socket(sock, server_hostname=sni) as tls:
            version = tls.version()
            chain_der: list[bytes] = []
            getter = getattr(tls, "get_unverified_chain", None) or getattr(
                getattr(tls, "_sslobj", None), "get_unverified_chain", None
            )
            if getter is not None:
                for c in getter() or []:
                    chain_der.append(c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
            if not chain_der:
                leaf = tls.getpeercert(binary_form=True)
                chain_der = [leaf] if leaf else []
    chain = [cert_info(x509.load_der_x509_certificate(d)) for d in chain_der]
    verify_error = None
    vctx = ssl.create_default_context()
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as sock,
            vctx.wrap_socket(sock, server_hostname=sni),
        ):
            pass
    except ssl.SSLCertVerificationError as exc:
        verify_error = exc.verify_message or str(exc)
    except (ssl.SSLError, OSError) as exc:
        verify_error = f"{type(exc).__name__}: {exc}"
    leaf = chain[0] if chain else {}
    return {
        "endpoint": f"{host}:{port}",
        "sni": sni,
        "tls_version": version,
        "verified": verify_error is None,
        "verify_error": verify_error,
        "expires": leaf.get("not_after"),
        "days_left": leaf.get("days_left"),
        "chain": chain,
    }


def parse_pem_chain(pem: bytes) -> list[dict[str, Any]]:
    """Every certificate in a PEM bundle, leaf first as stored."""
    return [cert_info(c) for c in x509.load_pem_x509_certificates(pem)]


def check_tls_secret(kube: Any, name: str, namespace: str = "default") -> dict[str, Any]:
    """A kubernetes.io/tls secret's certificate chain: subject, SANs, expiry, whether the key matches."""
    secret = kube.core.read_namespaced_secret(name, namespace)
    data = secret.data or {}
    if "tls.crt" not in data:
        return {"secret": f"{namespace}/{name}", "type": secret.type, "error": "the secret has no tls.crt key"}
    pem = base64.b64decode(data["tls.crt"])
    chain = parse_pem_chain(pem)
    key_match = None
    if "tls.key" in data:
        from cryptography.hazmat.primitives import serialization

        try:
            key = serialization.load_pem_private_key(base64.b64decode(data["tls.key"]), password=None)
            leaf = x509.load_pem_x509_certificates(pem)[0]
            pub = serialization.PublicFormat.SubjectPublicKeyInfo
            key_match = key.public_key().public_bytes(
                serialization.Encoding.PEM, pub
            ) == leaf.public_key().public_bytes(serialization.Encoding.PEM, pub)
        except (ValueError, TypeError):
            key_match = False
    leaf_info = chain[0] if chain else {}
    return {
        "secret": f"{namespace}/{name}",
        "type": secret.type,
        "status": leaf_info.get("status"),
        "expires": leaf_info.get("not_after"),
        "days_left": leaf_info.get("days_left"),
        "key_matches_certificate": key_match,
        "chain": chain,
    }
