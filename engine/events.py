"""The block protocol: every event the engine emits, as frozen pydantic models discriminated by `kind`.

A session's events, serialised one JSON object a line, are both its record in the store and the
wire format for any face. Faces must ignore kinds they do not know (forward compatibility).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from engine.textsafe import display_safe, safe_tree

PROTOCOL_VERSION = 1
"""Bumped when an existing event changes shape; adding a kind does not bump it."""


def utcnow() -> dt.datetime:
    """The current time, timezone-aware UTC (faces render it in local time)."""
    return dt.datetime.now(dt.UTC)


class _Event(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    v: int = PROTOCOL_VERSION
    """Protocol version the event was written with."""
    session_id: str
    """The session this event belongs to."""
    seq: int
    """Position in the session, from 1, without gaps."""
    at: dt.datetime
    """When the engine emitted it (UTC)."""
    turn: int = 0
    """The turn (1-based) it belongs to; 0 for session-level events."""

    @model_validator(mode="before")
    @classmethod
    def _safe_text(cls, data: Any) -> Any:
        # Events are stored, hashed and shown on terminals: no lone surrogates, no escape sequences.
        return safe_tree(data, display_safe) if isinstance(data, dict) else data


ToolStatus = Literal["ok", "error", "partial", "blocked", "denied", "refused", "cancelled"]
"""ok, partial: it ran; error: it ran and failed; refused: the guard did not run it (arguments,
a repeat, a budget, an open breaker); denied: a person said no; blocked: the policy said no."""
Risk = Literal["read", "write", "dangerous"]
"""How much an action can change: read (nothing), write (reversible change), dangerous (hard to undo)."""


class SessionStarted(_Event):
    """A session was created or reopened."""

    kind: Literal["session-started"] = "session-started"
    model: str
    """The model the session talks to (provider/name)."""
    context: str | None = None
    """The kube context, when one is in play."""
    namespace: str | None = None
    """The default namespace."""
    resumed: bool = False
    """True when an existing session was reopened (`--continue`)."""
    read_only: bool = False
    """No write runs in this session (--read-only, the config, or the org policy)."""


class UserMessage(_Event):
    """What the user typed."""

    kind: Literal["user-message"] = "user-message"
    text: str


class AssistantDelta(_Event):
    """A streamed fragment of the assistant's answer (faces append; the final message replaces)."""

    kind: Literal["assistant-delta"] = "assistant-delta"
    text: str
    step: int


class AssistantMessage(_Event):
    """The assistant's complete output for one step: its text and the tool calls it asked for."""

    kind: Literal["assistant-message"] = "assistant-message"
    text: str
    step: int
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    """Each {id, name, arguments} as normalised from the provider (the session's history is rebuilt from these)."""


class StepStarted(_Event):
    """A model step began."""

    kind: Literal["step-started"] = "step-started"
    step: int
    tools: list[str] = Field(default_factory=list)
    """Names of the tools offered to the model at this step."""


class StepFinished(_Event):
    """A model step ended: what it cost."""

    kind: Literal["step-finished"] = "step-finished"
    step: int
    duration_ms: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cost_usd: float = 0.0
    engine_ms: float = 0.0
    """Time the engine itself spent in the step, model and tools excluded."""


class ToolCallStarted(_Event):
    """A tool call was accepted for execution (arguments already validated)."""

    kind: Literal["tool-call-started"] = "tool-call-started"
    call_id: str
    tool: str
    arguments: dict[str, Any]
    risk: Risk = "read"
    step: int = 0


class ToolCallFinished(_Event):
    """A tool call ended, with what the model will read."""

    kind: Literal["tool-call-finished"] = "tool-call-finished"
    call_id: str
    tool: str
    status: ToolStatus
    duration_ms: float
    summary: str = ""
    """One line for the timeline."""
    output: str = ""
    """The scrubbed, trimmed output as the model reads it."""
    output_ref: str | None = None
    """Reference to the full scrubbed output in the store (`recall_detail`)."""
    tokens: int = 0
    """Tokens of `output`."""
    partial: str | None = None
    """Why the result is incomplete, e.g. 'partial: 500 of ≥ 2,140 items'."""
    redactions: int = 0
    """How many values the scrubber replaced."""
    notes: list[str] = Field(default_factory=list)
    """Boundary notes (coercions, dropped nulls) the model also sees."""
    findings: list[str] = Field(default_factory=list)
    """Failure signals the engine's checks read in this output (engine.diagnose), new in it."""
    error_kind: str = ""
    """For an error: timeout, rate-limited, unavailable (worth retrying later), client (the backend
    refused these arguments: the same call fails the same way), schema or internal."""
    step: int = 0


class ToolSetChanged(_Event):
    """The tools offered to the model changed, and why."""

    kind: Literal["toolset-changed"] = "toolset-changed"
    loaded: list[str] = Field(default_factory=list)
    unloaded: list[str] = Field(default_factory=list)
    reasons: dict[str, str] = Field(default_factory=dict)
    """Tool name → why it was loaded ('matched: deploy')."""
    query: str = ""
    """The standalone query used for retrieval."""
    schema_tokens: int = 0
    experience: dict[str, list[str]] = Field(default_factory=dict)
    """Tool name → the past requests whose sessions used it (loaded by experience), nearest first."""


class ApprovalRequested(_Event):
    """The policy wants a human decision before a call runs."""

    kind: Literal["approval-requested"] = "approval-requested"
    request_id: str
    call_id: str
    tool: str
    arguments: dict[str, Any]
    risk: Risk
    decision: Literal["confirm", "approve"]
    """confirm: a safe write that runs after a cancellable countdown; approve: explicit approval."""
    rule: str
    """The policy rule that asked, for people."""
    reason: str = ""
    touches: str = ""
    """What it will change, in one line (older records carried a diff here)."""
    rollback: str = ""
    """The way back."""
    call_hash: str
    """Hash of the exact call; an approval binds to it."""
    expires_at: dt.datetime | None = None
    preview: str = ""
    """The backend's dry run: a unified diff of the live objects against the result ('' when none ran)."""
    objects: list[str] = Field(default_factory=list)
    """The objects the dry run says it touches (Deployment/shop/checkout-api)."""
    preview_note: str = ""
    """What the dry run adds in words ('no change: the live object already matches')."""


class ApprovalResolved(_Event):
    """A human (or the headless policy) answered an approval request."""

    kind: Literal["approval-resolved"] = "approval-resolved"
    request_id: str
    call_id: str
    approved: bool
    by: str
    reason: str = ""


class ContextGauge(_Event):
    """How full the prompt is, by tier."""

    kind: Literal["context-gauge"] = "context-gauge"
    used: int
    budget: int
    window: int
    tiers: dict[str, int] = Field(default_factory=dict)
    dropped: int = 0
    """How many items are no longer held in full."""


class DetailDropped(_Event):
    """Compaction removed or shortened something; it can be recalled by `ref`."""

    kind: Literal["detail-dropped"] = "detail-dropped"
    ref: str
    what: str
    from_step: int = 0
    tokens: int = 0
    action: Literal["summarised", "trimmed", "dropped"] = "dropped"


class PlanProposed(_Event):
    """The model proposed remediation steps that write."""

    kind: Literal["plan-proposed"] = "plan-proposed"
    plan_id: str
    steps: list[dict[str, Any]]
    rationale: str = ""


class CriticVerdict(_Event):
    """The plan critic's judgement of a plan."""

    kind: Literal["critic-verdict"] = "critic-verdict"
    plan_id: str
    verdict: Literal["ok", "simplify", "reject"]
    findings: list[str] = Field(default_factory=list)
    suggested: list[dict[str, Any]] = Field(default_factory=list)


class BudgetUpdate(_Event):
    """Spend so far against the turn and session budgets."""

    kind: Literal["budget-update"] = "budget-update"
    scope: Literal["turn", "session"]
    calls: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    wall_s: float = 0.0
    limits: dict[str, float] = Field(default_factory=dict)


class Notice(_Event):
    """Something the user should know that is not an error (engine ready, model loaded)."""

    kind: Literal["notice"] = "notice"
    text: str
    level: Literal["info", "warning"] = "info"
    topic: str = ""


class FixOffered(_Event):
    """The answer's fix is a call of a write tool this session has, with arguments it could read: a
    face may offer to run it with one key (it goes through the same policy, preview and approval)."""

    kind: Literal["fix-offered"] = "fix-offered"
    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    written: str = ""
    """The call as the answer wrote it."""
    risk: str = "write"


class ErrorEvent(_Event):
    """Something failed; `code` is one of a small typed set."""

    kind: Literal["error"] = "error"
    code: str
    message: str
    retryable: bool = False
    hint: str = ""


class TurnFinished(_Event):
    """A turn ended; `reason` says how."""

    kind: Literal["turn-finished"] = "turn-finished"
    reason: Literal["answered", "cancelled", "step-limit", "budget", "error", "blocked"]
    steps: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    duration_ms: float = 0.0


class UnknownEvent(BaseModel):
    """An event of a kind this version does not know; kept verbatim."""

    model_config = ConfigDict(frozen=True, extra="allow")
    kind: str
    session_id: str
    seq: int
    at: dt.datetime


Event = Annotated[
    SessionStarted
    | UserMessage
    | AssistantDelta
    | AssistantMessage
    | StepStarted
    | StepFinished
    | ToolCallStarted
    | ToolCallFinished
    | ToolSetChanged
    | ApprovalRequested
    | ApprovalResolved
    | ContextGauge
    | DetailDropped
    | PlanProposed
    | CriticVerdict
    | BudgetUpdate
    | Notice
    | FixOffered
    | ErrorEvent
    | TurnFinished,
    Field(discriminator="kind"),
]

EVENT_TYPES: dict[str, type[_Event]] = {
    t.model_fields["kind"].default: t
    for t in Event.__origin__.__args__  # type: ignore[attr-defined]
}
"""Kind → class, for faces and tests."""

_adapter: TypeAdapter[Any] = TypeAdapter(Event)


def to_json(event: BaseModel) -> str:
    """One JSON line (no newline) for an event."""
    return event.model_dump_json()


def from_json(line: str) -> Any:
    """Parse one JSON line back into its event; unknown kinds become `UnknownEvent`."""
    import json

    data = json.loads(line)
    if data.get("kind") not in EVENT_TYPES:
        return UnknownEvent.model_validate(data)
    return _adapter.validate_python(data)
