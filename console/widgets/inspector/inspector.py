"""The YAML inspector: paste manifests (multi-document, bracketed paste), see them highlighted,
see parse and schema errors at their lines, and ask the agent to explain or diff them.

    edit ─ debounce ─▶ thread: parse ─▶ the cluster's schema (cached per cluster; none → the client's
                               models, and the status says why) ─▶ clean? the API server's dry run
                     ─▶ status line + problems by line (enter jumps)

Explain and diff are user turns sent through the engine (and so its policy); the inspector
itself only parses text.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import events, work
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Button, OptionList, Static, TextArea
from textual.widgets.option_list import Option

from console.keys import bindings

if TYPE_CHECKING:
    from console.widgets.inspector.validate import Report


class ManifestEditor(TextArea):
    """The text area, with the inspector's keys (they win over the editor's own)."""

    BINDINGS = bindings("inspector")

    async def _on_paste(self, event: events.Paste) -> None:
        # Textual calls every class's _on_paste in turn: TextArea's inserts a clean paste. One that is not
        # Unicode (a terminal's lone surrogates) would crash the editor: replaced here, TextArea's skipped.
        text, bad = valid_unicode(event.text)
        if not bad:
            return
        event.prevent_default()
        self.app.notify(_replaced(bad), severity="warning")
        if not self.read_only and (result := self._replace_via_keyboard(text, *self.selection)):
            self.move_cursor(result.end_location)
            self.focus()

    def action_validate(self) -> None:
        """Check now."""
        self.post_message(Inspector.ActionRequested("validate"))

    def action_explain(self) -> None:
        """Ask the agent to explain."""
        self.post_message(Inspector.ActionRequested("explain"))

    def action_diff(self) -> None:
        """Ask the agent to diff against the live object."""
        self.post_message(Inspector.ActionRequested("diff"))

    def action_apply(self) -> None:
        """Apply through the approval path (the modal shows the API server's dry-run diff first)."""
        self.post_message(Inspector.ActionRequested("apply"))


class IssueList(OptionList):
    """Problems by line; enter jumps to the line."""

    BINDINGS = bindings("list")


class Inspector(Vertical):
    """The inspector pane."""

    class ActionRequested(Message):
        """validate | explain | diff was asked for."""

        def __init__(self, action: str) -> None:
            super().__init__()
            self.action = action
            """Which action."""

    class TurnRequested(Message):
        """Send this text to the agent as a user turn."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text
            """The turn text."""

    class ApplyRequested(Message):
        """Apply this manifest: one call of kubernetes.apply_manifest through the policy, preview and approval."""

        def __init__(self, manifest: str) -> None:
            super().__init__()
            self.manifest = manifest
            """The manifest text."""

    def __init__(
        self, *, models: Any = None, cluster: Callable[[], Any] | None = None, debounce_s: float = 0.4, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.border_title = "Inspector · paste YAML"
        self.models = models
        """The kubernetes client's model module (injected in tests; imported lazily otherwise)."""
        self.cluster = cluster
        """Gives the cluster to check against (a skills.kube.schema.ClusterCheck), or None: local checks only."""
        self.debounce_s = debounce_s
        """Quiet time after an edit before checking."""
        self.report: Report | None = None
        """The latest check."""
        self._timer: Any = None
        self._checked: str | None = None

    def compose(self):  # type: ignore[no-untyped-def]
        editor = ManifestEditor(id="manifest", soft_wrap=False, show_line_numbers=True, tab_behavior="indent")
        if "yaml" in editor.available_languages:
            editor.language = "yaml"
        yield editor
        yield Static(id="inspector-status")
        yield IssueList(id="issues")
        with Horizontal(id="inspector-actions"):
            yield Button("Validate ^s", id="validate", compact=True)
            yield Button("Explain ^e", id="explain", compact=True)
            yield Button("Diff ^d", id="diff", compact=True)
            yield Button("Apply ^a", id="apply", compact=True)

    def on_mount(self) -> None:
        self._status("Paste one or more manifests (--- between documents).", "muted")

    @property
    def text(self) -> str:
        """The manifest text."""
        return self.query_one(ManifestEditor).text

    def load_text(self, text: str) -> None:
        """Replace the text (as a paste would) and check it."""
        text, bad = valid_unicode(text)
        if bad:
            self.app.notify(_replaced(bad), severity="warning")
        self.query_one(ManifestEditor).load_text(text)
        self.validate_now()

    def on_text_area_changed(self, event: TextArea.Changed) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(self.debounce_s, self._validate_if_changed)

    def _validate_if_changed(self) -> None:
        # a check may send the paste to the API server (a dry run): not twice for the same text
        if self.text != self._checked:
            self.validate_now()

    def validate_now(self) -> None:
        """Check the current text (in a thread)."""
        self._checked = self.text
        self._run_check(self._checked)

    @work(thread=True, exclusive=True, group="inspector")
    def _run_check(self, text: str) -> None:
        from console.widgets.inspector.validate import (
            add_server_check,
            check,
            load_models,
        )

        if not text.strip():
            self.app.call_from_thread(self._show, None)
            return
        cluster, schema, note = None, None, ""
        if self.cluster is not None:
            try:
                cluster = self.cluster()
                schema = cluster.schema()
            except Exception as exc:  # noqa: BLE001 - no cluster, unreachable, forbidden: said in one line, checked locally
                note = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if schema is None and self.models is None:
            self.models = load_models() or False
        report = check(text, None if schema is not None else (self.models or None), schema=schema, note=note)
        if report.ok and schema is not None and report.documents:
            # the schema found nothing: the API server has the last word (what the schema cannot say, and its own strictness)
            report = add_server_check(report, cluster, getattr(self.app, "namespace", "") or "default")
        self.app.call_from_thread(self._show, report)

    def _status(self, text: str, variable: str) -> None:
        style = self.app.theme_variables.get(variable, "")
        self.query_one("#inspector-status", Static).update(Text(text, style=style))

    def _show(self, report: Report | None) -> None:
        self.report = report
        issues = self.query_one(IssueList)
        issues.clear_options()
        editor = self.query_one(ManifestEditor)
        if report is None:
            self._status("Paste one or more manifests (--- between documents).", "muted")
            return
        docs = ", ".join(d.title for d in report.documents) or "no documents"
        if report.ok:
            warn = sum(1 for i in report.issues if i.level == "warning")
            self._status(
                f"✓ {len(report.documents)} valid: {docs}"
                + (f"  · {warn} warning(s)" if warn else "")
                + "  · "
                + _against(report),
                "status-ok",
            )
        else:
            n = sum(1 for i in report.issues if i.level == "error")
            self._status(f"✗ {n} problem{'s' if n != 1 else ''} · {docs} · " + _against(report), "status-error")
        v = self.app.theme_variables
        for i, issue in enumerate(report.issues):
            label = Text(no_wrap=True, overflow="ellipsis")
            label.append(f"L{issue.line:<4}", style="bold")
            label.append(
                "✗ " if issue.level == "error" else "! ",
                style=v.get("status-error" if issue.level == "error" else "status-partial", ""),
            )
            label.append(issue.message)
            issues.add_option(Option(label, id=str(i)))
        errors = [i for i in report.issues if i.level == "error"]
        editor.border_subtitle = f"first error at line {errors[0].line}" if errors else ""

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if self.report is None or event.option.id is None:
            return
        event.stop()
        issue = self.report.issues[int(event.option.id)]
        editor = self.query_one(ManifestEditor)
        editor.focus()
        editor.move_cursor((issue.line - 1, 0), center=True)
        editor.select_line(issue.line - 1)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.ActionRequested(event.button.id or ""))

    def on_inspector_action_requested(self, event: ActionRequested) -> None:
        event.stop()
        text = self.text.strip()
        if event.action == "validate":
            self.validate_now()
            return
        if not text:
            self._status("Nothing to send: paste a manifest first.", "status-partial")
            return
        if event.action == "explain":
            self.post_message(self.TurnRequested(explain_prompt(text)))
        elif event.action == "diff":
            self.post_message(self.TurnRequested(diff_prompt(text)))
        elif event.action == "apply":
            if self.report is not None and not self.report.ok:
                self._status(
                    "Fix the errors above first: a manifest that does not validate is not applied.", "status-error"
                )
                return
            self.post_message(self.ApplyRequested(text))


def valid_unicode(text: str) -> tuple[str, int]:
    """The text with what is not Unicode (lone surrogates) replaced by U+FFFD (a UTF-16 pair is joined), and how many were."""
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        return text, 0
    fixed = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return fixed, fixed.count("\ufffd") - text.count("\ufffd")


def _replaced(n: int) -> str:
    return f"The paste had {n} character{'s' if n != 1 else ''} that {'are' if n != 1 else 'is'} not valid Unicode; shown as \ufffd."


def _against(report: Report) -> str:
    """What the paste was checked against, and why not the cluster, in a few words."""
    if report.note:
        local = (
            f"checked against {report.checked_against}" if report.checked_against else "YAML and required fields only"
        )
        return f"no cluster schema ({report.note}); {local}"
    if not report.schema_checked:
        return "schema check unavailable (kubernetes client missing)"
    return f"checked against {report.checked_against}" + (
        " and its API server's dry run" if report.server_checked else ""
    )


def explain_prompt(text: str) -> str:
    """The user turn that asks the agent to explain a manifest."""
    return (
        "Explain this Kubernetes manifest: what each object does, anything risky or unusual, "
        "and what would change if it were applied.\n\n```yaml\n" + text + "\n```"
    )


def diff_prompt(text: str) -> str:
    """The user turn that asks the agent to diff a manifest against the live objects."""
    return (
        "Diff this manifest against the live objects in the cluster (read them with your tools; "
        "a server-side dry-run is fine, do not apply anything) and summarise what would change.\n\n```yaml\n"
        + text
        + "\n```"
    )
