"""The one-line header: kube context, namespace, model and its readiness, session, approvals."""

from __future__ import annotations

from rich.cells import cell_len
from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget


class HeaderBar(Widget):
    """Shows where commands will act and whether the model is ready."""

    DEFAULT_CSS = """
    HeaderBar { height: 1; background: $panel; color: $foreground; padding: 0 1; }
    """

    context: reactive[str] = reactive("sandbox")
    """Kube context."""
    namespace: reactive[str] = reactive("default")
    """Default namespace."""
    model: reactive[str] = reactive("")
    """Model name."""
    model_state: reactive[str] = reactive("loading")
    """loading | ready | running | failed | offline (a server's connection is being re-established)."""
    session_id: reactive[str] = reactive("")
    """Open session id."""
    pending: reactive[int] = reactive(0)
    """Approvals waiting."""
    read_only: reactive[bool] = reactive(False)
    """Whether writes are blocked in this session."""
    server: reactive[str] = reactive("")
    """user@host:port when the session is held by `lantern serve` ('' for a local one)."""

    def render(self) -> Text:
        v = self.app.theme_variables
        state_style = {
            "ready": v.get("model-ready", ""),
            "running": v.get("status-running", ""),
            "loading": v.get("model-loading", ""),
            "failed": v.get("model-failed", ""),
            "offline": v.get("model-failed", ""),
        }.get(self.model_state, "")
        state_label = {
            "ready": "● ready",
            "running": "◐ working",
            "loading": "○ loading model…",
            "failed": "✕ model unavailable",
            "offline": "✕ reconnecting…",
        }.get(self.model_state, self.model_state)
        muted = v.get("muted", "")
        t = Text(no_wrap=True, overflow="ellipsis")
        t.append("◆ Lantern ", style=f"bold {v.get('primary', '')}")
        if self.read_only:
            # first, so a narrow terminal never cuts it off
            t.append(" READ-ONLY ", style=f"bold reverse {v.get('risk-high', '')}")
        if self.server:
            # whose session this is and where it runs, before where it acts
            t.append(" ⇄ ", style=muted)
            t.append(self.server, style=f"bold {v.get('primary', '')}")
        t.append(" ctx ", style=muted)
        t.append(self.context or "-", style="bold")
        t.append("  ns ", style=muted)
        t.append(self.namespace or "default", style="bold")
        t.append("  model ", style=muted)
        room = self.content_size.width or 10_000
        # the model's name gives way before the readiness that follows it: shortened, never dropped
        t.append(short_model(self.model or "-", room - t.cell_len - 1 - cell_len(state_label)), style="bold")
        t.append(" ")
        t.append(state_label, style=f"bold {state_style}")
        # What does not fit is left out whole (a cut-off session id reads as a different one);
        # pending approvals come first and shorten before they go.
        if self.pending:
            plural = "s" if self.pending > 1 else ""
            style = f"bold {v.get('risk-high', '')}"
            for label in (
                f"  ⚠ {self.pending} approval{plural} waiting",
                f"  ⚠ {self.pending} approval{plural}",
                f"  ⚠ {self.pending}",
            ):
                if t.cell_len + cell_len(label) <= room:
                    t.append(label, style=style)
                    break
        if self.session_id and t.cell_len + len("  session ") + len(self.session_id) <= room:
            t.append("  session ", style=muted)
            t.append(self.session_id, style=muted)
        return t


def short_model(name: str, room: int) -> str:
    """The model's name in at most `room` cells: whole, then without its provider, then cut in
    the middle ('qwen2.5…instruct'), never under 8 cells."""
    if cell_len(name) <= room:
        return name
    bare = name.rsplit("/", 1)[-1]
    if cell_len(bare) <= room:
        return bare
    room = max(room, 8)
    head = (room - 1) // 2
    return bare[:head] + "…" + bare[len(bare) - (room - 1 - head) :]
