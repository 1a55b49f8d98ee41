"""The approval modal: the exact call, its risk and rule, what it touches, the way back.

Nothing is approved by default: the initial focus is Deny, escape denies, an expired request
denies. A 'confirm' decision (the policy's safe-write rule) proceeds after a visible, cancellable
countdown; cancelling it denies.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from console.keys import bindings, keys_for

PREVIEW_LINES = 14
"""Diff lines shown before `inspect` expands it."""
ACTION_CHARS = 160
"""The one-line call on top is cut here (the full arguments are below)."""


def _short(value: Any) -> str:
    """An argument value as the call line shows it: strings bare, the rest as JSON."""
    if isinstance(value, str):
        lines = value.strip().splitlines()
        if len(lines) > 1:  # a manifest, a patch: its first line and its size keep the call on one line
            first = lines[0] if len(lines[0]) <= 30 else lines[0][:29] + "…"
            return f"{first} … ({len(lines)} lines)"
        return value if len(value) <= 40 else value[:39] + "…"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 40 else text[:39] + "…"


class ReasonScreen(ModalScreen[str | None]):
    """Asks why a request is denied (the agent reads the reason)."""

    BINDINGS = [("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="reason-dialog"):
            yield Label("Why deny? The agent will read this.")
            yield Input(placeholder="e.g. not during the freeze; scale to 4 instead", id="reason")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or "denied without a reason")

    def action_cancel(self) -> None:
        """Back to the request, nothing decided."""
        self.dismiss(None)


class ApprovalDialog(VerticalScroll):
    """The modal's frame: scrolls the details; its bottom border says whether there is more."""

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self.show_scroll_hint()

    def show_scroll_hint(self) -> None:
        """Say on the bottom border whether the details go on below (or above)."""
        if self.max_scroll_y <= 0:
            self.border_subtitle = ""
        elif self.scroll_y < self.max_scroll_y:
            self.border_subtitle = "more below: j/k or ↓ scroll · i inspect"
        else:
            self.border_subtitle = "end of details · k scrolls back"


class ApprovalScreen(ModalScreen[Any]):
    """One approval request; dismisses with an ApprovalAnswer."""

    BINDINGS = bindings("approval")

    def __init__(self, request: Any, *, queued: int = 0, countdown_s: float = 5.0, user: str = "operator") -> None:
        super().__init__()
        self.request = request
        """The ApprovalRequested event."""
        self.queued = queued
        """Other requests waiting behind this one."""
        self.countdown_s = countdown_s
        """Seconds before a 'confirm' request proceeds."""
        self.user = user
        """Recorded as the approver."""
        self.remaining = countdown_s if request.decision == "confirm" else None
        """Seconds left on the countdown (None: explicit approval needed)."""
        self.expanded = False
        """Whether `inspect` expanded the details."""
        self._paused = False
        self._done = False

    # -- layout ---------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        # The dialog scrolls as a whole, but what decides the answer is docked: the action, its
        # risk and the policy rule on top, the countdown and the buttons below. Only the long
        # parts (dry-run diff, the way back, full arguments) move, so an 80×24 terminal still
        # shows the decision and its controls without scrolling.
        r = self.request
        with ApprovalDialog(id="approval-dialog", classes=f"risk-{r.risk}"):
            with Vertical(id="approval-head"):
                yield Static(id="approval-title")
                yield Static(id="approval-action")
                yield Static(id="approval-policy")
            with Vertical(id="approval-foot"):
                yield Static(id="approval-countdown")
                with Horizontal(id="approval-buttons"):
                    yield Button("Approve (a)", id="approve", variant="success")
                    yield Button("Deny (d)", id="deny", variant="error")
                    yield Button("Deny + reason (r)", id="reason")
                    yield Button("Inspect (i)", id="inspect")
            with Vertical(id="approval-body"):
                yield Label("What it will touch", classes="approval-section")
                yield Static(id="approval-touches")
                yield Label(
                    "Dry run: live → the API server's result", classes="approval-section", id="approval-diff-label"
                )
                yield Static(id="approval-diff")
                yield Label("The way back", classes="approval-section")
                yield Static(id="approval-rollback")
                yield Label("Arguments", classes="approval-section")
                yield Static(id="approval-call")

    def on_mount(self) -> None:
        self.render_request()
        self.query_one("#deny", Button).focus()
        if self.remaining is not None:
            self.set_interval(0.1, self._tick)
        expires = self.request.expires_at
        if expires is not None:
            left = (expires - dt.datetime.now(dt.UTC)).total_seconds()
            if left > 0:
                self.set_timer(left, self._expired)
            else:
                # Expired before the dialog could show (a slow machine, a long queue): a zero
                # timer would never fire (Textual divides by its interval), leaving it open.
                self.call_later(self._expired)

    def render_request(self) -> None:
        """Fill the dialog from the request."""
        r = self.request
        v = self.app.theme_variables
        risk_style = f"bold {v.get(f'risk-{r.risk}', '')}"
        title = Text()
        title.append("⚠ Approval needed  ", style=f"bold {v.get('risk-high', '')}" if r.risk != "read" else "bold")
        title.append(f"risk: {r.risk}", style=risk_style)
        title.append(f"  ·  {'confirm (safe write)' if r.decision == 'confirm' else 'explicit approval'}")
        if self.queued:
            title.append(f"  ·  {self.queued} more waiting", style=v.get("drop-warning", ""))
        self.query_one("#approval-title", Static).update(title)

        action = Text()
        action.append(r.tool, style="bold")
        action.append("(" + ", ".join(f"{k}={_short(v)}" for k, v in r.arguments.items()) + ")")
        if len(action) > ACTION_CHARS:
            action.truncate(ACTION_CHARS - 1)
            action.append("…")
        self.query_one("#approval-action", Static).update(action)

        args = json.dumps(r.arguments, indent=2, ensure_ascii=False, default=str)
        call = Text()
        call.append(f"call {r.call_id}, hash {r.call_hash[:12]}", style=v.get("muted", ""))
        arg_lines = args.splitlines()
        if not self.expanded and len(arg_lines) > 12:
            arg_lines = arg_lines[:12] + [f"… {len(arg_lines) - 12} more lines (i to inspect)"]
        for line in arg_lines:
            call.append("\n" + line)
        self.query_one("#approval-call", Static).update(call)

        pol = Text()
        pol.append("policy rule: ", style=v.get("muted", ""))
        pol.append(r.rule or "(none given)", style="bold")
        if r.reason:
            pol.append("\nwhy: ", style=v.get("muted", ""))
            pol.append(r.reason)
        self.query_one("#approval-policy", Static).update(pol)

        self.query_one("#approval-touches", Static).update(touches_text(r, v))
        self.query_one("#approval-diff", Static).update(self._diff(r, v))
        self.query_one("#approval-rollback", Static).update(
            Text(
                r.rollback or "(no rollback given: treat as one-way)",
                style="bold" if r.rollback else v.get("drop-warning", ""),
            )
        )
        self._render_countdown()
        self.call_after_refresh(self._show_scroll_hint)

    def _diff(self, r: Any, v: dict[str, str]) -> Text:
        # records from before the preview field carried their diff in `touches`
        diff = (getattr(r, "preview", "") or (r.touches if r.touches.lstrip().startswith("---") else "")).rstrip()
        if not diff:
            note = (
                getattr(r, "preview_note", "")
                or "no dry run: this backend cannot preview; the arguments below are the exact request"
            )
            return Text(note, style=v.get("muted", ""))
        lines = diff.splitlines()
        if not self.expanded and len(lines) > PREVIEW_LINES:
            diff = "\n".join(lines[:PREVIEW_LINES]) + f"\n… {len(lines) - PREVIEW_LINES} more lines (i to inspect)"
        return diff_text(diff, v)

    def on_resize(self) -> None:
        self.call_after_refresh(self._show_scroll_hint)

    def _show_scroll_hint(self) -> None:
        # An answer given before this runs (an expired request) has taken the dialog down already.
        for dialog in self.query(ApprovalDialog):
            dialog.show_scroll_hint()

    def _render_countdown(self) -> None:
        w = self.query_one("#approval-countdown", Static)
        v = self.app.theme_variables
        if self.remaining is None:
            w.update(Text("Nothing happens until you approve. Deny is the default.", style=v.get("muted", "")))
            return
        if self._paused:
            w.update(Text("Countdown paused.", style=v.get("muted", "")))
            return
        secs = max(0, int(self.remaining + 0.999))
        w.update(
            Text(
                f"Proceeds in {secs} s  ·  d / esc cancels (denies)  ·  a proceeds now",
                style=f"bold {v.get('risk-write', '')}",
            )
        )

    # -- countdown ------------------------------------------------------------------------------
    def _tick(self) -> None:
        if self._done or self.remaining is None or self._paused:
            return
        before = int(self.remaining + 0.999)
        self.remaining -= 0.1
        if self.remaining <= 0:
            self._answer(True, "confirmed: the countdown elapsed without a cancel")
            return
        if int(self.remaining + 0.999) != before:
            self._render_countdown()

    def _expired(self) -> None:
        self._answer(False, "the request expired before anyone approved it", by="console")

    # -- answers ----------------------------------------------------------------------------------
    def _answer(self, approved: bool, reason: str = "", by: str | None = None) -> None:
        if self._done:
            return
        from engine.loop import ApprovalAnswer

        self._done = True
        self.dismiss(
            ApprovalAnswer(
                approved=approved,
                by=by or self.user,
                reason=reason,
                call_hash=self.request.call_hash,
                request_id=self.request.request_id,
            )
        )

    def withdraw(self) -> None:
        """Close without an answer from this face (another face answered the request first)."""
        if self._done:
            return
        self._done = True
        self.dismiss(None)

    def action_approve(self) -> None:
        """Approve this exact call."""
        self._answer(True, "approved at the console")

    def action_deny(self) -> None:
        """Deny (also what escape and a cancelled countdown do)."""
        self._answer(False, "cancelled the countdown" if self.remaining is not None else "denied at the console")

    def action_deny_reason(self) -> None:
        """Deny, with a reason for the agent."""
        self._paused = True
        self._render_countdown()

        def done(reason: str | None) -> None:
            if reason is None:
                self._paused = False
                self._render_countdown()
                return
            self._answer(False, reason)

        self.app.push_screen(ReasonScreen(), done)

    def action_inspect(self) -> None:
        """Show everything: full arguments and the whole diff (pauses a countdown)."""
        self.expanded = not self.expanded
        if self.remaining is not None:
            self._paused = True
        self.render_request()

    def action_scroll_down(self) -> None:
        """Scroll the details."""
        # Not animated: a burst of keys (or a held key) scrolls one line per key.
        self.query_one(ApprovalDialog).scroll_down(animate=False)

    def action_scroll_up(self) -> None:
        """Scroll the details."""
        self.query_one(ApprovalDialog).scroll_up(animate=False)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        {
            "approve": self.action_approve,
            "deny": self.action_deny,
            "reason": self.action_deny_reason,
            "inspect": self.action_inspect,
        }[event.button.id or "deny"]()


def approval_keys_line() -> str:
    """The approval keys, for help text."""
    return " · ".join(f"{k.keys.split(',')[0]} {k.description.lower()}" for k in keys_for("approval") if k.show)


def touches_text(r: Any, variables: dict[str, str]) -> Text:
    """The objects the dry run named (else the engine's one-line summary)."""
    objects = list(getattr(r, "objects", []) or [])
    line = "" if r.touches.lstrip().startswith("---") else r.touches.strip()
    out = Text(
        ", ".join(objects) if objects else (line or "(the engine named no objects)"), style="bold" if objects else ""
    )
    if objects and line:
        out.append(f"\n{line}", style=variables.get("muted", ""))
    return out


def diff_text(text: str, variables: dict[str, str]) -> Text:
    """A unified diff coloured with the theme's status colours (plain text when it is not a diff)."""
    lines = text.splitlines()
    is_diff = any(line.startswith(("---", "+++", "@@")) for line in lines[:40])
    if not is_diff:
        return Text(text)
    out = Text()
    for i, line in enumerate(lines):
        if i:
            out.append("\n")
        if line.startswith(("+++", "---")):
            out.append(line, style="bold")
        elif line.startswith("@@"):
            out.append(line, style=f"bold {variables.get('primary', '')}")
        elif line.startswith("+"):
            out.append(line, style=variables.get("status-ok", ""))
        elif line.startswith("-"):
            out.append(line, style=variables.get("status-error", ""))
        else:
            out.append(line, style=variables.get("muted", ""))
    return out
