"""Output scrubbing: credentials and personal data replaced by typed placeholders, and counted.

The rules are data (engine/guard/rules.yaml, ported from CredSweeper and gitleaks, both MIT);
this module compiles them, runs each only where the one-pass scan finds a candidate, checks
candidate values (entropy, Luhn, IBAN mod-97, placeholder words) and replaces the union of all
spans in one pass. Known credential values (what the executor injected) are replaced verbatim
first, whatever their shape.

IP addresses: private, loopback, link-local, CGNAT and unspecified addresses, and the cluster's pod
and service CIDRs (`cluster_cidrs`), are kept (the agent needs pod, service and node IPs to
investigate); public addresses are redacted as personal data (client IPs in access logs).
`Scrubber(keep_private_ips=False)` redacts them all, for an org that wants them masked.

Speed: one Hyperscan pass over the text (engine/guard/scan.py) says which rules may match and
where; only those run, with `re`, on windows around their candidates. Phone numbers are decided by
shape, a label before them (Phone:, tel, mobile) and libphonenumber's `is_possible_number`.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from engine.guard.known import find_known
from engine.guard.scan import Scanner, Spec

RULES_PATH = Path(__file__).with_name("rules.yaml")
"""The shipped rule set."""

PLACEHOLDER = "[REDACTED:{}]"
"""Replacement text; the type names the rule family (github-token, password, email ...)."""

_STOP_VALUES = {
    "none",
    "null",
    "nil",
    "true",
    "false",
    "yes",
    "no",
    "string",
    "str",
    "int",
    "bool",
    "required",
    "optional",
    "undefined",
    "empty",
    "default",
    "password",
    "passwd",
    "secret",
    "token",
    "value",
    "example",
    "changeme",
    "your_password",
    "yourpassword",
    "mypassword",
    "placeholder",
    "redacted",
    "hidden",
    "masked",
    "xxxx",
    "xxxxx",
    "xxxxxx",
    "xxxxxxxx",
    "****",
    "********",
    "dummy",
    "test",
    "self",
    "this",
    "input",
    "text",
    "type",
    "name",
    "key",
    "auth",
    "bearer",
    "basic",
    "public",
    "private",
    "secure",
    "protected",
    "private_key",
    "public_key",
    "api_key",
    "access_token",
    "function",
    "return",
    "object",
    "array",
    "list",
    "dict",
    "char",
    "byte",
    "bytes",
    "env",
}


@dataclass(frozen=True)
class Finding:
    """One span to replace: [start, end) in the text and its placeholder type."""

    start: int
    end: int
    type: str
    category: str
    """secret | pii | known."""


@dataclass
class _Rule:
    id: str
    regex: re.Pattern[str]
    group: int | str
    keywords: tuple[str, ...]
    check: str
    category: str
    block: bool
    whole_text: bool
    """Matches may span lines: run on the whole text, not on keyword lines."""
    numbers: bool = False
    """Numeric personal data: run only around runs of digits (phones, cards, SSNs, IPs)."""
    hs: str = ""
    """A Hyperscan-compatible candidate shape whose every match is checked ('' = the rule itself)."""
    prefilter: str = ""
    """A cheaper Hyperscan expression that must match before the rule runs ('' = the rule itself)."""
    min_entropy: float = 0.0
    """The value's least Shannon entropy, bits per character (gitleaks' `entropy`)."""


def shannon(value: str) -> float:
    """Shannon entropy in bits per character."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _classes(v: str) -> int:
    return sum(
        (
            any(c.isupper() for c in v),
            any(c.islower() for c in v),
            any(c.isdigit() for c in v),
            any(not c.isalnum() for c in v),
        )
    )


def _placeholderish(v: str) -> bool:
    low = v.lower().strip("\"'`")
    if not low or low in _STOP_VALUES or "redacted" in low:
        return True
    if low[0] in "$%{<[*" or low.startswith("&lt;") or "{{" in low or "${" in low:
        return True
    if len(set(low)) <= 2:  # xxxx, ****, 0000, ....
        return True
    return False


_EXAMPLE_MARKS = (
    "example",
    "xxxxx",
    "123456789",
    "abcdef",
    "sample",
    "dummy",
    "fake",
    "placeholder",
    "your_",
    "your-",
    "<your",
)


_ALWAYS = {
    "aws-presigned-url",
    "bearer-token",
    "basic-auth",
    "url-password",
    "private-key",
    "kubeconfig-credential",
    "k8s-secret-data",
    "password",
    "aws-secret-key",
}


_REPEAT = re.compile(r"([^A0])\1{5}")
_WORDS = re.compile(r"(?:^|[-_])[a-z]{3,}(?=[-_]|$)")


def _exampleish(v: str) -> bool:
    """Test values rather than live credentials: EXAMPLE, xxxxx, 123456, fedcba, ffffff, or prose.

    A generated token has no long runs of one character (other than the zero padding 'A'/'0'
    some formats carry), no counting sequences, and no run of dictionary-like words.
    """
    low = v.lower()
    if any(m in low for m in _EXAMPLE_MARKS) or "123456" in low or "fedcba" in low:
        return True
    if _REPEAT.search(v):
        return True
    return len(_WORDS.findall(v)) >= 4


def _b64decode(v: str) -> bytes:
    import base64
    import binascii

    s = re.sub(r"[^A-Za-z0-9+/]", "", v)
    s = s[: len(s) - len(s) % 4]
    try:
        return base64.b64decode(s, validate=False)
    except (binascii.Error, ValueError):
        return b""


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_DATE = re.compile(r"^(?:\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4})$")
_IDENT_CALL = re.compile(r"^[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+$|^[A-Za-z_]\w*\($")
_PRIVATE_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "100.64.0.0/10",
        "0.0.0.0/8",
        "255.0.0.0/8",
        "224.0.0.0/4",
    )
]


_PRIVATE_PREFIXES = (
    ("10.", "192.168.", "127.", "169.254.", "0.")
    + tuple(f"172.{i}." for i in range(16, 32))
    + tuple(f"100.{i}." for i in range(64, 128))
)
"""Leading octets of the kept private ranges (a fast path before ipaddress parses the rest)."""


class Scrubber:
    """Finds credentials and personal data in text and replaces them with typed placeholders."""

    def __init__(
        self,
        rules_path: str | Path | None = None,
        *,
        pii: bool = True,
        keep_private_ips: bool = True,
        cluster_cidrs: Iterable[str] = (),
    ) -> None:
        self.rules = _load_rules(str(rules_path or RULES_PATH), pii)
        """Compiled rules, secrets first."""
        self.keep_private_ips = keep_private_ips
        """Keep RFC 1918 / loopback / link-local / CGNAT addresses (the agent needs cluster IPs)."""
        self.cluster_nets = [ipaddress.ip_network(c, strict=False) for c in cluster_cidrs]
        """The cluster's pod and service CIDRs: kept like private addresses (evidence, not personal data)."""
        self._scanner = _scanner(str(rules_path or RULES_PATH), pii)

    # -- public API -----------------------------------------------------------------------------
    def clean(self, text: str, known_values: Iterable[str] = ()) -> tuple[str, dict[str, int]]:
        """Scrub `text`; returns (scrubbed text, {placeholder type: count})."""
        if not text:
            return text, {}
        findings = self.find(text, known_values)
        if not findings:
            return text, {}
        out: list[str] = []
        pos = 0
        counts: Counter[str] = Counter()
        for f in findings:
            out.append(text[pos : f.start])
            out.append(PLACEHOLDER.format(f.type))
            counts[f.type] += 1
            pos = f.end
        out.append(text[pos:])
        return "".join(out), dict(counts)

    def find(self, text: str, known_values: Iterable[str] = ()) -> list[Finding]:
        """Every span to replace, merged so that none overlap, in text order."""
        # Known values in any form they leak in (encoded, split over lines, cut short): engine.guard.known
        spans: list[Finding] = [Finding(a, b, "credential", "known") for a, b in find_known(text, known_values)]
        spans.extend(self._rule_spans(text))
        return _merge(spans)

    def _rule_spans(self, text: str) -> list[Finding]:
        """The spans of every rule, each run only where the one-pass scan says it may match."""
        spans: list[Finding] = []
        for i, windows in sorted(self._scanner.candidates(text).items()):
            rule = self.rules[i]
            if windows is None and rule.numbers:
                windows = _number_windows(text)
            if windows is None:
                matches: Iterable[re.Match[str]] = rule.regex.finditer(text)
            else:
                matches = (m for a, b in windows for m in rule.regex.finditer(text, a, b))
            for m in matches:
                spans.extend(self._spans_of(rule, m, text))
        return spans

    def _spans_of(self, rule: _Rule, m: re.Match[str], text: str) -> list[Finding]:
        """The finding a match makes once its value passes the rule's checks (none when it fails)."""
        if rule.block:
            return self._block_values(text, m, rule)
        try:
            start, end = m.span(rule.group)
        except IndexError:
            start, end = m.span()
        if start < 0 and isinstance(rule.group, int):  # another alternative's group holds the value
            start, end = next((m.span(g) for g in range(1, (m.re.groups or 0) + 1) if m.span(g)[0] >= 0), (-1, -1))
        if start < 0 or end <= start:
            return []
        value = text[start:end]
        if rule.check and not self._check(rule.check, value, m, text):
            return []
        if rule.min_entropy and (shannon(value) < rule.min_entropy or _placeholderish(value)):
            return []
        # Vendor-format tokens in documentation are EXAMPLEs; headers, passwords and keys are always removed.
        if rule.category == "secret" and not rule.check and rule.id not in _ALWAYS and _exampleish(value):
            return []
        return [Finding(start, end, rule.id, rule.category)]

    # -- checks ---------------------------------------------------------------------------------
    def _check(self, check: str, v: str, m: re.Match[str], text: str) -> bool:
        """A rule's own test of a match (entropy, Luhn, a real key body...); unknown checks pass."""
        fn = _CHECKS.get(check)
        return fn(self, v, m, text) if fn is not None else True

    def _block_values(self, text: str, m: re.Match[str], rule: _Rule) -> list[Finding]:
        """Kubernetes Secret `data:` blocks: redact each value, keep the keys."""
        window = text[max(0, m.start() - 4000) : m.end() + 4000]
        if not re.search(r"kind:\s*[\"']?Secret\b|\"kind\"\s*:\s*\"Secret\"", window):
            return []
        out = []
        start = m.start("value")
        for line in re.finditer(r"^[ \t]+[\w.-]+:[ \t]*(?P<v>\S.*?)[ \t]*$", m.group("value"), re.M):
            v = line.group("v")
            if v in ("|", ">", "|-", ">-"):
                continue
            out.append(Finding(start + line.start("v"), start + line.end("v"), "k8s-secret-data", rule.category))
        return out


_PHONE_LABEL = re.compile(
    r"(?:phone|\btel\b|tel\.|mobile|\bcell|\bfax|\bdesk|\bcall|contact|\bsms|whatsapp|\bph\b|\bph\.)[^\d\n]{0,20}$"
)
_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN", "AU", "BR", "JP")
"""Regions a number without a country code is tried in (libphonenumber: is it a possible number there)."""


def _phone(v: str, m: re.Match[str], text: str) -> bool:
    """A phone number by shape, label and libphonenumber; dates, times, versions and ranges are not."""
    digits = re.sub(r"\D", "", re.split(r"x|ext", v)[0])
    if not 7 <= len(digits) <= 15 or _DATE.match(v) or re.match(r"^\d{4}-\d{2}-\d{2}", v):
        return False
    if re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", v):  # an IPv4 address
        return False
    if _PHONE_LABEL.search(text[max(0, m.start() - 30) : m.start()].lower()):
        return True  # "Phone: 467 3395": the label says what the digits are
    if v.isdigit():
        return False  # bare digits are ids, sizes and timestamps unless labelled
    groups = re.findall(r"\d+", v)
    if len(groups) == 2 and "-" in v and min(len(g) for g in groups) >= 4:  # 30000-32767: a range or an id
        return False
    # "5533 119 Countess Close": a house number and a street, not a phone
    if not re.search(r"[+(]", v) and len(groups) == 2 and re.match(r"\s+[A-Za-z]", text[m.end() : m.end() + 3]):
        return False
    return _possible_phone(v)


def _possible_phone(v: str) -> bool:
    import phonenumbers

    number = re.split(r"\s?(?:x|ext\.?)\s?\d", v)[0]
    for region in (None,) if number.startswith("+") else _PHONE_REGIONS:
        try:
            if phonenumbers.is_possible_number(phonenumbers.parse(number, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_ID_KEY = re.compile(
    r"(?i)(?:^|[_.-])(?:id|uid|uuid|guid|name|ref|version|hash|sha\d*|md5|digest|checksum|commit|etag)$"
)
_HEX_DIGEST = re.compile(r"(?:[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}|[0-9A-F]{32}|[0-9A-F]{40}|[0-9A-F]{64})")


def _not_secret_shape(v: str, var: str) -> bool:
    """Known false-positive shapes: a UUID or a hex digest under a key that names an id or a hash
    (key_id, token_uid, secret_hash), and a digest that says what it is (sha256:...)."""
    if (_UUID.fullmatch(v) or _HEX_DIGEST.fullmatch(v)) and _ID_KEY.search(var):
        return True
    return v.lower().startswith(("sha256:", "sha1:", "sha512:", "md5:"))


def _high_entropy_b64(v: str) -> bool:
    """detect-secrets' base64 entropy test (4.5 bits), on strings that mix cases and digits and are
    not paths, identifiers, hex digests or UUIDs."""
    if _UUID.fullmatch(v) or re.fullmatch(r"[0-9a-fA-F_-]+", v) or _exampleish(v) or _placeholderish(v):
        return False
    if v.count("/") >= 2 or re.fullmatch(r"[A-Za-z]+(?:[_-][A-Za-z]+)*", v):
        return False
    # generated keys mix upper case, lower case and digits; names (pods, images, hosts) are lower case
    if not (re.search(r"[A-Z]", v) and re.search(r"[a-z]", v) and re.search(r"\d", v)):
        return False
    return shannon(v) >= 4.5


_NUMBER_RUN = re.compile(r"\d[\d .()+\-x/]{5,}")


def _number_windows(text: str) -> list[tuple[int, int]]:
    """Spans around runs of digits and separators holding at least 4 digits (fewer cannot be personal data).

    One cheap pass replaces four expensive ones; the margin lets each rule's boundary checks see
    the characters around the run (lookbehinds see before `pos`; lookaheads need `endpos` room).
    """
    out: list[tuple[int, int]] = []
    n = len(text)
    for m in _NUMBER_RUN.finditer(text):
        a, b = m.span()
        if sum(ch.isdigit() for ch in text[a:b]) < 4:
            continue
        a, b = max(0, a - 4), min(n, b + 4)
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


def _merge(spans: list[Finding]) -> list[Finding]:
    if not spans:
        return []
    rank = {"known": 0, "secret": 2, "pii": 3}
    # At the same start: known values, then Secret-manifest values (their type says most), then longest.
    spans.sort(
        key=lambda f: (f.start, 1 if f.type == "k8s-secret-data" else rank.get(f.category, 4), -(f.end - f.start))
    )
    out = [spans[0]]
    for f in spans[1:]:
        last = out[-1]
        if f.start < last.end:
            if f.end > last.end:  # extend rather than leak the tail of an overlapping secret
                out[-1] = Finding(last.start, f.end, last.type, last.category)
            continue
        out.append(f)
    return out


_FLAGS = {"i": re.I, "m": re.M, "s": re.S}


@lru_cache(maxsize=8)
def _load_rules(path: str, pii: bool) -> list[_Rule]:
    """The rules of `path`, then those of the rule sets it includes (secrets first, then PII)."""
    data: dict[str, Any] = yaml.safe_load(Path(path).read_text())
    sources = [(path, data)]
    for inc in data.get("include") or []:
        p = Path(path).parent / inc
        sources.append((str(p), yaml.safe_load(p.read_text()) or {}))
    out: list[_Rule] = []
    for category in ("secrets", "pii") if pii else ("secrets",):
        for src, d in sources:
            out.extend(_rule(src, category, i, r) for i, r in enumerate(d.get(category) or []))
    return out


def _rule(path: str, category: str, i: int, r: dict[str, Any]) -> _Rule:
    flags = 0
    for ch in r.get("flags", ""):
        flags |= _FLAGS[ch]
    try:
        rx = re.compile(r["regex"], flags)
    except re.error as exc:
        raise ValueError(f"{path}: {category}[{i}] ({r.get('id')}): bad regex: {exc}") from None
    group = r.get("group", "value")
    if isinstance(group, int):
        group = group if 0 <= group <= rx.groups else 0
    elif group not in rx.groupindex:
        group = 0
    return _Rule(
        id=r["id"],
        regex=rx,
        group=group,
        keywords=tuple(k.lower() for k in r.get("keywords", [])),
        check=r.get("check", ""),
        category="secret" if category == "secrets" else "pii",
        block=bool(r.get("block")),
        whole_text=r.get("scope") == "text" or not r.get("keywords"),
        numbers=r.get("scope") == "numbers",
        hs=r.get("hs", ""),
        prefilter=r.get("prefilter", ""),
        min_entropy=float(r.get("min_entropy", 0.0)),
    )


@lru_cache(maxsize=8)
def _scanner(path: str, pii: bool) -> Scanner:
    """The one-pass scanner of a rule set (compiled once per process)."""
    rules = _load_rules(path, pii)
    return Scanner(
        [
            Spec(
                r.regex.pattern,
                r.hs,
                _flag_letters(r.regex.flags),
                r.keywords,
                r.whole_text and not r.numbers,
                r.prefilter,
            )
            for r in rules
        ]
    )


def _flag_letters(flags: int) -> str:
    return "".join(ch for ch, f in _FLAGS.items() if flags & f)


_default: Scrubber | None = None


def default_scrubber() -> Scrubber:
    """A shared Scrubber with the shipped rules."""
    global _default
    if _default is None:
        _default = Scrubber()
    return _default


# -- the rules' checks: is this match really a secret or personal data? -----------------------


def _check_entropy(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    return not _placeholderish(v) and shannon(v) >= 3.0


def _check_pem(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    hm = re.match(r"-----BEGIN[^\n]*?-----", v)
    head, body = (hm.group(), v[hm.end() :]) if hm else ("", v)
    if re.search(r"FAKE|EXAMPLE|DUMMY|EMPTY|SAMPLE", head):
        return False
    body = re.sub(r"-----END.*", "", body, flags=re.S)
    joined = "".join(re.findall(r"[A-Za-z0-9+/=]{16,}", body))
    # a key body is one base64 run: no ellipsis, no prose between its lines
    return len(joined) >= 48 and "..." not in body


def _check_b64_pem(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    return b"ENCRYPTED" not in _b64decode(v)


def _check_b64_pem_strict(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    raw = _b64decode(v)
    return b"PRIVATE KEY-----" in raw and b"ENCRYPTED" not in raw


def _check_jwk(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    return bool(re.search(r'"(?:d|k|p|q|dp|dq|qi)"\s*:\s*"[A-Za-z0-9_-]{16,}"', v))


def _check_b64_entropy(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    return _high_entropy_b64(v)


def _check_not_placeholder(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    return not _placeholderish(v)


def _check_basic(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    return len(v) >= 8 and not _placeholderish(v) and _classes(v) >= 2


def _check_password(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    quoted = bool(m.groupdict().get("q"))
    v = v.strip("\"'`()")
    if len(v) < 4 or _placeholderish(v) or (not quoted and _IDENT_CALL.match(v)) or "(" in v:
        return False
    if v.lower().startswith(
        ("http", "os.", "process.", "env.", "getenv", "sys.", "config.", "settings.", "self.", "this.")
    ):
        return False
    return _classes(v) >= 2 or (len(v) >= 12 and shannon(v) >= 3.2)


def _check_secret(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    quoted = bool(m.groupdict().get("q"))
    v = v.strip("\"'`()")
    if len(v) < 6 or _placeholderish(v) or (not quoted and _IDENT_CALL.match(v)):
        return False
    if _not_secret_shape(v, m.groupdict().get("var") or ""):
        return False
    if v.lower().startswith(
        ("http", "os.", "process.", "env.", "getenv", "sys.", "config.", "settings.", "self.", "this.")
    ):
        return False
    if re.fullmatch(r"[a-z]+(?:[_-][a-z]+)*", v):  # words and identifiers: key: my-config
        return False
    if re.fullmatch(r"[A-Z][A-Z_]+", v) and len(v) < 16:  # constants: token: AUTH_TOKEN
        return False
    if re.fullmatch(r"[A-Z]?[a-z]+(?:[A-Z][a-z]+)*", v):  # type and class names: CancellationToken
        return False
    if len(v) >= 16:
        return shannon(v) >= 3.0 and _classes(v) >= 2
    return _classes(v) >= 2 and shannon(v) >= 2.5


def _check_email(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    if re.search(r"://[^\s/@:]*:$", text[max(0, m.start() - 200) : m.start()]):
        return False  # user:password@host in a URL: the url-password rule takes the password only
    local, _, domain = v.rpartition("@")
    return bool(local) and not domain.lower().endswith((".png", ".jpg", ".svg", ".gif", ".local", ".svc", ".internal"))


def _check_luhn(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    digits = re.sub(r"\D", "", v)
    if not 12 <= len(digits) <= 19 or len(set(digits)) < 3 or not _luhn(digits):
        return False
    # epoch timestamps in s/ms/us/ns pass Luhn one time in ten: not card numbers
    if len(digits) in (10, 13, 16, 19) and re.match(r"1[5-9]", digits) and digits == v:
        return False
    return True


def _check_iban(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    s = v.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    r = s[4:] + s[:4]
    try:
        return int("".join(str(int(c, 36)) for c in r)) % 97 == 1
    except ValueError:
        return False


def _check_ssn(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    a, g, s = v.split("-")
    return a not in ("000", "666") and not a.startswith("9") and g != "00" and s != "0000"


def _check_ipv4(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    if sc.keep_private_ips and v.startswith(_PRIVATE_PREFIXES):
        return False  # the common case in cluster output, decided without parsing
    try:
        ip = ipaddress.ip_address(v)
    except ValueError:
        return False
    if sc.keep_private_ips and any(ip in n for n in (*_PRIVATE_NETS, *sc.cluster_nets)):
        return False
    return True


def _check_phone(sc: Scrubber, v: str, m: re.Match[str], text: str) -> bool:
    return _phone(v, m, text)


_CHECKS: dict[str, Callable[[Scrubber, str, re.Match[str], str], bool]] = {
    "entropy": _check_entropy,
    "pem": _check_pem,
    "b64_pem": _check_b64_pem,
    "b64_pem_strict": _check_b64_pem_strict,
    "jwk": _check_jwk,
    "b64_entropy": _check_b64_entropy,
    "not_placeholder": _check_not_placeholder,
    "basic": _check_basic,
    "password": _check_password,
    "secret": _check_secret,
    "email": _check_email,
    "luhn": _check_luhn,
    "iban": _check_iban,
    "ssn": _check_ssn,
    "ipv4": _check_ipv4,
    "phone": _check_phone,
}
