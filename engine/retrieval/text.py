"""Text helpers for retrieval: identifier splitting, query tokens, stopwords, clause splitting.

Tool names arrive as `snake_case`, `kebab-case`, `CamelCase` and `pack.action`; users type
words. Both sides go through `split_identifiers` so "getPodLogs", "get_pod_logs" and
"get pod logs" meet on the same terms in the BM25 index.
"""

from __future__ import annotations

import re

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEP = re.compile(r"[_\-./:]+")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9_\-./:]*")
_ALNUM = re.compile(r"[a-z0-9]+")

STOPWORDS = frozenset(
    """a an the and or but if then else of to in on at by for with about from into onto over under
    is are was were be been being am do does did done doing have has had having i me my we us our
    you your he him his she her it its they them their this that these those there here what which
    who whom whose when where why how can could would should will shall may might must please
    just also too very really some any all each every so such than as not no nor only own same
    let lets let's get got need needs want wants like ok okay hey hi thanks thank yes yeah sure now
    again still one ones other another more most much many few bit kind sort lot lots something
    anything everything maybe perhaps actually basically quickly help check look see show give
    tell find i'm i'd i'll i've we're we'd we'll we've you're it's that's what's there's""".split()
)
"""Words that carry no retrieval signal in on-call requests (filler and function words)."""


def split_identifier(word: str) -> list[str]:
    """Split one identifier on snake/kebab/dot separators and CamelCase humps, lowercased."""
    if word.isalnum() and (word.islower() or word.isdigit()):
        return [word]  # a plain word, most of any text: nothing to split
    parts: list[str] = []
    for chunk in _SEP.split(word):
        if not chunk:
            continue
        parts.extend(p.lower() for p in _CAMEL.split(chunk) if p)
    return parts


def split_identifiers(text: str) -> str:
    """Rewrite every identifier in `text` as its parts plus the joined form.

    "k8s.getPodLogs" → "k8s get pod logs getpodlogs": the parts match natural words, the joined
    form still matches a query that names the identifier exactly.
    """
    out: list[str] = []
    for m in _WORD.finditer(text):
        w = m.group(0).strip("_-./:")
        if not w:
            continue
        parts = split_identifier(w)
        out.extend(parts)
        if len(parts) > 1:
            out.append("".join(parts))
    return " ".join(out)


def terms(text: str, *, drop_stopwords: bool = True) -> list[str]:
    """Lowercased word terms of `text` after identifier splitting (stopwords dropped by default)."""
    ts = _ALNUM.findall(split_identifiers(text))
    if drop_stopwords:
        ts = [t for t in ts if t not in STOPWORDS and len(t) > 1]
    return ts


_SUFFIXES = ("ing", "ed", "es", "s")


def stem(word: str) -> str:
    """A light English stem, enough to meet inflections of one verb: restarted, restarting → restart."""
    w = word.lower()
    for suf in _SUFFIXES:
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            w = w[: -len(suf)]
            break
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiousl":
        w = w[:-1]  # "stopped" → "stopp" → "stop"
    return w


_DISCOURSE = frozenset("ok okay so now then and also alright right well hey hi please first next".split())
IMPERATIVES = frozenset(
    """add allow apply block bounce bring bump cancel change check clean clear close comment cordon
    create delete deploy describe disable drain drop edit enable evict find fix flush get give go
    grab increase kill leave let lift list look lower make mark merge move mute note notify open
    page pause pin ping post pull purge push put raise reboot recycle reduce re-run rerun reload
    remove replace reply report reset resize restart restore resume revert roll rollback rotate
    run scale send set show silence start stop suspend switch take tell terminate trigger undo
    uncordon unmute unpause update upgrade wake warn write back nuke kick shut snooze wipe cycle
    announce""".split()
)
"""Common English command verbs; with the catalogue's own verbs they tell a command's first word."""


_PARTICLES = frozenset("back out up down off over".split())
_SENTENCE = re.compile(r"(?<=[.;!?])\s+")
_READING = frozenset("check look show see find get give help list describe".split())
"""Verbs that ask for information ("check the pods"): they name no change, and they open the
names of read tools (get_pod_logs, check_endpoint_certificate), so a command phrase leaves them out."""
_READING_PHRASAL = frozenset("pull up|bring up|look up|dig up|call up".split("|"))
"""Phrasal verbs that mean "show" ("pull up the configmap"): reading, like _READING."""
_ASKING = _READING | {"tell", "let"}
"""…and with "me"/"us" after them these ask a question ("tell me why…", "let me see…");
"tell #incidents…" and "let the team know" stay commands."""


_ADDRESSED = re.compile(r"\s*#[a-z][\w-]*\s*:\s+\S", re.I)
"""A message that opens with a channel and a colon is addressed to it ("#incidents: rolled back")."""


def _opening_words(text: str) -> list[str]:
    words = [w.strip(".,!;:'\"()").lower() for w in text.strip().split()]
    words = [w for w in words if w]
    while words and words[0] in _DISCOURSE:
        words.pop(0)
    return words


def command_phrases(text: str, verbs: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """The verb phrases of the request's commands ("yeah. roll orders-api back to 56" → ["roll
    back"], "known issue. shut it up for 2h" → ["shut up"], "tell #incidents …" → ["tell"],
    "#incidents: rolled back" → ["post"]); none for questions and reports. A command is a sentence
    or clause that opens with a command verb (after discourse fillers); a particle within the next
    three words completes a phrasal verb."""
    out: list[str] = []
    if _ADDRESSED.match(text):
        out.append("post")  # "#db-oncall: disk at 96%, need a dba": a message addressed to a channel
    for sentence in _SENTENCE.split(text.strip()):
        if sentence.strip().endswith("?"):
            continue
        for part in dict.fromkeys([sentence, *_CLAUSE.split(sentence)]):
            words = _opening_words(part or "")
            if not words or (words[0] not in IMPERATIVES and words[0] not in verbs):
                continue
            if len(words) > 1 and words[1] in ("me", "us") and words[0] in _ASKING:
                continue  # "tell me why…", "show me the logs": a question put as a command
            particle = next((w for w in words[1:4] if w in _PARTICLES), "")
            if f"{words[0]} {particle}" in _READING_PHRASAL:
                continue
            phrase = " ".join(w for w in (words[0], particle) if w and w not in _READING)
            if phrase and phrase not in out:
                out.append(phrase)
    return out


def is_report(text: str, verbs: frozenset[str] | set[str] = frozenset()) -> bool:
    """True when a request reads as a question or a report of a symptom, not a command.

    "is the ledger statefulset healthy?", "the reports job failed", "payments-api pods keep
    restarting" ask or report; "restart cache-0 first", "now move everything off it", "tell the
    channel" command. The test is the first word after discourse fillers (ok, now, so…): a
    trailing question mark, or a first word that is no command verb (IMPERATIVES, or `verbs`,
    the catalogue's own), opens a question or a statement about something; but a request that
    holds a command in any sentence or clause ("yeah thats it. roll it back") is a command.
    """
    t = text.strip()
    if command_phrases(t, verbs):
        return False  # "yeah that's it. roll orders-api back": a command after a remark
    if t.endswith("?"):
        return True
    words = _opening_words(t)
    if not words:
        return False
    first = words[0]
    return first not in IMPERATIVES and first not in verbs


_CLAUSE = re.compile(
    r"(?:[.;!?]\s+|,\s*(?:and\s+|then\s+|also\s+|plus\s+)?|\s+(?:and then|and also|as well as|and|then|also|plus|after that|afterwards)\s+)",
    re.IGNORECASE,
)


def clauses(text: str, *, min_terms: int = 2) -> list[str]:
    """Split a request into the separate needs it states ("do X and find Y" → two clauses).

    Fragments too short to stand alone are merged into their neighbour, so "beef, tomatoes and
    garlic" stays one clause.
    """
    raw = [c.strip() for c in _CLAUSE.split(text) if c and c.strip()]
    out: list[str] = []
    for c in raw:
        if out and len(terms(c)) < min_terms:
            out[-1] = out[-1] + " " + c
        elif not out or len(terms(out[-1])) >= min_terms:
            out.append(c)
        else:
            out[-1] = out[-1] + " " + c
    return out or [text]


_VALUE_TYPES: list[tuple[re.Pattern[str], str, bool]] = [
    (
        re.compile(r"-?\d{1,3}\.\d{2,}\s*°?\s*[NS]?\s*,?\s*(?:and\s+)?-?\d{1,3}\.\d{2,}"),
        "latitude longitude coordinates location",
        True,
    ),
    (re.compile(r"\b(?:lat|latitude|longitude|coordinates?)\b", re.I), "latitude longitude coordinates location", True),
    (re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.]+\b"), "email address", True),
    (re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.I), "url link website domain", True),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b"), "ip address", True),
    (
        re.compile(r"\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|net|org|io|dev|internal|local|cloud)\b(?::\d+)?", re.I),
        "host hostname domain",
        True,
    ),
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}\b|\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+\d{1,2}(?:st|nd|rd|th)?\b|\b\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b",
            re.I,
        ),
        "date time from start end",
        False,
    ),
    (re.compile(r"\b(?:zip|postal|postcode)\b", re.I), "postal code zip", True),
    (re.compile(r"\b(?:PR|pull request)\s*#?\d+|#\d+\b", re.I), "pull request number", True),
    (re.compile(r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b"), "commit sha", True),
    (re.compile(r"\b(?:USD|EUR|GBP|JPY|CHF|CAD|AUD|INR|CNY|BTC|ETH)\b"), "currency", True),
    (re.compile(r"\b\d+(?:\.\d+)?\s*(?:ms|s|m|h|d|days?|hours?|minutes?)\b", re.I), "duration since window", False),
    (
        re.compile(
            r"\b(?:last|past|previous)\s+(?:\d+\s*|few\s+|couple\s+of\s+)?(?:min(?:ute)?s?|hours?|days?|weeks?)\b|\bsince when\b|\bover time\b",
            re.I,
        ),
        "start end range",
        False,
    ),
    (re.compile(r"(?<![\w&])#[a-z][\w-]*", re.I), "channel", True),
    (
        re.compile(
            r"\b[a-z_:][\w:]*\{[^{}]*[=~]\s*\"|\b(?:rate|irate|increase|histogram_quantile|topk|absent)\s*\(|\b(?:sum|avg|max|min|count)\s+by\s*\(",
            re.I,
        ),
        "promql expression",
        True,
    ),
    (
        re.compile(r"\b(?:avg|sum|min|max|count|p\d\d)(?:\(last_\w+\))?:[a-z_][\w]*(?:\.[\w]+)+", re.I),
        "datadog metric query",
        True,
    ),
]
"""(pattern, the words it stands for, exact): an exact type's syntax says which kind of parameter
takes it (a `#channel`, an email, a SHA); a loose one (a date, a duration) fits many tools."""


def value_types(text: str) -> str:
    """Words for the kinds of values a request carries (coordinates, email, URL, IP, date, PR, SHA…).

    A tool that can take the request's values as arguments is more likely needed, so these words
    are matched against parameter names and descriptions ("42.1, -71.3" → latitude longitude).
    """
    return " ".join(w for _, w, _ in typed_mentions(text))


def typed_mentions(text: str) -> list[tuple[str, str, bool]]:
    """(the value as written, words, exact) for each kind of value the request carries, in table
    order, once each."""
    out: list[tuple[str, str, bool]] = []
    for pat, words, exact in _VALUE_TYPES:
        m = pat.search(text)
        if m and all(words != w for _, w, _ in out):
            out.append((m.group(0).strip(), words, exact))
    return out
