"""The skill-pack schema: what a pack may declare, validated by pydantic.

A pack is one YAML file per integration: a connection (which executor, where, which credential by
name) and a list of actions. Each action's parameters are a small JSON-Schema subset that becomes a
pydantic model (`Action.args_model()`), so arguments are checked before anything runs.
"""

from __future__ import annotations

import importlib
import math
import re
from collections import Counter
from functools import cached_property
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, create_model, field_validator, model_validator

from engine.events import Risk  # one definition of the risk levels: the engine's
from engine.policy.rules import WRITE_METHODS  # likewise the HTTP methods that change state

ExecutorKind = Literal["python", "rest", "graphql", "cli", "mcp", "replay"]
"""Which executor runs a pack's actions."""
ParamType = Literal["string", "integer", "number", "boolean", "array", "object"]
"""The JSON-Schema types a parameter may have."""

_NAME = r"^[A-Za-z][A-Za-z0-9_]*$"
_PACK_NAME = r"^[a-z][a-z0-9_-]*$"
_CHECK_REF = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Param(_Strict):
    """One parameter: a JSON-Schema subset (type, enum, default, bounds, pattern, items)."""

    type: ParamType = "string"
    """JSON type."""
    description: str = ""
    """What the value means, for the model and for people."""
    enum: list[Any] | None = None
    """Allowed values."""
    default: Any = None
    """Value used when the caller leaves it out."""
    minimum: float | None = None
    """Lowest allowed number."""
    maximum: float | None = None
    """Highest allowed number."""
    pattern: str | None = None
    """Regular expression a string must match."""
    items: Param | None = None
    """Element schema of an array."""
    slashes: bool = False
    """A path parameter whose values may hold '/' (a RabbitMQ vhost), sent percent-encoded as one
    segment; any other path parameter with a '/' is refused."""

    @field_validator("pattern")
    @classmethod
    def _pattern_compiles(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
        return v

    def python_type(self) -> Any:
        """The Python annotation this parameter validates as."""
        if self.enum:
            return Literal[tuple(self.enum)]  # type: ignore[misc]
        base: dict[str, Any] = {
            "string": str,
            "integer": int,
            "number": float,
            "boolean": bool,
            "object": dict[str, Any],
        }
        if self.type == "array":
            inner = self.items.python_type() if self.items else Any
            return list[inner]  # type: ignore[valid-type]
        return base[self.type]

    def json_schema(self) -> dict[str, Any]:
        """The parameter as JSON Schema for the model."""
        out: dict[str, Any] = {"type": self.type}
        if self.description:
            out["description"] = self.description
        for key in ("enum", "default", "minimum", "maximum", "pattern"):
            val = getattr(self, key)
            if val is not None:
                out[key] = val
        if self.type == "array":
            out["items"] = self.items.json_schema() if self.items else {}
        return out


class Parameters(_Strict):
    """An action's parameters: always a JSON object with named properties."""

    type: Literal["object"] = "object"
    """Always 'object'."""
    properties: dict[str, Param] = Field(default_factory=dict)
    """Parameter name → schema."""
    required: list[str] = Field(default_factory=list)
    """Names the caller must give."""

    @model_validator(mode="after")
    def _required_known(self) -> Parameters:
        unknown = [r for r in self.required if r not in self.properties]
        if unknown:
            raise ValueError(f"required names unknown parameters: {', '.join(unknown)}")
        for name in self.properties:
            if not re.match(_NAME, name):
                raise ValueError(f"parameter name {name!r} must be letters, digits and underscores")
        return self


class Http(_Strict):
    """How a rest action calls its endpoint; `{param}` placeholders are filled from arguments."""

    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    """HTTP method."""
    path: str
    """Path under the pack's base URL, e.g. /repos/{owner}/{repo}/commits."""
    query: dict[str, Any] = Field(default_factory=dict)
    """Query parameters; a value '{p}' is left out when p is not given."""
    body: Any = None
    """JSON body template (writes)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers."""
    items: str | None = None
    """Where the list of results is in the answer ('' or None: the answer itself when it is a list)."""


class GraphQL(_Strict):
    """How a graphql action queries."""

    query: str
    """The GraphQL document; arguments become its variables."""
    data_path: str | None = None
    """Dotted path of the interesting part of `data`."""


class Pagination(_Strict):
    """How to fetch more than one page, and when to stop."""

    style: Literal["none", "link", "cursor", "page"] = "none"
    """link: RFC 5988 Link rel=next; cursor: a next-cursor field; page: an incrementing page parameter."""
    cursor_param: str = "cursor"
    """Query parameter that carries the cursor."""
    cursor_path: str = "next_cursor"
    """Dotted path of the next cursor in the answer."""
    page_param: str = "page"
    """Query parameter that carries the page number."""
    page_size_param: str | None = None
    """Query parameter for the page size, when the API has one."""
    page_size: int = 100
    """Items per page requested."""
    total_path: str | None = None
    """Dotted path of a total count in the answer, when the API reports one."""
    max_pages: int = Field(default=5, ge=1, le=100)
    """Stop after this many pages and report the result as partial."""
    max_items: int = Field(default=500, ge=1)
    """Stop after this many items and report the result as partial."""


class Cli(_Strict):
    """How a cli action builds its argv: each element is a template, never a shell string."""

    argv: list[str | list[str]]
    """Arguments after the binary; a nested list is included only when all its placeholders have values."""
    mutates: bool = False
    """True when the command changes state (a read action may not set it)."""
    output: Literal["text", "json"] = "text"
    """How to read stdout."""


class Touches(_Strict):
    """The object an action changes, as templates over its parameters ('{name}'): policy rules
    on kind, namespace and name match it."""

    kind: str
    """Kind, literal ('pod') or a parameter ('{kind}')."""
    name: str | None = None
    """Object name, usually '{name}'."""
    namespace: str | None = None
    """Namespace, usually '{namespace}'; ignored for cluster-scoped kinds."""


class Action(_Strict):
    """One thing a pack can do."""

    name: str = Field(pattern=_NAME)
    """Name, unique in the pack (the tool is `pack.name`)."""
    description: str = Field(min_length=8)
    """What it does, written the way an engineer would search for it."""
    parameters: Parameters = Field(default_factory=Parameters)
    """Arguments."""
    risk: Risk = "read"
    """read | write | dangerous."""
    permissions: list[str] = Field(default_factory=list)
    """What the credential or kube user needs (e.g. 'pods/log:get', 'repo:read')."""
    keywords: list[str] = Field(default_factory=list)
    """Extra retrieval words."""
    examples: list[str] = Field(default_factory=list)
    """How an engineer would ask for it."""
    output: list[str] = Field(default_factory=list)
    """Projection: field paths worth keeping, e.g. items[].metadata.name."""
    http: Http | None = None
    """rest: the request."""
    graphql: GraphQL | None = None
    """graphql: the query."""
    cli: Cli | None = None
    """cli: the argv template."""
    function: str | None = None
    """python: dotted path 'module:function'."""
    tool: str | None = None
    """mcp/replay: the server's or recording's tool name."""
    pagination: Pagination = Field(default_factory=Pagination)
    """How to page through results."""
    rollback: str | None = None
    """For writes: how to undo it, shown with the approval."""
    touches: Touches | None = None
    """For writes: the object it changes (default: read from kind/name/namespace arguments)."""
    timeout: float | None = Field(default=None, gt=0)
    """Overrides the connection's timeout."""
    serves: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Read intents of the pack's checks this action answers: intent → the action's arguments, each
    literal or '{arg}', the intent's own argument (describe_pod: {name: '{name}'})."""

    _pack: Pack | None = PrivateAttr(default=None)
    _args_cache: Any = PrivateAttr(default=None)

    @property
    def pack(self) -> Pack:
        """The pack this action belongs to."""
        if self._pack is None:
            raise RuntimeError(f"action {self.name!r} is not attached to a pack")
        return self._pack

    @property
    def qualified_name(self) -> str:
        """`pack.action`, the tool name."""
        return f"{self.pack.name}.{self.name}"

    def json_schema(self) -> dict[str, Any]:
        """Parameters as the JSON Schema the model sees."""
        return {
            "type": "object",
            "properties": {k: p.json_schema() for k, p in self.parameters.properties.items()},
            "required": list(self.parameters.required),
            "additionalProperties": False,
        }

    def args_model(self) -> type[BaseModel]:
        """A pydantic model of the parameters (extra names forbidden)."""
        if self._args_cache is not None:
            return self._args_cache
        fields: dict[str, Any] = {}
        for pname, p in self.parameters.properties.items():
            constraints: dict[str, Any] = {"description": p.description or None}
            if p.minimum is not None:
                constraints["ge"] = p.minimum
            if p.maximum is not None:
                constraints["le"] = p.maximum
            if p.pattern is not None and p.type == "string":
                constraints["pattern"] = p.pattern
            typ = p.python_type()
            if pname in self.parameters.required:
                fields[pname] = (typ, Field(..., **constraints))
            else:
                fields[pname] = (typ | None, Field(default=p.default, **constraints))
        model = create_model(  # type: ignore[call-overload]
            f"{self.name}_args",
            __config__=ConfigDict(extra="forbid", strict=False, regex_engine="python-re"),
            **fields,
        )
        self._args_cache = model
        return model

    def placeholders(self) -> set[str]:
        """Every `{param}` the endpoint templates mention."""
        texts: list[str] = []
        if self.http:
            texts += [self.http.path, *map(str, self.http.query.values()), str(self.http.body or "")]
        if self.cli:
            for a in self.cli.argv:
                texts += a if isinstance(a, list) else [a]
        return {m for t in texts for m in _PLACEHOLDER.findall(t)}


class McpServer(_Strict):
    """Where an MCP server is: a command to launch (stdio) or a URL (streamable HTTP)."""

    command: list[str] | None = None
    """argv of a stdio server."""
    url: str | None = None
    """Streamable HTTP endpoint, e.g. http://127.0.0.1:8000/mcp."""
    env: dict[str, str] = Field(default_factory=dict)
    """Extra environment for a stdio server."""
    discover: bool = True
    """List the server's tools at load and make them actions."""

    @model_validator(mode="after")
    def _one_of(self) -> McpServer:
        if bool(self.command) == bool(self.url):
            raise ValueError("give exactly one of command (stdio) or url (streamable HTTP)")
        return self


_SECRET_NAME = re.compile(
    r"auth|token|secret|passw|pwd|api[-_]?key|apikey|cookie|session|signature|credential|private", re.I
)


def looks_secret(name: str, value: str) -> bool:
    """A literal in a pack that is a secret: named like one, or long and random."""
    if not value or len(value) < 6:
        return False
    if _SECRET_NAME.search(name):
        return True
    n = len(value)
    entropy = -sum(c / n * math.log2(c / n) for c in Counter(value).values())
    return n >= 16 and entropy >= 3.5 and " " not in value


def url_password(url: str | None) -> str | None:
    """The password in a URL's userinfo (https://user:PASSWORD@host), if any."""
    try:
        return urlsplit(url).password if url else None
    except ValueError:
        return None


def redact_url(url: str) -> str:
    """`url` with the password of its userinfo replaced by '***' (for printing)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if not parts.password:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class Connection(_Strict):
    """How the executor reaches the system: kind, address, credential by name, auth scheme."""

    executor: ExecutorKind
    """Which executor runs the actions."""
    base_url: str | None = None
    """rest/graphql: base URL (LANTERN_<PACK>_URL overrides it)."""
    binary: str | None = None
    """cli: the one binary this pack may run."""
    module: str | None = None
    """python: default module for functions given without one."""
    client: Literal["none", "kubernetes"] = "none"
    """python: which client is injected as the first argument."""
    server: McpServer | None = None
    """mcp: the server."""
    credential: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    """Credential name (resolved from keyring or LANTERN_CRED_<NAME>), never a value."""
    credential_optional: bool = False
    """Call without auth when the credential is not set."""
    auth: Literal["none", "bearer", "basic", "header", "token"] = "bearer"
    """How the credential is sent: bearer, basic ('user:password'), header (auth_header: value), token ('token VALUE')."""
    auth_header: str = "Authorization"
    """Header name for auth 'header'."""
    credential_headers: dict[str, str] = Field(default_factory=dict)
    """More headers filled from other credentials: header name → credential name."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Fixed headers."""
    timeout: float = Field(default=20.0, gt=0)
    """Seconds per request or command."""
    retries: int = Field(default=3, ge=0, le=10)
    """Retries on 429/5xx and connection errors."""
    max_retry_after: float = Field(default=30.0, ge=0)
    """Longest Retry-After honoured; longer waits fail with a clear error."""
    verify_tls: bool = True
    """Verify server certificates."""

    def literal_secrets(self) -> list[str]:
        """Secrets written into the pack itself (an auth header's value, a password in base_url or
        an MCP server's URL, a secret-named server env value): scrubbed like resolved credentials."""
        out = [v for k, v in self.headers.items() if looks_secret(k, v)]
        for url in (self.base_url, self.server.url if self.server else None):
            pw = url_password(url)
            if pw:
                out.append(pw)
        if self.server is not None:
            out += [v for k, v in self.server.env.items() if looks_secret(k, v)]
        return out

    def credential_names(self) -> list[str]:
        """Every credential this connection uses."""
        names = [self.credential] if self.credential else []
        return names + [c for c in self.credential_headers.values() if c not in names]


class Pack(_Strict):
    """A skill pack: one integration's connection and actions."""

    name: str = Field(pattern=_PACK_NAME)
    """Pack name (prefix of its tools)."""
    description: str
    """What the integration is."""
    version: str = "1"
    """Pack version."""
    connection: Connection
    """How to reach it."""
    actions: list[Action] = Field(default_factory=list)
    """What it can do."""
    checks: list[Annotated[str, Field(pattern=_CHECK_REF)]] = Field(default_factory=list)
    """The checks that read its outputs ('module:Class', each an engine `Check`): a session with the
    pack loaded runs them, and its actions' `serves` answer the reads they ask for."""

    _source: str = PrivateAttr(default="")

    @field_validator("checks")
    @classmethod
    def _checks_load(cls, refs: list[str]) -> list[str]:
        for ref in refs:
            check_class(ref)
        return refs

    @property
    def source(self) -> str:
        """The file it was loaded from ('' when built in code)."""
        return self._source

    @cached_property
    def by_name(self) -> dict[str, Action]:
        """Actions by name."""
        return {a.name: a for a in self.actions}

    def model_post_init(self, __context: Any) -> None:
        for a in self.actions:
            a._pack = self

    @model_validator(mode="after")
    def _coherent(self) -> Pack:
        seen: set[str] = set()
        kind = self.connection.executor
        if kind in ("rest", "graphql") and not self.connection.base_url:
            raise ValueError(f"connection.base_url is required for executor {kind}")
        if kind == "cli" and not self.connection.binary:
            raise ValueError("connection.binary is required for executor cli")
        if kind == "mcp" and not self.connection.server:
            raise ValueError("connection.server is required for executor mcp")
        for i, a in enumerate(self.actions):
            if a.name in seen:
                raise _ActionError(i, "name", f"duplicate action name {a.name!r}")
            seen.add(a.name)
            need = {
                "rest": "http",
                "graphql": "graphql",
                "cli": "cli",
                "python": "function",
                "mcp": "tool",
                "replay": "tool",
            }[kind]
            if getattr(a, need) is None:
                raise _ActionError(i, need, f"executor {kind} needs '{need}' on every action")
            if kind == "rest" and a.http is not None:
                if a.risk == "read" and a.http.method in WRITE_METHODS:
                    raise _ActionError(
                        i,
                        "risk",
                        f"declared read but calls {a.http.method} {a.http.path}: a write endpoint needs risk write or dangerous",
                    )
            if (
                kind == "graphql"
                and a.graphql is not None
                and a.risk == "read"
                and a.graphql.query.lstrip().startswith("mutation")
            ):
                raise _ActionError(i, "risk", "declared read but runs a GraphQL mutation: use risk write or dangerous")
            if kind == "cli" and a.cli is not None and a.risk == "read" and a.cli.mutates:
                raise _ActionError(i, "risk", "declared read but its command mutates: use risk write or dangerous")
            unknown = a.placeholders() - set(a.parameters.properties)
            if unknown:
                raise _ActionError(i, need, f"template mentions unknown parameters: {', '.join(sorted(unknown))}")
            if a.serves:
                _check_serves(i, a)
        return self


def check_class(ref: str) -> Any:
    """The class a pack's `checks` entry names ('module:Class'): it must have the engine's `Check`
    methods."""
    module, _, name = ref.partition(":")
    try:
        found = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load {ref}: {exc}") from None
    lacking = [m for m in ("read", "weigh", "follow_ups") if not callable(getattr(found, m, None))]
    if lacking:
        raise ValueError(f"{ref} is not a check: it has no {', '.join(lacking)}")
    return found


def _check_serves(index: int, action: Action) -> None:
    """A follow-up read never writes, and calls the action with arguments it takes."""
    if action.risk != "read":
        raise _ActionError(index, "serves", f"a {action.risk} action cannot serve the checks' reads")
    for intent, args in action.serves.items():
        unknown = set(args) - set(action.parameters.properties)
        missing = set(action.parameters.required) - set(args)
        if unknown or missing:
            what = (
                f"unknown parameters {', '.join(sorted(unknown))}"
                if unknown
                else f"no value for {', '.join(sorted(missing))}"
            )
            raise _ActionError(index, "serves", f"{intent}: {what}")


class _ActionError(ValueError):
    """A validation error inside one action; carries where, for line numbers."""

    def __init__(self, index: int, field: str, message: str) -> None:
        super().__init__(message)
        self.index = index
        self.field = field


Action.model_rebuild()
Param.model_rebuild()
