"""The dispatch pipeline (design step 5): every tool call crosses the untrusted boundary here.

A call passes a chain of stages, each `stage(state, next)` (Starlette's middleware shape): a
stage may finish the call itself (a refusal, a block, a denial) or hand it on and act on what
comes back.

    resolve → arguments → repeats → budgets → breakers → read-only → policy → approval
    → record (audit, breakers, budgets, ToolCallFinished) → execute → post-process
      (scrub, partial, expected fields, diagnose, blob, trim, tokens)

The model never decides anything here: no tool changes a policy or approves, and tool output
is only ever data (text in it that claims an approval changes nothing). A call a human denied
is not asked again in the same session: the identical call (same tool and arguments hash) is
refused with the earlier denial, so a model that retries cannot wear the human down.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from engine import events as ev
from engine.guard.args import ArgumentRefused, check_args
from engine.guard.breakers import DETAIL_CHARS, Breakers, Budgets, Failure, classify
from engine.guard.partial import detect_partial
from engine.guard.scrub import Scrubber, default_scrubber
from engine.loop import ApprovalAnswer, TurnCancelled
from engine.models.base import ToolCall
from engine.policy.audit import AuditLog, call_hash, canonical
from engine.policy.rules import Action, Decision, Policy, decide, effective_risk, resolve_targets
from engine.textsafe import safe_tree, unicode_safe
from engine.tools import Preview, PreviewFailed, Tool, ToolOutput, as_output

if TYPE_CHECKING:
    from engine.loop import TurnContext

TIMEOUT_GRACE_S = 5.0
"""How much longer than an action's declared timeout the dispatcher waits for its handler."""
OUTPUT_CAP = 4000
"""Characters of a tool's output the model reads at first (the context builder may trim further)."""


@dataclass
class CallState:
    """One call on its way through the stages: what each stage learned, for the ones after it."""

    call: ToolCall
    tool: Tool | None
    ctx: TurnContext
    t0: float = field(default_factory=time.perf_counter)
    args: dict[str, Any] = field(default_factory=dict)
    """The arguments after validation, defaults and coercion."""
    notes: list[str] = field(default_factory=list)
    """Notes for the model on the result (coercions, redactions, breaker state)."""
    hash: str = ""
    """The call's hash (tool + canonical arguments): approvals and repeats bind to it."""
    args_json: str = ""
    """The arguments as audited (scrubbed)."""
    risk: str = "read"
    """read | write | dangerous | unknown, from the declared risk, the HTTP method and the verb."""
    backend: str | None = None
    """What the breakers count failures against."""
    decision: Decision | None = None
    approved_by: str = ""
    ran: bool = False
    """The handler was started (the breakers then record its outcome instead of releasing)."""
    out: ToolOutput | None = None
    failure: Failure | None = None
    wall_s: float = 0.0
    text: str = ""
    """The scrubbed output (whole: stored as a blob, read by the checks)."""
    shown: str = ""
    """What the model reads (trimmed)."""
    redactions: int = 0
    partial: str | None = None
    findings: list[str] = field(default_factory=list)
    output_ref: str | None = None
    tokens: int = 0

    @property
    def shown_risk(self) -> str:
        return self.risk if self.risk in ("read", "write", "dangerous") else "dangerous"

    @property
    def tool_name(self) -> str:
        return self.tool.name if self.tool is not None else self.call.name


Next = Callable[[CallState], AsyncIterator[Any]]
Stage = Callable[[CallState, Next], AsyncIterator[Any]]


def _failure_hint(data: Any) -> str | None:
    """An executor's own word on why a call failed (timeout, unavailable, client)."""
    v = data.get("failure") if isinstance(data, dict) else None
    return v if v in ("timeout", "unavailable", "client") else None


def _status_code(data: Any) -> int | None:
    if isinstance(data, dict):
        for k in ("status_code", "status", "http_status", "code"):
            v = data.get(k)
            if isinstance(v, int) and not isinstance(v, bool) and 100 <= v <= 599:
                return v
    return None


def _chain(stages: list[Stage], terminal: Next) -> Next:
    """`stages` around `terminal`, the first outermost."""
    run = terminal
    for stage in reversed(stages):
        run = (lambda st, nxt: lambda s: st(s, nxt))(stage, run)
    return run


@runtime_checkable
class SharedApprover(Protocol):
    """An approver many people answer through (a server's faces): an answer not bound to the
    request, or from someone who may not approve it, is refused, audited and told to its sender
    (`refused`), and the request stays open for the next answer; the first valid one wins."""

    async def ask(self, request: ev.ApprovalRequested) -> ApprovalAnswer | None:
        """The next answer; None when no more will come (the request expired): the call is denied."""
        ...

    def refused(self, request: ev.ApprovalRequested, answer: ApprovalAnswer, reason: str) -> None: ...


class Dispatcher:
    """Runs tool calls through validation, breakers, budgets, policy, approval, execution, scrubbing and audit."""

    def __init__(
        self,
        policy: Policy,
        audit: AuditLog | None,
        scrubber: Scrubber | None = None,
        breakers: Breakers | None = None,
        budgets: Budgets | None = None,
        user: str = "user",
        kube: Callable[[], tuple[str | None, str | None]] | None = None,
        *,
        known_values: Callable[[], Iterable[str]] | None = None,
        timeout_s: float = 60.0,
        output_cap: int = OUTPUT_CAP,
        approval_ttl_s: float = 300.0,
        clock: Callable[[], dt.datetime] = ev.utcnow,
        read_only: bool = False,
    ) -> None:
        self.policy = policy
        """Rules in force (a broken file means Policy.safest())."""
        self.audit = audit
        """The append-only log (None only in scripts without a store)."""
        self.scrubber = scrubber or default_scrubber()
        """Output scrubber."""
        self.breakers = breakers or Breakers()
        """Circuit breakers for this session."""
        self.budgets = budgets or Budgets()
        """Turn and session budgets."""
        self.user = user
        """Who the session acts for (policy rules and approvers match on it)."""
        self.kube = kube or (lambda: (None, None))
        """Returns (kube context, default namespace) at the time of a call."""
        self.known_values = known_values or (lambda: ())
        """Every configured credential value (the composition root passes the skills' resolver):
        removed verbatim, and in its encoded forms, from outputs, arguments and details."""
        self.timeout_s = timeout_s
        """Per-call timeout unless the tool's meta sets one."""
        self.output_cap = output_cap
        """Characters of output the model reads."""
        self.approval_ttl_s = approval_ttl_s
        """How long an approval request stays valid."""
        self.clock = clock
        """Wall clock (policy time windows, approval expiry)."""
        self._read_only = read_only
        self._denied: dict[tuple[str, str], str] = {}
        self.stages: list[Stage] = [
            self.resolve, self.arguments, self.repeats, self.check_budgets, self.check_breakers,
            self.read_only_gate, self.check_policy, self.approval, self.record,
        ]  # fmt: skip
        """The stages before execution, outermost first."""
        self.post: list[Callable[[CallState], Any]] = [
            self.scrub,
            self.flag_partial,
            self.expected_fields,
            self.diagnose,
            self.keep_blob,
            self.trim,
        ]
        """What runs on a finished call's output, in order (each may be sync or async)."""
        self._run = _chain(self.stages, self.execute)

    @property
    def read_only(self) -> bool:
        """No write or dangerous call runs: asked for by the user (--read-only, config) or forced by the org policy."""
        return self._read_only or self.policy.org.read_only

    def approvers_for(self, decision: Decision) -> set[str]:
        """Who may answer an approval: the rule's approvers, else the session's user and the
        policy's `operators` role (never any name an answer happens to carry)."""
        if decision.approvers:
            return set(decision.approvers)
        return {self.user, *self.policy.org.roles.get("operators", [])}

    def risk_of(self, tool: Tool | None) -> str:
        """read | write | dangerous as the policy sees the tool (unknown counts as dangerous)."""
        if tool is None:
            return "read"
        r = effective_risk(tool.name, tool.risk, tool.meta.method)
        return r if r in ("read", "write", "dangerous") else "dangerous"

    # -- helpers --------------------------------------------------------------------------------
    def _known(self) -> list[str]:
        """Credential values to remove verbatim (and in their encoded forms) from what is stored or shown."""
        try:
            return [v for v in self.known_values() if v]
        except Exception:  # noqa: BLE001 - scrubbing by rules still applies
            return []

    def redact(self, text: str) -> str:
        """`text` without credentials (every configured one, in any form) or personal data: for the
        texts a session stores and shows beside tool outputs (messages, arguments, plans)."""
        return self.scrubber.clean(text, self._known())[0]

    async def _audit(
        self,
        s: CallState,
        kind: str,
        decision: str = "",
        rule: str = "",
        detail: str = "",
        *,
        who: str = "",
        **output: Any,
    ) -> None:
        if self.audit is None:
            return
        # Details quote tool errors and reasons, which can carry credentials: scrub them too.
        await self.audit.append(
            session_id=s.ctx.session_id, user=who or self.user, kind=kind, tool=s.tool_name, args_json=s.args_json, call_hash=s.hash,
            decision=decision, rule=rule, detail=self.redact(detail), **output,
        )  # fmt: skip

    def _finished(self, s: CallState, status: str, message: str, **extra: Any) -> ev.ToolCallFinished:
        return s.ctx.event(
            ev.ToolCallFinished,
            call_id=s.call.id,
            tool=s.call.name,
            status=status,
            duration_ms=(time.perf_counter() - s.t0) * 1000,
            summary=extra.pop("summary", message.splitlines()[0][:160] if message else status),
            output=message,
            step=s.ctx.step,
            notes=s.notes,
            **extra,
        )

    async def _refuse(
        self, s: CallState, kind: str, rule: str, detail: str, message: str, status: str = "refused", **extra: Any
    ) -> ev.ToolCallFinished:
        """Audit a call that does not run, and the event that finishes it."""
        await self._audit(
            s, kind, "block" if kind == "block" else ("denied" if kind == "denial" else "refused"), rule, detail
        )
        return self._finished(s, status, message, **extra)

    # -- the pipeline ---------------------------------------------------------------------------
    async def dispatch(self, call: ToolCall, tool: Tool | None, ctx: TurnContext) -> AsyncIterator[Any]:
        """Run one call; yields events, the last a ToolCallFinished."""
        async for e in self._run(CallState(call=call, tool=tool, ctx=ctx)):
            yield e

    async def resolve(self, s: CallState, nxt: Next) -> AsyncIterator[Any]:
        """A known tool and arguments that parsed; every string made UTF-8-safe first (a code point
        UTF-8 cannot encode would break every hash and write after this)."""
        s.call = s.call.model_copy(
            update={"arguments": safe_tree(s.call.arguments, unicode_safe), "name": unicode_safe(s.call.name)}
        )
        if s.call.parse_error or s.tool is None:
            offered = s.ctx.offered()
            msg = s.call.parse_error or f"Unknown tool {s.call.name!r}."
            msg += f" Valid tools: {', '.join(offered) if offered else '(none offered)'}."
            if s.tool is None and not s.call.parse_error:
                msg += " If the tool you need is not listed, call find_tools with what you are looking for."
            s.hash, s.args_json = call_hash(s.call.name, s.call.arguments), self.redact(canonical(s.call.arguments))
            yield await self._refuse(s, "refusal", "guard:unknown-tool" if s.tool is None else "guard:parse", msg, msg)
            return
        s.risk = effective_risk(s.tool.name, s.tool.risk, s.tool.meta.method)
        s.backend = s.tool.meta.backend or s.tool.pack or None
        async for e in nxt(s):
            yield e

    async def arguments(self, s: CallState, nxt: Next) -> AsyncIterator[Any]:
        """The arguments against the tool's schema (defaults, coercion, limits)."""
        assert s.tool is not None
        try:
            s.args, s.notes = check_args(s.tool, self._in_session_namespace(s.tool, s.call.arguments))
        except ArgumentRefused as exc:
            s.hash, s.args_json = call_hash(s.tool.name, s.call.arguments), self.redact(canonical(s.call.arguments))
            lines = exc.message.splitlines()
            summary = f"arguments refused: {lines[1] if len(lines) > 1 else exc.message}"[:160]
            yield await self._refuse(s, "refusal", "guard:arguments", exc.message, exc.message, summary=summary)
            return
        s.hash, s.args_json = call_hash(s.tool.name, s.args), self.redact(canonical(s.args))
        async for e in nxt(s):
            yield e

    def _in_session_namespace(self, tool: Tool, arguments: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments, with the session's namespace where the model left out a
        `namespace` the tool would otherwise fill with its schema default (as kubectl takes the
        context's namespace when none is given). The policy already reads a call without one as
        aimed at the session's namespace; the call must run where the policy decided."""
        args = dict(arguments)
        prop = ((tool.parameters or {}).get("properties") or {}).get("namespace")
        if args.get("namespace") or not isinstance(prop, dict) or "default" not in prop:
            return args
        _, namespace = self.kube()
        if namespace:
            args["namespace"] = namespace
        return args

    def repeat_of(self, call: ToolCall, tool: Tool | None, ctx: TurnContext) -> str | None:
        """Why the `repeats` stage would not run `call` (a denied call, a read already answered this
        turn), or None: the loop asks before the call is dispatched, so a model that can rule the
        call out of its output (the local grammar) takes the step again instead of wasting it. A
        tool that answers its own repeats (`ToolMeta.answers_repeats`) counts too: the step learns
        nothing new either way."""
        if tool is None or call.parse_error:
            return None
        try:
            args, _ = check_args(tool, self._in_session_namespace(tool, call.arguments))
        except ArgumentRefused:
            return None
        h = call_hash(tool.name, args)
        denied = self._denied.get((ctx.session_id, h)) or _denied_in_history(ctx.events, h)
        if denied is not None:
            return f"this exact call was {denied}"
        step = _same_call_this_turn(ctx, tool.name, h) if self.risk_of(tool) == "read" else None
        return f"it already answered at step {step} of this turn" if step is not None else None

    async def repeats(self, s: CallState, nxt: Next) -> AsyncIterator[Any]:
        """A call a human denied is not asked again; a read that already answered this turn is not
        run again, unless the tool answers repeats itself (find_tools: from what it found before)."""
        denied = self._denied.get((s.ctx.session_id, s.hash)) or _denied_in_history(s.ctx.events, s.hash)
        if denied is not None:
            msg = (
                f"Refused without asking again: this exact call ({s.tool_name} with these arguments) was already denied in this session ({denied}). "
                "Do not retry it. Explain to the user what you wanted to do and why, or propose a different step."
            )
            yield await self._refuse(s, "denial", "guard:repeat-of-denied", msg, msg, status="denied")
            return
        answers_itself = s.tool is not None and s.tool.meta.answers_repeats
        earlier = _same_call_this_turn(s.ctx, s.tool_name, s.hash) if s.risk == "read" and not answers_itself else None
        if earlier is not None:
            msg = (
                f"Not run again: {s.tool_name} with these exact arguments already answered at step {earlier} of this turn, "
                "and its output is above. Use that output, call a different tool (for example logs with previous=true, "
                "events or rollout history), or give your answer."
            )
            yield await self._refuse(
                s, "refusal", "guard:repeat", msg, msg, summary="repeat of an earlier call; not run"
            )
            return
        async for e in nxt(s):
            yield e

    async def check_budgets(self, s: CallState, nxt: Next) -> AsyncIterator[Any]:
        """The turn's and the session's budgets (calls, tokens, cost, time)."""
        self.budgets.sync(s.ctx)
        over = self.budgets.exceeded()
        if over:
            await self._audit(s, "refusal", "refused", "guard:budget", over)
            for e in self.budgets.events(s.ctx):
                yield e
            yield self._finished(s, "refused", over)
            return
        async for e in nxt(s):
            yield e

    async def check_breakers(self, s: CallState, nxt: Next) -> AsyncIterator[Any]:
        """An open breaker refuses; a call that never reaches its backend gives its probe back."""
        refusal = self.breakers.check(s.tool_name, s.backend, s.hash)
        if refusal:
            yield await self._refuse(s, "refusal", "guard:breaker", refusal, refusal)
            return
        try:
            async for e in nxt(s):
                yield e
        finally:
            if not s.ran:
                self.breakers.release(s.tool_name, s.backend)

    async def read_only_gate(self, s: CallState, nxt: Next) -> AsyncIterator[Any]:
        """Before the policy, so no rule, override or approver can let a write through."""
        if self.read_only and s.risk != "read":
            why = (
                "the org policy sets read_only"
                if self.policy.org.read_only
                else "the session was started with --read-only"
            )
            msg = (
                f"Blocked: Lantern is in read-only mode ({why}). The call was not run. Do not retry it or any other write; "
                "propose the change in your answer (the exact action and arguments) so a person can make it."
            )
            yield await self._refuse(
                s, "block", "read-only", why, msg, status="blocked", summary="blocked: read-only mode"
            )
            return
        async for e in nxt(s):
            yield e

    async def check_policy(self, s: CallState, nxt: Next) -> AsyncIterator[Any]:
        """The rules decide on the objects the call touches: allow, confirm, approve or block."""
        assert s.tool is not None
        context, namespace = self.kube()
        targets = resolve_targets(s.tool.name, s.args, s.tool.meta.touches, namespace)
        action = Action(
            name=s.tool.name, pack=s.tool.pack, risk=s.risk, namespace=namespace, context=context, targets=targets
        )
        s.decision = decide(
            self.policy, action, s.args, self.user, self.clock(), routed=isinstance(s.ctx.approver, SharedApprover)
        )
        if s.decision.outcome == "block":
            msg = (
                f"Blocked by policy ({s.decision.rule_id}): {s.decision.reason}. The call was not run and will not be allowed in this situation. "
                "Do not retry it; tell the user what you wanted to do and why, so a person can act."
            )
            yield await self._refuse(s, "block", s.decision.rule_id, s.decision.reason, msg, status="blocked")
            return
        async for e in nxt(s):
            yield e

    async def approval(self, s: CallState, nxt: Next) -> AsyncIterator[Any]:
        """confirm/approve: the backend's dry run, then a human's answer bound to this call."""
        assert s.tool is not None and s.decision is not None
        if s.decision.outcome in ("confirm", "approve"):
            preview = await self._preview(s.tool, s.args)
            if isinstance(preview, str):
                # the backend refused the change in its dry run: nothing to approve, the call fails with its error
                msg = f"{s.tool.name} failed: the dry run was rejected, so no approval was asked and nothing changed: {preview}"
                yield await self._refuse(
                    s,
                    "refusal",
                    "guard:dry-run",
                    preview,
                    msg,
                    status="error",
                    summary=f"dry run rejected: {preview}"[:160],
                )
                return
            if preview is not None and preview.unchanged:
                # the backend's dry run changes nothing: asking a person to approve it wastes their
                # attention and the turn's time (a small model "fixes" by setting what is already set)
                what = ", ".join(preview.objects)
                msg = (
                    f"{s.tool.name} would change nothing: the dry run shows {what} already as asked "
                    f"({preview.note or 'no difference'}). No approval was asked and nothing changed; "
                    "the fix must change something else."
                )
                yield await self._refuse(
                    s,
                    "refusal",
                    "guard:no-change",
                    preview.note or "no difference",
                    msg,
                    status="error",
                    summary=f"no change: {what} already as asked"[:160],
                    error_kind="client",
                )
                return
            verdict: tuple[bool, str] = (False, "")
            async for item in self._ask(s, preview):
                if isinstance(item, tuple):
                    verdict = item
                else:
                    yield item
            ok, detail = verdict
            if not ok:
                self._denied[(s.ctx.session_id, s.hash)] = detail
                msg = (
                    f"Denied: {detail}. The call was not run. Do not call it again with the same arguments; "
                    "explain what you wanted to do and why, or propose a different, smaller step."
                )
                yield self._finished(s, "denied", msg)
                return
            s.approved_by = detail
        async for e in nxt(s):
            yield e

    async def record(self, s: CallState, nxt: Next) -> AsyncIterator[Any]:
        """After the call ran: the breakers and budgets count it, the audit keeps it, the model reads it."""
        assert s.decision is not None
        async for e in nxt(s):
            yield e
        s.notes.extend(self.breakers.record(s.tool_name, s.backend, s.hash, s.failure))
        self.budgets.sync(s.ctx)
        self.budgets.add_tool(s.tokens, s.wall_s)
        status = "error" if s.failure else ("partial" if s.partial else "ok")
        detail = f"{status}: " + (s.text.splitlines()[0][:300] if s.text else "")
        if s.approved_by:
            detail += f"; approved by {s.approved_by}"
        undo = (
            s.out.data.get("undo") if s.failure is None and s.out is not None and isinstance(s.out.data, dict) else None
        )
        if isinstance(undo, str) and undo:
            # the way back, computed by the write itself from the values it replaced (`lantern audit undo` lists it)
            detail += f"; undo: {undo[:300]}"
        await self._audit(
            s, "execution", s.decision.outcome, s.decision.rule_id, detail, output_ref=s.output_ref or "", output=s.text
        )
        for e in self.budgets.events(s.ctx):
            yield e
        summary = (
            f"{s.tool_name} failed: {s.failure.kind}"
            if s.failure
            else (s.shown.splitlines()[0][:160] if s.shown else "(no output)")
        )
        yield self._finished(
            s,
            status,
            s.shown,
            summary=summary,
            output_ref=s.output_ref,
            tokens=s.tokens,
            partial=s.partial,
            redactions=s.redactions,
            findings=s.findings,
            error_kind=s.failure.kind if s.failure else "",
        )

    def _timeout(self, tool: Tool) -> float:
        """The executor enforces the action's own timeout; the outer one only catches a handler
        that ignores it, so it waits a little longer than the action may take."""
        declared = tool.meta.timeout_s
        return float(declared) + TIMEOUT_GRACE_S if declared else self.timeout_s

    async def execute(self, s: CallState) -> AsyncIterator[Any]:
        """The handler under its timeout; any failure becomes a classified result; then the post-processing."""
        assert s.tool is not None and s.decision is not None
        by = f"; approved by {s.approved_by}" if s.approved_by else ""
        if s.shown_risk != "read":
            # written before the executor runs: a crash mid-call still leaves the record that it was about to run
            await self._audit(s, "intent", s.decision.outcome, s.decision.rule_id, "about to run" + by)
        yield s.ctx.event(
            ev.ToolCallStarted,
            call_id=s.call.id,
            tool=s.tool.name,
            arguments=s.args,
            risk=s.shown_risk,
            step=s.ctx.step,
        )
        e0 = time.perf_counter()
        timeout = self._timeout(s.tool)
        s.ran = True
        try:
            s.out = as_output(await asyncio.wait_for(s.tool.handler(copy.deepcopy(s.args)), timeout=timeout))
            code = _status_code(s.out.data)
            if s.out.status == "error" or (code is not None and code >= 400):
                s.failure = classify(None, status=code, text=s.out.text, hint=_failure_hint(s.out.data))
        except (TurnCancelled, asyncio.CancelledError):
            await self._audit(s, "execution", s.decision.outcome, s.decision.rule_id, "cancelled while running" + by)
            raise
        except TimeoutError:
            s.failure = classify(TimeoutError(f"no answer within {timeout:g}s"))
            s.out = ToolOutput(text="", status="error")
        except Exception as exc:  # noqa: BLE001 - any handler failure becomes a result the model can act on
            s.failure = classify(exc)
            s.out = ToolOutput(text="", status="error")
        s.wall_s = time.perf_counter() - e0
        for step in self.post:
            got = step(s)
            if asyncio.iscoroutine(got):
                await got

    # -- post-processing ------------------------------------------------------------------------
    def scrub(self, s: CallState) -> None:
        """Credentials (configured ones in any form, and by rule) and personal data out of the output."""
        assert s.out is not None
        raw = unicode_safe(s.out.text or "")
        if s.failure is not None:
            body = f"{s.tool_name} failed: {s.failure.message}"
            if raw and raw.strip()[:DETAIL_CHARS] not in s.failure.message:  # not twice when the message quotes it
                body += "\n" + raw
        else:
            body = raw
        s.text, counts = self.scrubber.clean(body, self._known())
        s.redactions = sum(counts.values())
        if s.redactions:
            s.notes.append("redacted " + ", ".join(f"{n} {t}" for t, n in sorted(counts.items())))

    def flag_partial(self, s: CallState) -> None:
        """A result that is incomplete says so (truncated lists, continue tokens, 206)."""
        assert s.out is not None
        if s.failure is not None:
            return
        try:
            s.partial = detect_partial(
                s.out.data,
                s.args,
                s.out.partial or ("partial result" if s.out.status == "partial" else None),
                _status_code(s.out.data),
            )
        except Exception:  # noqa: BLE001 - odd data shapes must not crash the turn
            s.partial = s.out.partial

    def expected_fields(self, s: CallState) -> None:
        """A response that lacks every field the tool declares is noted: the API may have changed."""
        assert s.out is not None and s.tool is not None
        expected = s.tool.meta.projection
        if s.failure is not None or not expected:
            return
        data = s.out.data[0] if isinstance(s.out.data, list) and s.out.data else s.out.data
        if isinstance(data, dict):
            tops = [t for t in dict.fromkeys(re.split(r"[.\[]", f)[0] for f in expected) if t]
            missing = [f for f in tops if f not in data]
            # only when none of the declared fields came back: a projection may drop some legitimately
            if missing and len(missing) == len(tops):
                s.notes.append(
                    f"response lacks expected fields {', '.join(missing[:8])}: the API may have changed; read the output carefully"
                )
        elif data is not None:
            s.notes.append(
                f"response is a {type(data).__name__}, not the object this tool declares: the API may have changed"
            )

    def diagnose(self, s: CallState) -> None:
        """The session's checks read the whole scrubbed output, before the trim, so a signal past
        the cut still reaches the model; a finding quotes the output, so it is scrubbed too."""
        assert s.out is not None
        diagnoser = s.ctx.diagnoser
        if s.failure is None and diagnoser is not None and s.text:
            s.findings = [self.redact(f) for f in diagnoser.lines(s.tool_name, s.args, s.text, s.out.data)]

    async def keep_blob(self, s: CallState) -> None:
        """The whole output in the store, so a trimmed result can be read in full later."""
        blobs = s.ctx.blobs
        if blobs is None or not s.text:
            return
        ref = f"{s.ctx.session_id}:{s.call.id}"
        try:
            await blobs.put_blob(ref, s.ctx.session_id, s.text)
            s.output_ref = ref
        except Exception:  # noqa: BLE001 - losing the full copy must not lose the result
            s.output_ref = None

    def trim(self, s: CallState) -> None:
        """What the model reads at first, and its size in the model's tokens."""
        s.shown = s.text
        if len(s.text) > self.output_cap:
            cut = s.text.rfind("\n", 0, self.output_cap)
            cut = cut if cut > self.output_cap // 2 else self.output_cap
            where = f"; full output: {s.output_ref}]" if s.output_ref else "]"
            s.shown = s.text[:cut] + f"\n… [trimmed: {cut:,} of {len(s.text):,} characters shown" + where
        s.tokens = s.ctx.count_tokens(s.shown)

    # -- approval -------------------------------------------------------------------------------
    async def _preview(self, tool: Tool, args: dict[str, Any]) -> Preview | str | None:
        """The tool's dry run (None when it has none); a string is the backend's refusal, scrubbed."""
        if tool.preview is None:
            return None
        timeout = self._timeout(tool)
        try:
            got = await asyncio.wait_for(tool.preview(copy.deepcopy(args)), timeout=timeout)
        except PreviewFailed as exc:
            return self.redact(unicode_safe(str(exc)) or "the dry run failed")
        except TimeoutError:
            return f"the dry run gave no answer within {timeout:g}s"
        except Exception as exc:  # noqa: BLE001 - a preview that breaks must not approve blind
            return self.redact(f"{type(exc).__name__}: {exc}")
        # a diff quotes live objects, which can hold credentials: it passes the scrubber like any output
        clean = lambda text: self.redact(unicode_safe(text))  # noqa: E731
        return Preview(
            diff=clean(got.diff), objects=[clean(o) for o in got.objects], note=clean(got.note), unchanged=got.unchanged
        )

    async def _ask(self, s: CallState, preview: Preview | None) -> AsyncIterator[Any]:
        """Emit ApprovalRequested, wait for the approver, validate, emit ApprovalResolved; finally yields (ok, detail)."""
        assert s.tool is not None and s.decision is not None
        decision, ctx = s.decision, s.ctx
        expires = self.clock() + dt.timedelta(seconds=self.approval_ttl_s)
        req = ctx.event(
            ev.ApprovalRequested,
            request_id=uuid.uuid4().hex[:12],
            call_id=s.call.id,
            tool=s.tool.name,
            arguments=s.args,
            risk=s.shown_risk,
            decision=decision.outcome,
            rule=decision.rule_id,
            reason=decision.reason,
            touches=_touches(s.tool, s.args),
            rollback=s.tool.meta.rollback,
            call_hash=s.hash,
            expires_at=expires,
            preview=preview.diff if preview else "",
            objects=preview.objects if preview else [],
            preview_note=preview.note if preview else "",
        )
        yield req
        try:
            answer = await self._answer(s, req)
            approved, reason = self._bound(answer, req, decision)
            by = (answer.by or "unknown") if answer is not None else "engine"
        except TurnCancelled:
            await self._audit(
                s, "denial", decision.outcome, decision.rule_id, "turn cancelled while waiting for approval"
            )
            raise
        except Exception as exc:  # noqa: BLE001 - a broken approver denies
            approved, by, reason = False, "engine", f"the approver failed ({type(exc).__name__}: {exc})"
        yield ctx.event(
            ev.ApprovalResolved, request_id=req.request_id, call_id=s.call.id, approved=approved, by=by, reason=reason
        )
        if approved:
            kind = "confirmation" if decision.outcome == "confirm" else "approval"
            await self._audit(
                s, kind, decision.outcome, decision.rule_id, f"by {by}" + (f": {reason}" if reason else "")
            )
            yield (True, by)
        else:
            await self._audit(s, "denial", decision.outcome, decision.rule_id, f"by {by}: {reason or 'denied'}")
            yield (False, f"denied by {by}" + (f": {reason}" if reason else ""))

    async def _answer(self, s: CallState, req: ev.ApprovalRequested) -> ApprovalAnswer | None:
        """The approver's answer; through a shared approver, the first one that is bound to the
        request and comes from an approver (an approval or a denial), each unfit one refused and audited."""
        assert s.decision is not None
        approver = s.ctx.approver
        while True:
            answer: ApprovalAnswer | None = await s.ctx.race(approver.ask(req))
            if answer is None or not isinstance(approver, SharedApprover):
                return answer
            unfit = self._unfit(answer, req, s.decision)
            if not unfit:
                return answer
            detail = f"{'approval' if answer.approved else 'denial'} from {answer.by} refused: {unfit}"
            await self._audit(s, "refusal", s.decision.outcome, s.decision.rule_id, detail, who=answer.by)
            approver.refused(req, answer, unfit)

    def _unfit(self, answer: ApprovalAnswer, req: ev.ApprovalRequested, decision: Decision) -> str:
        """Why `answer` cannot count for `req` ('' when it can): unbound, or not from an approver."""
        if not answer.call_hash or not answer.request_id:
            return "the answer names no call hash and request id, so it cannot be bound to this call"
        if answer.call_hash != req.call_hash:
            return "the answer was for a different call (hash mismatch)"
        if answer.request_id != req.request_id:
            return "the answer was for a different request"
        allowed = self.approvers_for(decision)
        if answer.by not in allowed:
            return f"{answer.by} may not approve this (approvers: {', '.join(sorted(allowed))})"
        return ""

    def _bound(self, answer: ApprovalAnswer | None, req: ev.ApprovalRequested, decision: Decision) -> tuple[bool, str]:
        """(approved, reason): an approval counts only for this call, this request, in time, from an approver."""
        if answer is None or not answer.approved:
            return False, (answer.reason if answer is not None else "no answer")
        if not answer.call_hash or not answer.request_id:
            return False, "the approval names no call hash and request id, so it cannot be bound to this call"
        if answer.call_hash != req.call_hash:
            return False, "the approval was for a different call (hash mismatch)"
        if answer.request_id != req.request_id:
            return False, "the approval answered a different request"
        if req.expires_at is not None and self.clock() > req.expires_at:
            return (
                False,
                f"the approval came after the request expired at {req.expires_at.isoformat(timespec='seconds')}",
            )
        allowed = self.approvers_for(decision)
        if answer.by not in allowed:
            return False, f"{answer.by} may not approve this (approvers: {', '.join(sorted(allowed))})"
        return True, answer.reason


def _denied_in_history(events: list[Any], h: str) -> str | None:
    """An earlier denial of this exact call in the session's record (survives `--continue`)."""
    asked: set[str] = set()
    for e in events:
        if isinstance(e, ev.ApprovalRequested) and e.call_hash == h:
            asked.add(e.request_id)
        elif isinstance(e, ev.ApprovalResolved) and e.request_id in asked and not e.approved:
            return f"denied by {e.by}" + (f": {e.reason}" if e.reason else "")
    return None


def _same_call_this_turn(ctx: TurnContext, tool: str, h: str) -> int | None:
    """The step at which this exact read call already answered in the current turn (it succeeded,
    or the backend refused these very arguments: a client error comes back the same), if it did and
    no write has run since (after a write the world may have changed, so reading again is right)."""
    started: dict[str, ev.ToolCallStarted] = {}
    seen: int | None = None
    for e in ctx.events:
        if getattr(e, "turn", None) != ctx.turn:
            continue
        if isinstance(e, ev.ToolCallStarted):
            started[e.call_id] = e
            if e.risk != "read":
                seen = None
        elif (
            isinstance(e, ev.ToolCallFinished)
            and e.call_id in started
            and (e.status in ("ok", "partial") or (e.status == "error" and e.error_kind == "client"))
        ):
            s = started[e.call_id]
            if s.tool == tool and call_hash(tool, s.arguments) == h:
                seen = e.step
    return seen


def _touches(tool: Tool, args: dict[str, Any]) -> str:
    """A one-line 'what this changes' from the usual argument names."""
    parts = []
    for k in (
        "context",
        "namespace",
        "kind",
        "resource",
        "name",
        "deployment",
        "pod",
        "replicas",
        "image",
        "repo",
        "id",
    ):
        if k in args:
            parts.append(f"{k}={json.dumps(args[k], default=str)}")
    return f"{tool.name}: " + (", ".join(parts) if parts else canonical(args)[:200])
