"""The plain terminal face: renders the engine's event stream with rich (no Textual).

`lantern ask "question"` prints blocks; `--json` prints the raw event lines. It is the
scripting face and the proof that the engine is UI-agnostic.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from rich.console import Console
from rich.markdown import Markdown
from rich.panel import Panel
from rich.text import Text

from engine import events as ev
from engine.loop import ApprovalAnswer

STATUS_STYLE = {
    "ok": "green",
    "error": "red",
    "partial": "yellow",
    "blocked": "magenta",
    "denied": "magenta",
    "refused": "cyan",
    "cancelled": "dim",
}


class PromptApprover:
    """Asks y/N on the terminal; a run without a terminal on stdin denies."""

    def __init__(self, console: Console, user: str) -> None:
        self.console = console
        self.user = user

    async def ask(self, request: ev.ApprovalRequested) -> ApprovalAnswer:
        if not sys.stdin.isatty():
            return ApprovalAnswer.to(request, False, "non-interactive", "no terminal to ask on; denied")
        self.console.print(
            Panel(
                Text.assemble(
                    (f"{request.tool}", "bold"),
                    f"  risk={request.risk}  rule={request.rule}\n",
                    f"arguments: {request.arguments}\n",
                    f"touches: {', '.join(request.objects) or request.touches or '-'}\nrollback: {request.rollback or '-'}",
                    *preview_lines(request),
                ),
                title="approval needed",
                border_style="red" if request.risk == "dangerous" else "yellow",
            )
        )
        answer = await asyncio.to_thread(input, "Approve? [y/N] ")
        ok = answer.strip().lower() in ("y", "yes")
        return ApprovalAnswer(
            approved=ok,
            by=self.user,
            reason="" if ok else "denied at the prompt",
            call_hash=request.call_hash,
            request_id=request.request_id,
        )


def preview_lines(request: ev.ApprovalRequested) -> list[Any]:
    """The dry-run diff, coloured line by line (or why there is none), for the prompt's panel."""
    if not request.preview:
        note = request.preview_note or "no dry run for this backend: the arguments above are the exact request"
        return [("\n" + note, "dim")]
    out: list[Any] = [("\ndry run (live → API server's result):", "bold")]
    for line in request.preview.splitlines():
        style = (
            "bold"
            if line.startswith(("---", "+++"))
            else "cyan"
            if line.startswith("@@")
            else "green"
            if line.startswith("+")
            else "red"
            if line.startswith("-")
            else "dim"
        )
        out.append(("\n" + line, style))
    return out


class BlockRenderer:
    """Turns events into rich blocks, one at a time."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._streaming = False

    def __call__(self, e: Any) -> None:
        c = self.console
        if isinstance(e, ev.AssistantDelta):
            # Streamed text is shown live on a terminal; the final message is rendered as markdown.
            if c.is_terminal:
                c.print(e.text, end="", style="dim", markup=False, highlight=False)
                self._streaming = True
            return
        if self._streaming:
            c.print("\r\x1b[2K", end="") if False else c.print()
            self._streaming = False
        if isinstance(e, ev.SessionStarted):
            c.print(
                Text(
                    f"session {e.session_id} · model {e.model}" + (f" · context {e.context}" if e.context else ""),
                    style="dim",
                )
            )
            if getattr(e, "read_only", False):
                c.print(Text("READ-ONLY: no write runs; the agent can only propose", style="bold magenta"))
        elif isinstance(e, ev.AssistantMessage) and e.text and not e.tool_calls:
            c.print(Panel(Markdown(e.text), title="answer", border_style="cyan"))
        elif isinstance(e, ev.AssistantMessage) and e.text:
            c.print(Text("  " + e.text, style="italic"))
        elif isinstance(e, ev.ToolSetChanged) and e.loaded:
            why = ", ".join(f"{n} ({e.reasons.get(n, '')})" if e.reasons.get(n) else n for n in e.loaded[:8])
            c.print(Text(f"tools loaded: {why}", style="dim"))
            past = list(dict.fromkeys(r for n in e.loaded for r in e.experience.get(n, [])))
            if past:
                c.print(Text("from experience: " + "; ".join(f"“{r[:70]}”" for r in past[:3]), style="dim"))
        elif isinstance(e, ev.ToolCallStarted):
            c.print(Text.assemble(("▶ ", "cyan"), (e.tool, "bold"), f" {e.arguments}", (f"  [{e.risk}]", "dim")))
        elif isinstance(e, ev.ToolCallFinished):
            style = STATUS_STYLE.get(e.status, "white")
            line = Text.assemble(("  ◀ ", style), (e.status, style), f" {e.tool} {e.duration_ms:.0f} ms")
            if e.partial:
                line.append(f"  {e.partial}", style="yellow")
            if e.redactions:
                line.append(f"  {e.redactions} redacted", style="magenta")
            c.print(line)
            if e.summary:
                c.print(Text("    " + e.summary, style="dim"))
            for f in e.findings:
                c.print(Text("    ◆ " + f, style="yellow"))
        elif isinstance(e, ev.ApprovalResolved):
            c.print(
                Text(
                    f"approval {'granted' if e.approved else 'denied'} by {e.by}"
                    + (f": {e.reason}" if e.reason else ""),
                    style="green" if e.approved else "magenta",
                )
            )
        elif isinstance(e, ev.CriticVerdict):
            c.print(Text(f"critic: {e.verdict} " + "; ".join(e.findings), style="yellow"))
        elif isinstance(e, ev.DetailDropped):
            c.print(Text(f"dropped from context: {e.what} ({e.tokens} tokens, ref {e.ref})", style="yellow"))
        elif isinstance(e, ev.Notice):
            c.print(Text(e.text, style="yellow" if e.level == "warning" else "dim"))
        elif isinstance(e, ev.FixOffered):
            c.print(Text(f"fix ready to run: {e.written} (in the console: Ctrl+F; approval first)", style="cyan"))
        elif isinstance(e, ev.ErrorEvent):
            c.print(
                Text(f"error [{e.code}]: {e.message}" + (f"\n  hint: {e.hint}" if e.hint else ""), style="bold red")
            )
        elif isinstance(e, ev.TurnFinished):
            c.print(
                Text(
                    f"— {e.reason} · {e.steps} steps · {e.prompt_tokens + e.completion_tokens} tokens · {e.duration_ms / 1000:.1f} s",
                    style="dim",
                )
            )


async def ask(session: Any, question: str, *, as_json: bool, console: Console) -> int:
    """Run one turn, rendering it; returns the exit code (non-zero on error or block)."""
    render = None if as_json else BlockRenderer(console)
    # What opening the session said (its start and every load problem: broken packs, a policy
    # typo) reaches this face before the turn, in both forms.
    starts = [i for i, e in enumerate(session.events) if isinstance(e, ev.SessionStarted)]
    for e in session.events[starts[-1] :] if starts else []:
        if as_json:
            print(ev.to_json(e), flush=True)
        else:
            render(e)  # type: ignore[misc]
    last = None
    errors = 0
    async for e in session.run_turn(question):
        if as_json:
            print(ev.to_json(e), flush=True)
        else:
            render(e)  # type: ignore[misc]
        if isinstance(e, ev.ErrorEvent):
            errors += 1
        last = e
    if last is None or last.reason != "answered" or errors:
        return 1
    return 0
