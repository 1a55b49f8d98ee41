"""The dispatch pipeline (design step 5): every tool call crosses the untrusted boundary here.

    parse/unknown tool → check_args → repeat-of-denied → budgets → breakers → policy.decide
    → (confirm/approve: ApprovalRequested, Approver.ask, bound to the call's hash, expiring)
    → ToolCallStarted → handler under a timeout → classify errors → scrub (rules + known
    credential values) → flag partial → keep the full scrubbed output in the store → trim
    → audit → breakers/budgets (BudgetUpdate) → ToolCallFinished

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
from typing import Any

from engine import events as ev
from engine.guard.args import ArgumentRefused, check_args
from engine.guard.breakers import DETAIL_CHARS, Breakers, Budgets, Failure, classify
from engine.guard.partial import detect_partial
from engine.guard.scrub import Scrubber, default_scrubber
from engine.loop import TurnCancelled
from engine.models.base import ToolCall
from engine.policy.audit import AuditLog, call_hash, canonical
from engine.policy.rules import Action, Decision, Policy, decide, effective_risk, resolve_targets
from engine.textsafe import safe_tree, unicode_safe
from engine.tools import Preview, PreviewFailed, SimpleToolbox, Tool, ToolOutput, as_output

TIMEOUT_GRACE_S = 5.0
"""How much longer than an action's declared timeout the dispatcher waits for its handler."""
OUTPUT_CAP = 4000
"""Characters of a tool's output the model reads at first (the context builder may trim further)."""


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
        known_values: Callable[[Tool], Iterable[str]] | None = None,
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
        self.known_values = known_values or _skills_known_values
        """Credential values an executor injects for a tool, removed verbatim from its output."""
        self.timeout_s = timeout_s
        """Per-call timeout unless the tool's meta sets `timeout_s`."""
        self.output_cap = output_cap
        """Characters of output the model reads."""
        self.approval_ttl_s = approval_ttl_s
        """How long an approval request stays valid."""
        self.clock = clock
        """Wall clock (policy time windows, approval expiry)."""
        self._read_only = read_only
        self._denied: dict[tuple[str, str], str] = {}

    @property
    def read_only(self) -> bool:
        """No write or dangerous call runs: asked for by the user (--read-only, config) or forced by the org policy."""
        return self._read_only or bool(getattr(self.policy.org, "read_only", False))

    # -- helpers --------------------------------------------------------------------------------
    def _known(self, tool: Tool | None) -> list[str]:
        """Credential values to remove verbatim (and in their encoded forms) from what is stored or shown."""
        try:
            return [v for v in self.known_values(tool) if v]
        except Exception:  # noqa: BLE001 - scrubbing by rules still applies
            return []

    def redact(self, text: str) -> str:
        """`text` without credentials (every configured one, in any form) or personal data: for the
        texts a session stores and shows beside tool outputs (messages, arguments, plans)."""
        return self.scrubber.clean(text, self._known(None))[0]

    def _scrub_args(self, tool: Tool | None, args: dict[str, Any]) -> str:
        text, _ = self.scrubber.clean(canonical(args), self._known(tool))
        return text

    async def _audit(self, ctx: Any, kind: str, tool: str, args_json: str, h: str, decision: str = "", rule: str = "", detail: str = "", **output: Any) -> None:
        if self.audit is None:
            return
        # Details quote tool errors and reasons, which can carry credentials: scrub them too.
        detail, _ = self.scrubber.clean(detail, self._known(None))
        await self.audit.append(
            session_id=ctx.session.id, user=self.user, kind=kind, tool=tool, args_json=args_json, call_hash=h, decision=decision, rule=rule, detail=detail, **output
        )

    def _finished(self, ctx: Any, call: ToolCall, status: str, message: str, t0: float, **extra: Any) -> Any:
        return ctx.event(
            ev.ToolCallFinished,
            call_id=call.id,
            tool=call.name,
            status=status,
            duration_ms=(time.perf_counter() - t0) * 1000,
            summary=extra.pop("summary", message.splitlines()[0][:160] if message else status),
            output=message,
            step=ctx.step,
            **extra,
        )

    def approvers_for(self, decision: Decision) -> set[str]:
        """Who may answer an approval: the rule's approvers, else the session's user and the
        policy's `operators` role (never any name an answer happens to carry)."""
        if decision.approvers:
            return set(decision.approvers)
        return {self.user, *self.policy.org.roles.get("operators", [])}

    @staticmethod
    def _offered(ctx: Any) -> list[str]:
        for e in reversed(ctx.session.events):
            if getattr(e, "kind", "") == "step-started":
                return list(e.tools)
        return []

    # -- the pipeline ---------------------------------------------------------------------------
    async def dispatch(self, call: ToolCall, tool: Tool | None, ctx: Any) -> AsyncIterator[Any]:
        """Run one call; yields events, the last a ToolCallFinished."""
        t0 = time.perf_counter()
        # a model may write any code point: one that UTF-8 cannot encode would break every hash and write below
        call = call.model_copy(update={"arguments": safe_tree(call.arguments, unicode_safe), "name": unicode_safe(call.name)})
        if call.parse_error or tool is None:
            offered = self._offered(ctx)
            msg = call.parse_error or f"Unknown tool {call.name!r}."
            msg += f" Valid tools: {', '.join(offered) if offered else '(none offered)'}."
            if tool is None and not call.parse_error:
                msg += " If the tool you need is not listed, call find_tools with what you are looking for."
            await self._audit(ctx, "refusal", call.name, self._scrub_args(None, call.arguments), call_hash(call.name, call.arguments), "refused", "guard:unknown-tool" if tool is None else "guard:parse", msg)
            yield self._finished(ctx, call, "refused", msg, t0)
            return

        context, namespace = self.kube()
        risk = effective_risk(tool.name, tool.risk, tool.meta)
        try:
            args, notes = check_args(tool, dict(call.arguments))
        except ArgumentRefused as exc:
            await self._audit(ctx, "refusal", tool.name, self._scrub_args(tool, call.arguments), call_hash(tool.name, call.arguments), "refused", "guard:arguments", exc.message)
            yield self._finished(ctx, call, "refused", exc.message, t0, summary=f"arguments refused: {exc.message.splitlines()[1] if len(exc.message.splitlines()) > 1 else exc.message}"[:160])
            return
        h = call_hash(tool.name, args)
        args_json = self._scrub_args(tool, args)

        denied = self._denied.get((ctx.session.id, h)) or _denied_in_history(ctx.session.events, h)
        if denied is not None:
            msg = (
                f"Refused without asking again: this exact call ({tool.name} with these arguments) was already denied in this session ({denied}). "
                "Do not retry it. Explain to the user what you wanted to do and why, or propose a different step."
            )
            await self._audit(ctx, "denial", tool.name, args_json, h, "denied", "guard:repeat-of-denied", msg)
            yield self._finished(ctx, call, "denied", msg, t0, notes=notes)
            return

        if risk == "read":
            earlier = _same_call_this_turn(ctx, tool.name, h)
            if earlier is not None:
                msg = (
                    f"Not run again: {tool.name} with these exact arguments already answered at step {earlier} of this turn, "
                    "and its output is above. Use that output, call a different tool (for example logs with previous=true, "
                    "events or rollout history), or give your answer."
                )
                await self._audit(ctx, "refusal", tool.name, args_json, h, "refused", "guard:repeat", msg)
                yield self._finished(ctx, call, "refused", msg, t0, notes=notes, summary="repeat of an earlier call; not run")
                return

        self.budgets.sync(ctx)
        over = self.budgets.exceeded()
        if over:
            await self._audit(ctx, "refusal", tool.name, args_json, h, "refused", "guard:budget", over)
            for e in self.budgets.events(ctx):
                yield e
            yield self._finished(ctx, call, "refused", over, t0, notes=notes)
            return

        backend = str(tool.meta.get("backend") or tool.pack or "") or None
        refusal = self.breakers.check(tool.name, backend, h)
        if refusal:
            await self._audit(ctx, "refusal", tool.name, args_json, h, "refused", "guard:breaker", refusal)
            yield self._finished(ctx, call, "refused", refusal, t0, notes=notes)
            return

        if self.read_only and risk != "read":
            # before the policy, so no rule, override or approver can let a write through
            why = "the org policy sets read_only" if getattr(self.policy.org, "read_only", False) else "the session was started with --read-only"
            msg = (
                f"Blocked: Lantern is in read-only mode ({why}). The call was not run. Do not retry it or any other write; "
                "propose the change in your answer (the exact action and arguments) so a person can make it."
            )
            self.breakers.release(tool.name, backend)
            await self._audit(ctx, "block", tool.name, args_json, h, "block", "read-only", why)
            yield self._finished(ctx, call, "blocked", msg, t0, notes=notes, summary="blocked: read-only mode")
            return

        now = self.clock()
        targets = resolve_targets(tool.name, args, tool.meta.get("touches"), namespace)
        action = Action(name=tool.name, pack=tool.pack, risk=risk, namespace=namespace, context=context, targets=targets)
        decision = decide(self.policy, action, args, self.user, now)
        shown_risk = risk if risk in ("read", "write", "dangerous") else "dangerous"
        if decision.outcome == "block":
            msg = (
                f"Blocked by policy ({decision.rule_id}): {decision.reason}. The call was not run and will not be allowed in this situation. "
                "Do not retry it; tell the user what you wanted to do and why, so a person can act."
            )
            self.breakers.release(tool.name, backend)
            await self._audit(ctx, "block", tool.name, args_json, h, "block", decision.rule_id, decision.reason)
            yield self._finished(ctx, call, "blocked", msg, t0, notes=notes)
            return

        approver_name = ""
        if decision.outcome in ("confirm", "approve"):
            preview = await self._preview(tool, args)
            if isinstance(preview, str):
                # the backend refused the change in its dry run: nothing to approve, the call fails with its error
                self.breakers.release(tool.name, backend)
                await self._audit(ctx, "refusal", tool.name, args_json, h, "refused", "guard:dry-run", preview)
                msg = f"{tool.name} failed: the dry run was rejected, so no approval was asked and nothing changed: {preview}"
                yield self._finished(ctx, call, "error", msg, t0, notes=notes, summary=f"dry run rejected: {preview}"[:160])
                return
            gen = self._ask(call, tool, ctx, args, args_json, h, decision, shown_risk, now, preview)
            verdict: tuple[bool, str] | None = None
            try:
                async for item in gen:
                    if isinstance(item, tuple):
                        verdict = item
                    else:
                        yield item
            except BaseException:
                self.breakers.release(tool.name, backend)
                raise
            assert verdict is not None
            ok, detail = verdict
            if not ok:
                self.breakers.release(tool.name, backend)
                self._denied[(ctx.session.id, h)] = detail
                msg = (
                    f"Denied: {detail}. The call was not run. Do not call it again with the same arguments; "
                    "explain what you wanted to do and why, or propose a different, smaller step."
                )
                yield self._finished(ctx, call, "denied", msg, t0, notes=notes)
                return
            approver_name = detail

        # -- execution ----------------------------------------------------------------------------
        if shown_risk != "read":
            # written before the executor runs: a crash mid-call still leaves the record that it was about to run
            await self._audit(ctx, "intent", tool.name, args_json, h, decision.outcome, decision.rule_id, "about to run" + (f"; approved by {approver_name}" if approver_name else ""))
        yield ctx.event(ev.ToolCallStarted, call_id=call.id, tool=tool.name, arguments=args, risk=shown_risk, step=ctx.step)
        e0 = time.perf_counter()
        failure: Failure | None = None
        out: ToolOutput
        # The executor enforces the action's own timeout; this outer one only catches a handler
        # that ignores it, so it waits a little longer than the action may take.
        declared = tool.meta.get("timeout_s")
        timeout = float(declared) + TIMEOUT_GRACE_S if declared else self.timeout_s
        try:
            result = await asyncio.wait_for(tool.handler(copy.deepcopy(args)), timeout=timeout)
            out = as_output(result)
            code = _status_code(out.data)
            if out.status == "error" or (code is not None and code >= 400):
                failure = classify(None, status=code, text=out.text, hint=_failure_hint(out.data))
        except (TurnCancelled, asyncio.CancelledError):
            await self._audit(ctx, "execution", tool.name, args_json, h, decision.outcome, decision.rule_id, "cancelled while running" + (f"; approved by {approver_name}" if approver_name else ""))
            raise
        except asyncio.TimeoutError:
            failure = classify(asyncio.TimeoutError(f"no answer within {timeout:g}s"))
            out = ToolOutput(text="", status="error")
        except Exception as exc:  # noqa: BLE001 - any handler failure becomes a result the model can act on
            failure = classify(exc)
            out = ToolOutput(text="", status="error")
        wall = time.perf_counter() - e0

        known = self._known(tool)
        out.text = unicode_safe(out.text or "")
        if failure is not None:
            body = f"{tool.name} failed: {failure.message}"
            if out.text and out.text.strip()[:DETAIL_CHARS] not in failure.message:  # not twice when the message quotes it
                body += "\n" + out.text
        else:
            body = out.text
        text, counts = self.scrubber.clean(body, known)
        redactions = sum(counts.values())
        if redactions:
            notes.append("redacted " + ", ".join(f"{n} {t}" for t, n in sorted(counts.items())))

        partial = None
        if failure is None:
            try:
                partial = detect_partial(out.data, args, out.partial or ("partial result" if out.status == "partial" else None), _status_code(out.data))
            except Exception:  # noqa: BLE001 - odd data shapes must not crash the turn
                partial = out.partial
            expected = tool.meta.get("output_fields") or tool.meta.get("projection")
            if isinstance(expected, list) and expected:
                data = out.data[0] if isinstance(out.data, list) and out.data else out.data
                if isinstance(data, dict):
                    tops = list(dict.fromkeys(re.split(r"[.\[]", f)[0] for f in expected if isinstance(f, str)))
                    missing = [f for f in tops if f and f not in data]
                    # only when none of the declared fields came back: a projection may drop some legitimately
                    if missing and len(missing) == len([t for t in tops if t]):
                        notes.append(f"response lacks expected fields {', '.join(missing[:8])}: the API may have changed; read the output carefully")
                elif data is not None:
                    notes.append(f"response is a {type(data).__name__}, not the object this tool declares: the API may have changed")

        findings = self._diagnose(ctx, tool.name, args, text, out.data) if failure is None else []
        # A finding quotes the output (or its raw data): it passes the same scrubber.
        findings = [self.scrubber.clean(f, known)[0] for f in findings]

        output_ref = None
        sink = getattr(ctx.session, "sink", None)
        if sink is not None and hasattr(sink, "put_blob") and text:
            output_ref = f"{ctx.session.id}:{call.id}"
            try:
                await sink.put_blob(output_ref, ctx.session.id, text)
            except Exception:  # noqa: BLE001 - losing the full copy must not lose the result
                output_ref = None
        shown = text
        if len(text) > self.output_cap:
            cut = text.rfind("\n", 0, self.output_cap)
            cut = cut if cut > self.output_cap // 2 else self.output_cap
            shown = text[:cut] + f"\n… [trimmed: {cut:,} of {len(text):,} characters shown" + (f"; full output: {output_ref}]" if output_ref else "]")
        tokens = max(1, len(shown) // 4) if shown else 0
        model = getattr(ctx.session, "model", None)
        if model is not None and shown:
            try:
                from engine.models.base import Message

                tokens = int(model.count_tokens([Message(role="tool", content=shown)]))
            except Exception:  # noqa: BLE001 - an estimate is enough for budgets
                pass

        notes.extend(self.breakers.record(tool.name, backend, h, failure))
        self.budgets.sync(ctx)
        self.budgets.add_tool(tokens, wall)
        status = "error" if failure else ("partial" if partial else "ok")
        detail = f"{status}: " + (text.splitlines()[0][:300] if text else "")
        if approver_name:
            detail += f"; approved by {approver_name}"
        undo = out.data.get("undo") if failure is None and isinstance(out.data, dict) else None
        if isinstance(undo, str) and undo:
            # the way back, computed by the write itself from the values it replaced (`lantern audit undo` lists it)
            detail += f"; undo: {undo[:300]}"
        await self._audit(ctx, "execution", tool.name, args_json, h, decision.outcome, decision.rule_id, detail, output_ref=output_ref or "", output=text)
        for e in self.budgets.events(ctx):
            yield e
        summary = (f"{tool.name} failed: {failure.kind}" if failure else (shown.splitlines()[0][:160] if shown else "(no output)"))
        yield self._finished(
            ctx, call, status, shown, t0, summary=summary, output_ref=output_ref, tokens=tokens, partial=partial, redactions=redactions, notes=notes, findings=findings
        )

    @staticmethod
    def _diagnose(ctx: Any, tool: str, args: dict[str, Any], text: str, data: Any = None) -> list[str]:
        """The session's checks (engine.diagnose) read the whole scrubbed output, before the
        trim, so a signal past the cut still reaches the model as a finding."""
        diagnoser = getattr(ctx.session, "diagnoser", None)
        return diagnoser.lines(tool, args, text, data) if diagnoser is not None and text else []

    async def _preview(self, tool: Tool, args: dict[str, Any]) -> Preview | str | None:
        """The tool's dry run (None when it has none); a string is the backend's refusal, scrubbed."""
        if tool.preview is None:
            return None
        declared = tool.meta.get("timeout_s")
        timeout = float(declared) + TIMEOUT_GRACE_S if declared else self.timeout_s
        known = self._known(tool)
        try:
            got = await asyncio.wait_for(tool.preview(copy.deepcopy(args)), timeout=timeout)
        except PreviewFailed as exc:
            return self.scrubber.clean(unicode_safe(str(exc)) or "the dry run failed", known)[0]
        except asyncio.TimeoutError:
            return f"the dry run gave no answer within {timeout:g}s"
        except Exception as exc:  # noqa: BLE001 - a preview that breaks must not approve blind
            return self.scrubber.clean(f"{type(exc).__name__}: {exc}", known)[0]
        # a diff quotes live objects, which can hold credentials: it passes the scrubber like any output
        clean = lambda text: self.scrubber.clean(unicode_safe(text), known)[0]  # noqa: E731
        return Preview(diff=clean(got.diff), objects=[clean(o) for o in got.objects], note=clean(got.note))

    async def _ask(
        self, call: ToolCall, tool: Tool, ctx: Any, args: dict[str, Any], args_json: str, h: str, decision: Decision, risk: str, now: dt.datetime,
        preview: Preview | None = None,
    ) -> AsyncIterator[Any]:
        """Emit ApprovalRequested, wait for the approver, validate, emit ApprovalResolved; finally yields (ok, detail)."""
        request_id = uuid.uuid4().hex[:12]
        expires = now + dt.timedelta(seconds=self.approval_ttl_s)
        touches = _touches(tool, args)
        req = ctx.event(
            ev.ApprovalRequested,
            request_id=request_id,
            call_id=call.id,
            tool=tool.name,
            arguments=args,
            risk=risk,
            decision=decision.outcome,
            rule=decision.rule_id,
            reason=decision.reason,
            touches=touches,
            rollback=str(tool.meta.get("rollback") or ""),
            call_hash=h,
            expires_at=expires,
            preview=preview.diff if preview else "",
            objects=preview.objects if preview else [],
            preview_note=preview.note if preview else "",
        )
        yield req
        try:
            answer = await ctx.race(ctx.approver.ask(req))
        except TurnCancelled:
            await self._audit(ctx, "denial", tool.name, args_json, h, decision.outcome, decision.rule_id, "turn cancelled while waiting for approval")
            raise
        except Exception as exc:  # noqa: BLE001 - a broken approver denies
            answer = None
            why = f"the approver failed ({type(exc).__name__}: {exc})"
        approved = bool(getattr(answer, "approved", False)) if answer is not None else False
        by = str(getattr(answer, "by", "") or "unknown") if answer is not None else "engine"
        reason = str(getattr(answer, "reason", "") or "") if answer is not None else why
        if approved:
            bound = getattr(answer, "call_hash", None)
            rid = getattr(answer, "request_id", None)
            if bound is None or rid is None:
                approved, reason = False, "the approval names no call hash and request id, so it cannot be bound to this call"
            elif bound != h:
                approved, reason = False, "the approval was for a different call (hash mismatch)"
            elif rid != request_id:
                approved, reason = False, "the approval answered a different request"
            elif self.clock() > expires:
                approved, reason = False, f"the approval came after the request expired at {expires.isoformat(timespec='seconds')}"
            elif by not in (allowed := self.approvers_for(decision)):
                approved, reason = False, f"{by} may not approve this (approvers: {', '.join(sorted(allowed))})"
        yield ctx.event(ev.ApprovalResolved, request_id=request_id, call_id=call.id, approved=approved, by=by, reason=reason)
        if approved:
            kind = "confirmation" if decision.outcome == "confirm" else "approval"
            await self._audit(ctx, kind, tool.name, args_json, h, decision.outcome, decision.rule_id, f"by {by}" + (f": {reason}" if reason else ""))
            yield (True, by)
        else:
            await self._audit(ctx, "denial", tool.name, args_json, h, decision.outcome, decision.rule_id, f"by {by}: {reason or 'denied'}")
            yield (False, f"denied by {by}" + (f": {reason}" if reason else ""))


def _denied_in_history(events: list[Any], h: str) -> str | None:
    """An earlier denial of this exact call in the session's record (survives `--continue`)."""
    asked: dict[str, str] = {}
    for e in events:
        kind = getattr(e, "kind", "")
        if kind == "approval-requested" and e.call_hash == h:
            asked[e.request_id] = e.call_hash
        elif kind == "approval-resolved" and e.request_id in asked and not e.approved:
            return f"denied by {e.by}" + (f": {e.reason}" if e.reason else "")
    return None


def _same_call_this_turn(ctx: Any, tool: str, h: str) -> int | None:
    """The step at which this exact read call already succeeded in the current turn, if it did and
    no write has run since (after a write the world may have changed, so reading again is right)."""
    started: dict[str, Any] = {}
    seen: int | None = None
    for e in ctx.session.events:
        if getattr(e, "turn", None) != ctx.turn:
            continue
        kind = getattr(e, "kind", "")
        if kind == "tool-call-started":
            started[e.call_id] = e
            if e.risk != "read":
                seen = None
        elif kind == "tool-call-finished" and e.call_id in started and e.status in ("ok", "partial"):
            s = started[e.call_id]
            if s.tool == tool and call_hash(tool, s.arguments) == h:
                seen = e.step
    return seen


def _skills_known_values(tool: Tool | None) -> Iterable[str]:
    """Every credential value configured for this user (keyring, LANTERN_CRED_*, pack literals) or
    resolved in this process: removed from outputs, arguments and details in any encoded form."""
    try:
        from skills.credentials import configured_values
    except ImportError:
        return ()
    try:
        return [v for v in configured_values().values() if v]
    except Exception:  # noqa: BLE001 - scrubbing by rules still applies
        return ()


def _touches(tool: Tool, args: dict[str, Any]) -> str:
    """A one-line 'what this changes' from the usual argument names."""
    parts = []
    for k in ("context", "namespace", "kind", "resource", "name", "deployment", "pod", "replicas", "image", "repo", "id"):
        if k in args:
            parts.append(f"{k}={json.dumps(args[k], default=str)}")
    return f"{tool.name}: " + (", ".join(parts) if parts else canonical(args)[:200])


class GuardedToolbox(SimpleToolbox):
    """SimpleToolbox whose calls go through a Dispatcher (the runtime toolbox adds retrieval on top)."""

    def __init__(self, tools: list[Tool] | None, dispatcher: Dispatcher) -> None:
        super().__init__(tools)
        self.dispatcher = dispatcher
        """The pipeline every call passes."""

    def risk_of(self, name: str) -> str:
        t = self.tools.get(name)
        if t is None:
            return "read"
        r = effective_risk(t.name, t.risk, t.meta)
        return r if r in ("read", "write", "dangerous") else "dangerous"

    async def dispatch(self, call: ToolCall, ctx: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        async for e in self.dispatcher.dispatch(call, self.tools.get(call.name), ctx):
            yield e


async def make_dispatcher(store: Any, *, user: str | None = None, kube: Callable[[], tuple[str | None, str | None]] | None = None, read_only: bool = False, **kwargs: Any) -> Dispatcher:
    """The runtime Dispatcher: the org policy in force plus the user's overrides, the store's audit log.

    A broken policy file does not stop the engine: it runs with Policy.safest() and the error is
    on `dispatcher.policy.errors`, for the face to show (a warning Notice).
    """
    import getpass

    from engine.policy.commands import policy_paths
    from engine.policy.rules import load_policy_safe

    who = user or getpass.getuser()
    org, user_file = policy_paths(who)
    policy = load_policy_safe(org, user_file)
    audit = await AuditLog.open(store.db)
    return Dispatcher(policy, audit, user=who, kube=kube, read_only=read_only, **kwargs)
