"""Keys and commands as data: one registry feeds the bindings, the footer, the palette and `?` help.

Every key binding has a stable `id` so a user keymap (Config.keymap: id → keys) can remap it;
every `:` command is a row with its arguments and help. Nothing here imports the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Key:
    """One key binding: where it applies, what it does, and how it is described."""

    id: str
    """Stable id (user keymaps refer to it)."""
    keys: str
    """Default keys, comma separated, in Textual's key names."""
    action: str
    """The Textual action it runs."""
    description: str
    """Short label (footer, palette, help)."""
    scope: str = "app"
    """Where it applies: app, approval, list, steps, gauge, inspector, prompt."""
    show: bool = True
    """Shown in the footer."""
    priority: bool = False
    """Checked before the focused widget's own keys."""
    help: str = ""
    """A longer line for the `?` screen."""

    def binding(self) -> Binding:
        """The Textual Binding for this key."""
        return Binding(
            self.keys,
            self.action,
            self.description,
            show=self.show,
            priority=self.priority,
            id=self.id,
            tooltip=self.help,
        )


KEYS: list[Key] = [
    # app-wide
    Key(
        "app.help", "question_mark,f1", "help", "Help", help="Show every key and command, generated from this registry."
    ),
    Key(
        "app.command",
        "colon",
        "command_mode",
        "Command",
        help="Command mode: :pods, :ns NAME, :ctx, :sessions, :theme NAME, :quit.",
    ),
    Key(
        "app.filter",
        "slash",
        "filter",
        "Filter",
        show=False,
        help="Filter the focused list (timeline, dropped items, sessions).",
    ),
    Key(
        "app.back",
        "escape",
        "back",
        "Back",
        show=False,
        help="Close the top screen, leave a filter, or leave the input for the panes.",
    ),
    Key(
        "app.cancel",
        "ctrl+c",
        "cancel_turn",
        "Cancel",
        priority=True,
        help="Cancel the running turn; press again within 2 s to quit.",
    ),
    Key("app.quit", "ctrl+q", "quit", "Quit", show=False, priority=True, help="Quit Lantern."),
    Key("app.prompt", "i", "focus_prompt", "Ask", show=False, help="Focus the question input."),
    Key(
        "app.fix",
        "ctrl+f",
        "run_fix",
        "Run fix",
        priority=True,
        help="Run the fix the last answer named as a call (it asks for approval first, with its dry-run diff).",
    ),
    Key("app.inspector", "y", "toggle_inspector", "YAML", help="Open or close the YAML inspector."),
    Key(
        "app.handoff",
        "H",
        "handoff",
        "Handoff",
        show=False,
        help="Write this session's handoff (asked, findings, changes with diffs, timeline, unknowns) to $LANTERN_HOME/handoffs/ as Markdown.",
    ),
    Key("app.theme", "ctrl+t", "next_theme", "Theme", show=False, priority=True, help="Switch to the next theme."),
    Key("app.grow", "right_square_bracket", "resize(4)", "Wider", show=False, help="Make the conversation pane wider."),
    Key(
        "app.shrink",
        "left_square_bracket",
        "resize(-4)",
        "Narrower",
        show=False,
        help="Make the conversation pane narrower.",
    ),
    Key("app.timeline", "t", "focus_pane('timeline')", "Timeline", show=False, help="Focus the tool-call timeline."),
    Key("app.steps", "s", "focus_pane('steps')", "Steps", show=False, help="Focus the investigation steps."),
    Key(
        "app.conversation",
        "c",
        "focus_pane('conversation')",
        "Conversation",
        show=False,
        help="Focus the conversation (j/k scroll).",
    ),
    Key(
        "app.gauge", "g", "focus_pane('dropped')", "Gauge", show=False, help="Focus the list of dropped context items."
    ),
    # lists
    Key("list.down", "j,down", "cursor_down", "Down", scope="list", show=False, help="Move down."),
    Key("list.up", "k,up", "cursor_up", "Up", scope="list", show=False, help="Move up."),
    # conversation
    Key(
        "conversation.down",
        "j,down",
        "scroll_down",
        "Down",
        scope="conversation",
        show=False,
        help="Scroll the conversation down.",
    ),
    Key(
        "conversation.up",
        "k,up",
        "scroll_up",
        "Up",
        scope="conversation",
        show=False,
        help="Scroll the conversation up.",
    ),
    Key(
        "conversation.end",
        "G,end",
        "scroll_end",
        "End",
        scope="conversation",
        show=False,
        help="Jump to the newest message.",
    ),
    # investigation steps
    Key("steps.down", "j,down", "move(1)", "Down", scope="steps", show=False, help="Next step."),
    Key("steps.up", "k,up", "move(-1)", "Up", scope="steps", show=False, help="Previous step."),
    Key(
        "steps.expand",
        "enter,space",
        "toggle",
        "Expand",
        scope="steps",
        help="Expand a step to its full scrubbed output.",
    ),
    # gauge
    Key(
        "gauge.recall",
        "r,enter",
        "recall",
        "Recall",
        scope="gauge",
        help="Ask the agent to recall the selected dropped item (recall_detail).",
    ),
    # inspector
    Key(
        "inspector.validate",
        "ctrl+s",
        "validate",
        "Validate",
        scope="inspector",
        help="Parse and validate the manifest against the Kubernetes schema.",
    ),
    Key(
        "inspector.explain",
        "ctrl+e",
        "explain",
        "Explain",
        scope="inspector",
        help="Ask the agent to explain the manifest (a user turn).",
    ),
    Key(
        "inspector.diff",
        "ctrl+d",
        "diff",
        "Diff live",
        scope="inspector",
        help="Ask the agent to diff the manifest against the live object (a user turn).",
    ),
    Key(
        "inspector.apply",
        "ctrl+a",
        "apply",
        "Apply",
        scope="inspector",
        help="Apply the manifest (server-side apply) through the policy and the approval, which shows the dry-run diff.",
    ),
    # approval modal
    Key("approval.approve", "a", "approve", "Approve", scope="approval", help="Approve this exact call."),
    Key(
        "approval.deny",
        "d,escape",
        "deny",
        "Deny",
        scope="approval",
        help="Deny (the default; nothing is approved by timeout).",
    ),
    Key("approval.reason", "r", "deny_reason", "Deny + reason", scope="approval", help="Deny and tell the agent why."),
    Key(
        "approval.inspect",
        "i",
        "inspect",
        "Inspect",
        scope="approval",
        help="Show the full arguments and dry-run diff.",
    ),
    Key(
        "approval.scroll_down",
        "j,down",
        "scroll_down",
        "Scroll",
        scope="approval",
        show=False,
        help="Scroll the details.",
    ),
    Key("approval.scroll_up", "k,up", "scroll_up", "Scroll", scope="approval", show=False, help="Scroll the details."),
]
"""Every key binding, in help order."""


def bindings(scope: str) -> list[Binding]:
    """The Textual bindings for one scope (a class's BINDINGS)."""
    return [k.binding() for k in KEYS if k.scope == scope]


def keys_for(scope: str) -> Iterable[Key]:
    """The registry rows of one scope."""
    return (k for k in KEYS if k.scope == scope)


def effective_keys(key: Key, keymap: dict[str, str]) -> str:
    """The keys a binding answers to once the user's keymap is applied."""
    return keymap.get(key.id, key.keys)


def unknown_keymap_ids(keymap: dict[str, str]) -> list[str]:
    """Ids in a user keymap that match no binding (reported, not silently ignored)."""
    known = {k.id for k in KEYS}
    return sorted(i for i in keymap if i not in known)


@dataclass(frozen=True)
class Command:
    """One `:` command (also offered in the palette and as a `/` slash command in the input)."""

    name: str
    """What the user types after `:`."""
    args: str
    """Argument synopsis, '' when none."""
    help: str
    """One line for help and the palette."""
    action: str
    """App method `cmd_<action>` that runs it, with the argument string."""


COMMANDS: list[Command] = [
    Command("pods", "[NAME-FILTER]", "Ask the agent to list pods in the current namespace", "pods"),
    Command("ns", "NAME", "Set the default namespace", "ns"),
    Command("ctx", "[NAME]", "List kube contexts, or switch to one (opens a new session)", "ctx"),
    Command("sessions", "", "Browse sessions and reopen one", "sessions"),
    Command("theme", "NAME", "Switch theme (lantern-dark, lantern-light, lantern-contrast)", "theme"),
    Command("inspect", "", "Open the YAML inspector", "inspect"),
    Command("recall", "REF", "Ask the agent to recall a dropped detail by reference", "recall"),
    Command("handoff", "", "Write this session's handoff to a Markdown file (also H)", "handoff"),
    Command("retry", "", "Ask the agent to propose again the approvals left pending when the session closed", "retry"),
    Command("cancel", "", "Cancel the running turn", "cancel"),
    Command("new", "", "Start a new session", "new"),
    Command("help", "", "Show keys and commands", "help"),
    Command("quit", "", "Quit Lantern", "quit"),
]
"""Every `:` command, in help order."""

COMMAND_ALIASES: dict[str, str] = {"q": "quit", "namespace": "ns", "context": "ctx", "po": "pods", "s": "sessions"}
"""k9s-style short forms."""


def parse_command(line: str) -> tuple[Command | None, str, str]:
    """Split ':name args' into (command, args, error message)."""
    text = line.strip().lstrip(":/").strip()
    if not text:
        return None, "", "type a command, e.g. :pods or :ns payments"
    name, _, rest = text.partition(" ")
    name = COMMAND_ALIASES.get(name.lower(), name.lower())
    for c in COMMANDS:
        if c.name == name:
            return c, rest.strip(), ""
    close = [c.name for c in COMMANDS if c.name.startswith(name[:2])]
    hint = f" (did you mean :{close[0]}?)" if close else ""
    return None, rest, f"unknown command :{name}{hint}; ? lists them"


def completions(prefix: str = ":") -> list[str]:
    """Every command as the input suggests it (':ns ', '/theme ')."""
    return [f"{prefix}{c.name}" + (" " if c.args else "") for c in COMMANDS]
