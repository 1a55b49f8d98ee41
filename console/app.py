"""The Lantern console: the App class alone (layout in screens/, regions in widgets/, keys in keys.py)."""

from __future__ import annotations

import gc
import inspect
import json
import time
from collections.abc import Callable
from typing import Any

from textual import events, work
from textual.app import App

from console import keys as K
from console.bridge import (
    AnswerStreamed,
    ApprovalsChanged,
    Bridge,
    ConsoleApprover,
    EngineEvent,
    EngineFailed,
    EngineLink,
    EngineReady,
    EngineStarting,
    SessionFactory,
    TurnStateChanged,
)
from console.screens.main import MainScreen
from console.widgets.conversation.conversation import Conversation
from console.widgets.conversation.prompt import PromptInput
from console.widgets.gauge.gauge import DroppedList
from console.widgets.header.header_bar import HeaderBar
from console.widgets.investigation.steps import StepList
from engine import events as ev
from themes import BUILTIN, CSS_FILES, DEFAULT_VARIABLES, load_user_themes, resolve_name

WELCOME = (
    "Ask about an incident in plain words, e.g. “why is checkout failing in payments?”.\n"
    "The agent reads pods, logs, events and rollouts; any change it proposes waits for your approval.\n"
    "esc → panes (j/k move, enter expands) · : commands · ? all keys · y YAML inspector · ctrl+c cancels"
)
"""Shown when a new session opens."""

MAIN_ACTIONS = {"command_mode", "filter", "focus_prompt", "toggle_inspector", "resize", "focus_pane", "help", "run_fix"}
"""Actions that only make sense on the main screen (not under a modal)."""


def _palette() -> type:
    # Imported when the palette first opens, not at start-up.
    from console.screens.palette import RegistryCommands

    return RegistryCommands


class LanternApp(App[int]):
    """The full-screen operations console."""

    CSS_PATH = CSS_FILES
    TITLE = "Lantern"
    BINDINGS = K.bindings("app")
    COMMANDS = App.COMMANDS | {_palette}
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        args: Any = None,
        *,
        config: Any = None,
        session_factory: SessionFactory | None = None,
        clock: Callable[[], Any] | None = None,
        tz: Any = None,
        countdown_s: float = 5.0,
        store_path: str | None = None,
        inspector_models: Any = None,
        inspector_cluster: Callable[[], Any] | None = None,
        start_engine: bool = True,
        blink: bool = True,
    ) -> None:
        super().__init__()
        self.args = args
        """The command line (model, context, namespace, cont, session, theme)."""
        self.cfg = config
        """The merged Config (loaded in on_mount when not given)."""
        self.session_factory = session_factory
        """How the session is built (tests inject a scripted one)."""
        self.clock = clock
        """Time source for the session's events (frozen in snapshot tests)."""
        self.tz = tz
        """Time zone for timestamps (None: local)."""
        self.countdown_s = countdown_s
        """Seconds a 'confirm' approval waits before it proceeds."""
        self.store_path = store_path
        """The store file (None: under LANTERN_HOME)."""
        self.inspector_models = inspector_models
        """Kubernetes model module for the inspector (tests inject it)."""
        self.inspector_cluster: Callable[[], Any] = inspector_cluster or self._cluster_check
        """Gives the cluster the inspector checks manifests against (tests inject one)."""
        self.start_engine = start_engine
        """False leaves the engine unstarted (benchmarks of the bare UI)."""
        self.blink = blink
        """Cursor blink (off in snapshots)."""
        self.bridge: EngineLink | None = None
        """The link to the engine (in process, or a server's session), once configured."""
        self.keymap: dict[str, str] = {}
        """The user's keymap (binding id → keys)."""
        self.theme_names: list[str] = [t.name for t in BUILTIN]
        """Themes :theme and ctrl+t cycle through."""
        self.namespace = ""
        """Default namespace for :pods."""
        self.first_frame_at: float | None = None
        """perf_counter() when the first frame was drawn."""
        self.stale_approvals: list[Any] = []
        """Approval requests left unanswered when a reopened session last closed."""
        self.offered_fix: Any = None
        """The last answer's fix as a runnable call (FixOffered), until the next turn starts."""
        self._queued: list[str] = []
        self._last_ctrl_c = 0.0
        self._freezes = 0
        self.last_key_at = 0.0
        """time.monotonic() of the latest keypress (the stream redraws less often while typing)."""

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key):
            self.last_key_at = time.monotonic()
        await super().on_event(event)

    # -- start-up ---------------------------------------------------------------------------------
    def get_theme_variable_defaults(self) -> dict[str, str]:
        return {**super().get_theme_variable_defaults(), **DEFAULT_VARIABLES}

    async def on_mount(self) -> None:
        # The first frame needs only Textual and the built-in themes: the config, user themes
        # and the engine load in workers after it is on screen.
        base = dict(DEFAULT_VARIABLES)
        for spec in BUILTIN:
            self.register_theme(spec.to_theme(base))
        wanted = resolve_name(
            getattr(self.args, "theme", None) or (self.cfg.theme if self.cfg is not None else "lantern-dark")
        )
        self.theme = wanted if wanted in self.theme_names else "lantern-dark"
        await self.push_screen(MainScreen(tz=self.tz, inspector_models=self.inspector_models))
        if not self.blink:
            from textual.widgets import Input

            for w in self.main.query(Input):
                w.cursor_blink = False
        header = self.main.query_one(HeaderBar)
        a = self.args
        header.context = getattr(a, "context", None) or (self.cfg.context if self.cfg else None) or "sandbox"
        header.namespace = getattr(a, "namespace", None) or (self.cfg.namespace if self.cfg else None) or "default"
        header.model = getattr(a, "model", None) or (self.cfg.model if self.cfg else None) or "…"
        header.read_only = bool(getattr(a, "read_only", False) or (self.cfg.read_only if self.cfg else False))
        self.call_after_refresh(self._after_first_frame)

    def _after_first_frame(self) -> None:
        self.first_frame_at = time.perf_counter()
        self.run_worker(self._configure(), group="config", name="configure")

    async def _configure(self) -> None:
        """Load the config, user themes and keymap off the UI thread, then start the engine."""
        import asyncio

        problems: list[str] = []
        if self.cfg is None:
            self.cfg, problems = await asyncio.to_thread(_load_config, self.args)
        from engine.config import config_path, resolve_model

        base = dict(DEFAULT_VARIABLES)
        user_specs, theme_errors = await asyncio.to_thread(load_user_themes, config_path().parent / "themes")
        for spec in user_specs:
            self.register_theme(spec.to_theme(base))
            if spec.name not in self.theme_names:
                self.theme_names.append(spec.name)
        problems.extend(theme_errors)
        wanted = resolve_name(getattr(self.args, "theme", None) or self.cfg.theme)
        if wanted not in self.theme_names:
            problems.append(f"unknown theme {wanted!r}; using lantern-dark (known: {', '.join(self.theme_names)})")
            wanted = "lantern-dark"
        if wanted != self.theme:
            self.theme = wanted
        self.keymap = dict(self.cfg.keymap)
        bad = K.unknown_keymap_ids(self.keymap)
        if bad:
            problems.append(f"keymap: unknown binding id(s) {', '.join(bad)}; see ? for ids")
        self.set_keymap({k: v for k, v in self.keymap.items() if k not in bad})
        self.namespace = self.cfg.namespace or "default"
        header = self.main.query_one(HeaderBar)
        header.context = self.cfg.context or "sandbox"
        header.namespace = self.namespace
        header.model = resolve_model(self.cfg)
        header.read_only = header.read_only or self.cfg.read_only
        for p in problems:
            self.notify(p, severity="warning", timeout=8)
        approver = ConsoleApprover(self, countdown_s=self.countdown_s, user=self.cfg.user)
        server = getattr(self.args, "server", None)
        if server:
            from console.remote_bridge import RemoteBridge

            header.model = "…"
            self.bridge = RemoteBridge(self, self.cfg, server=server, approver=approver)
        else:
            self.bridge = Bridge(
                self, self.cfg, factory=self.session_factory, approver=approver, store_path=self.store_path
            )
        if self.start_engine:
            a = self.args
            self.start_session(session_id=getattr(a, "session", None), latest=bool(getattr(a, "cont", False)))

    def start_session(self, *, session_id: str | None = None, latest: bool = False) -> None:
        """Open a session in the engine worker (the UI stays live meanwhile)."""
        assert self.bridge is not None
        self.main.query_one(HeaderBar).model_state = "loading"
        self.run_worker(self._start(session_id, latest), exclusive=True, group="engine", name="engine-start")

    async def _start(self, session_id: str | None, latest: bool) -> None:
        assert self.bridge is not None
        await self.bridge.start(session_id=session_id, latest=latest)
        if self.clock is not None and isinstance(self.bridge, Bridge) and self.bridge.session is not None:
            self.bridge.session.clock = self.clock

    def _freeze_heap(self, upto: int) -> None:
        """Exempt everything alive now (modules, engine, model adapter) from garbage collection.

        A full collection walks every tracked object; with the engine loaded that is a 200-300 ms
        pause, and one landing while an answer streams is a keystroke drawn that late. Frozen
        objects are never scanned again, so later collections walk only what the session
        allocates. Nothing is collected first (that would be the same pause); garbage alive at
        this moment is never reclaimed, so it is done at most twice: when the engine is ready
        and after the first turn. Headless apps (tests, many per process) leave the heap alone.
        """
        if self._freezes < upto and not self.is_headless:
            self._freezes = upto
            gc.freeze()

    @property
    def main(self) -> MainScreen:
        """The main screen."""
        for s in self.screen_stack:
            if isinstance(s, MainScreen):
                return s
        raise LookupError("main screen not mounted")

    def _live_main(self) -> MainScreen | None:
        """The main screen with its panes, or None once the app is shutting down.

        The engine posts from its own task, so its messages can still arrive after exit has
        emptied the screen stack, or while shutdown is removing the panes (is_running is False
        from its first step); those have nothing left to draw in (the session store already
        holds them) and are dropped here, in one place, rather than raised into the test harness
        or the terminal.
        """
        try:
            screen = self.main
        except LookupError:
            return None
        # Checked on every streamed answer chunk: flags only, no walk of the widget tree.
        return None if self._exit or not self.is_running or not screen.is_attached else screen

    # -- engine messages --------------------------------------------------------------------------
    def on_engine_starting(self, message: EngineStarting) -> None:
        if (main := self._live_main()) is None:
            return
        header = main.query_one(HeaderBar)
        header.model, header.model_state = message.model, "loading"

    async def on_engine_ready(self, message: EngineReady) -> None:
        self._freeze_heap(1)
        if self._live_main() is None:
            return
        session = message.session
        header = self.main.query_one(HeaderBar)
        header.model = message.model or header.model
        header.session_id = session.id
        started = next((e for e in reversed(session.events) if isinstance(e, ev.SessionStarted)), None)
        if started is not None:
            # The engine may have chosen the world (the sandbox and its incident's namespace).
            header.context = started.context or header.context
            header.read_only = header.read_only or bool(getattr(started, "read_only", False))
            if started.namespace:
                self.namespace = header.namespace = started.namespace
        header.model_state = "running" if session.running else "ready"
        screen = self.main
        if not message.resumed and not any(isinstance(e, ev.UserMessage) for e in session.events):
            screen.query_one(Conversation).notice(WELCOME, "welcome")
        if message.resumed:
            screen.reset()
            for e in session.events:
                await screen.show_event(e, replay=True)
            requested = {e.request_id: e for e in session.events if isinstance(e, ev.ApprovalRequested)}
            resolved = {e.request_id for e in session.events if isinstance(e, ev.ApprovalResolved)}
            # a running turn's requests are live (a face attached to a server asks them), not stale
            waiting = [] if session.running else [r for rid, r in requested.items() if rid not in resolved]
            n_turns = max((getattr(e, "turn", 0) for e in session.events), default=0)
            screen.query_one(Conversation).notice(
                f"Reopened session {session.id} ({n_turns} turn{'s' if n_turns != 1 else ''}, {len(session.events)} events).",
                "info",
            )
            if waiting:
                names = ", ".join(f"{r.tool}({', '.join(f'{k}={v}' for k, v in r.arguments.items())})" for r in waiting)
                screen.query_one(Conversation).notice(
                    f"⚠ {len(waiting)} approval{'s were' if len(waiting) > 1 else ' was'} pending when the session closed: {names}. "
                    "Nothing ran. :retry asks the agent to propose it again, so you can approve or deny it now.",
                    "warning",
                )
                header.pending = len(waiting)
            self.stale_approvals = waiting
        opening = getattr(session, "opening", None)
        if self._queued:
            text = self._queued.pop(0)
            self._queued.clear()
            self.send(text, echo=False)
        elif opening and not message.resumed:
            # First run on the embedded world: the live incident is investigated straight away.
            self.send(opening)

    def on_server_attached(self, message: Any) -> None:
        if (main := self._live_main()) is None:
            return
        header = main.query_one(HeaderBar)
        header.server = f"{message.user}@{message.server}"
        if message.reconnected:
            header.model_state = "running" if self.bridge is not None and self.bridge.running else "ready"
            caught = (
                f"; {message.caught_up} event{'s' if message.caught_up != 1 else ''} caught up"
                if message.caught_up
                else ""
            )
            main.query_one(Conversation).notice(f"Reconnected to {message.server}{caught}.", "info")

    def on_connection_lost(self, message: Any) -> None:
        if (main := self._live_main()) is None:
            return
        main.query_one(HeaderBar).model_state = "offline"
        if message.first:
            main.query_one(Conversation).notice(
                f"⚠ Lost the connection to the server ({message.why}); reconnecting…", "warning"
            )

    def on_engine_failed(self, message: EngineFailed) -> None:
        if (main := self._live_main()) is None:
            return
        header = main.query_one(HeaderBar)
        conv = main.query_one(Conversation)
        if message.code == "no-session":
            conv.notice(message.message, "warning")
            return
        if self.bridge is not None and self.bridge.session is None:
            header.model_state = "failed"
        conv.notice(f"✗ {message.message}" + (f"\n  hint: {message.hint}" if message.hint else ""), "error")
        self._queued.clear()

    async def on_engine_event(self, message: EngineEvent) -> None:
        from textual.css.query import NoMatches

        if (main := self._live_main()) is None:
            return
        try:
            await main.show_event(message.event)
        except NoMatches:
            # The panes can also go while the event is being drawn (exit began meanwhile).
            if self._live_main() is not None and self.is_running and not self._exit:
                raise

    def on_answer_streamed(self, message: AnswerStreamed) -> None:
        if (main := self._live_main()) is not None:
            main.stream(message.turn, message.step, message.text)

    def on_turn_state_changed(self, message: TurnStateChanged) -> None:
        if not message.running:
            # The first turn loads retrieval and the tools' modules: freeze those too.
            self._freeze_heap(2)
        if (main := self._live_main()) is None:
            return
        header = main.query_one(HeaderBar)
        if header.model_state != "failed":
            header.model_state = "running" if message.running else "ready"

    def on_approvals_changed(self, message: ApprovalsChanged) -> None:
        if (main := self._live_main()) is None:
            return
        main.query_one(HeaderBar).pending = message.pending
        from console.screens.approval import ApprovalScreen

        for screen in self.screen_stack:
            if isinstance(screen, ApprovalScreen) and screen.is_mounted:
                screen.queued = max(0, message.pending - 1)
                screen.render_request()

    # -- user requests ----------------------------------------------------------------------------
    def send(self, text: str, *, echo: bool = True) -> bool:
        """Send a user turn through the engine; False (with a visible reason) when it cannot run now."""
        bridge = self.bridge
        conv = self.main.query_one(Conversation)
        if bridge is None or not bridge.ready:
            if bridge is not None and bridge.error:
                conv.notice(f"✗ The model is not available, so this was not sent: {bridge.error}", "error")
                return False
            self._queued.append(text)
            if echo:
                conv.notice("The model is still loading; your question will be sent when it is ready.", "info")
            return True
        if bridge.running:
            self.notify("A turn is running: wait for it, or ctrl+c to cancel it.", severity="warning")
            return False
        self.run_worker(bridge.run_turn(text), exclusive=True, group="agent", name="turn")
        return True

    def on_prompt_input_asked(self, message: PromptInput.Asked) -> None:
        if not self.send(message.text):
            # Keep what was typed: nothing the user wrote is lost.
            self.main.query_one(PromptInput).value = message.text

    def on_prompt_input_command_entered(self, message: PromptInput.CommandEntered) -> None:
        self.run_command(message.line)

    def on_prompt_input_mode_requested(self, message: PromptInput.ModeRequested) -> None:
        if message.mode == "command":
            self.action_command_mode()
        else:
            self.action_help()

    def on_dropped_list_recall_requested(self, message: DroppedList.RecallRequested) -> None:
        self.cmd_recall(message.item.ref, what=message.item.what)

    def _cluster_check(self) -> Any:
        """The cluster the kubernetes pack acts on, as the inspector checks against it (its schema, its dry run)."""
        from skills.kube.schema import ClusterCheck

        return ClusterCheck(self.cfg.context if self.cfg is not None else None)

    async def on_inspector_apply_requested(self, message: Any) -> None:
        bridge = self.bridge
        if bridge is None or not bridge.ready or bridge.running:
            self.notify("The engine is busy or not ready: apply again when the turn has finished.", severity="warning")
            return
        args = {"manifest": message.manifest, "namespace": self.namespace or "default"}
        self.run_worker(
            bridge.run_call("apply the manifest from the inspector", "kubernetes.apply_manifest", args),
            exclusive=True,
            group="agent",
            name="apply",
        )
        await self.main.toggle_inspector()

    async def on_inspector_turn_requested(self, message: Any) -> None:
        if self.send(message.text):
            await self.main.toggle_inspector()

    async def on_step_list_expand_requested(self, message: StepList.ExpandRequested) -> None:
        if self.bridge is None:
            return
        block = message.block
        for c in block.calls.values():
            if c.output_ref and c.call_id not in block.full:
                body = await self.bridge.blob(c.output_ref)
                if body is not None:
                    block.full[c.call_id] = body
        block.refresh_view()

    # -- commands (:name args) --------------------------------------------------------------------
    def run_command(self, line: str) -> None:
        """Run a `:` or `/` command line."""
        cmd, args, error = K.parse_command(line)
        if cmd is None:
            self.notify(error, severity="warning")
            return
        result = getattr(self, f"cmd_{cmd.action}")(args)
        if inspect.isawaitable(result):
            self.run_worker(result, group="ui")

    def cmd_pods(self, args: str) -> None:
        """Ask the agent for the pods of the current namespace."""
        extra = f" whose name contains {args!r}" if args else ""
        self.send(f"List the pods in namespace {self.namespace}{extra}, with their status and restarts.")

    def cmd_ns(self, args: str) -> None:
        """Set the default namespace."""
        name = args.strip()
        if not name:
            self.notify(f"namespace is {self.namespace}; :ns NAME changes it", severity="information")
            return
        self.namespace = name
        self.main.query_one(HeaderBar).namespace = name
        self.notify(f"namespace: {name}")

    def cmd_ctx(self, args: str) -> None:
        """List kube contexts, or switch to one."""
        if args.strip():
            self._switch_context(args.strip())
        else:
            self._pick_context()

    @work(group="ui")
    async def _pick_context(self) -> None:
        import asyncio

        from console.screens.picker import PickerScreen

        names, current, note = await asyncio.to_thread(_kube_contexts)
        rows = [(n, [("● " if n == current else "  ") + n]) for n in names]
        choice = await self.push_screen_wait(
            PickerScreen(
                "Kube contexts" + (f" · {note}" if note else ""), ["context"], rows, empty=note or "no contexts"
            )
        )
        if choice:
            self._switch_context(choice)

    def _switch_context(self, name: str) -> None:
        assert self.cfg is not None and self.bridge is not None
        if self.bridge.remote is not None:
            self.notify("The server's sessions act in the server's context; :ctx applies to a local session.")
            return
        assert isinstance(self.bridge, Bridge)
        if self.bridge.running:
            self.notify("A turn is running; cancel it (ctrl+c) before switching context.", severity="warning")
            return
        self.cfg = self.cfg.model_copy(update={"context": name})
        self.bridge.cfg = self.cfg
        self.bridge.session = None
        self.main.query_one(HeaderBar).context = name
        self.main.reset()
        self.main.query_one(Conversation).notice(f"Context {name}: a new session opens against it.", "info")
        self.start_session()

    def cmd_sessions(self, args: str) -> None:
        """Browse sessions and reopen one."""
        self._pick_session()

    @work(group="ui")
    async def _pick_session(self) -> None:
        from console.screens.picker import PickerScreen

        assert self.bridge is not None
        try:
            rows = await self.bridge.sessions()
        except Exception as exc:  # noqa: BLE001 - an unreadable store is reported, not raised
            self.notify(f"cannot read sessions: {exc}", severity="error")
            return
        table = [
            (r.id, [r.id, r.updated_at[:16].replace("T", " "), r.title or "(no question yet)", str(r.events)])
            for r in rows
        ]
        choice = await self.push_screen_wait(
            PickerScreen("Sessions", ["id", "updated", "first question", "events"], table, empty="no sessions yet")
        )
        if choice:
            if self.bridge.running:
                self.notify("A turn is running; cancel it (ctrl+c) before switching session.", severity="warning")
                return
            self.start_session(session_id=choice)

    def cmd_theme(self, args: str) -> None:
        """Switch theme."""
        name = resolve_name(args.strip())
        if name not in self.theme_names:
            self.notify(
                f"unknown theme {args.strip()!r}; known: {', '.join(self.theme_names)} (or dark, light, high-contrast)",
                severity="warning",
            )
            return
        self.theme = name

    async def cmd_inspect(self, args: str) -> None:
        """Open the YAML inspector."""
        if not self.main.has_class("-inspecting"):
            await self.main.toggle_inspector()

    def cmd_recall(self, args: str, what: str = "") -> None:
        """Ask the agent to bring a dropped detail back (its recall_detail tool)."""
        ref = args.strip()
        if not ref:
            self.notify("usage: :recall REF (refs are listed in the context gauge)", severity="warning")
            return
        about = f" ({what})" if what else ""
        self.send(f"Recall the dropped detail {ref}{about} with recall_detail(ref={ref!r}) and tell me what it says.")

    def cmd_retry(self, args: str) -> None:
        """Ask the agent (a user turn, so the policy asks again) to re-propose the stale approvals."""
        if not self.stale_approvals:
            self.notify("No approvals were left pending in this session.")
            return
        calls = "; ".join(f"{r.tool}({json.dumps(r.arguments, sort_keys=True)})" for r in self.stale_approvals)
        if self.send(
            f"These actions were waiting for my approval when the session closed and did not run: {calls}. Check they are still right and propose them again."
        ):
            self.stale_approvals = []
            self.main.query_one(HeaderBar).pending = 0

    def cmd_handoff(self, args: str) -> None:
        """Write the current session's handoff to a file."""
        self.action_handoff()

    def cmd_cancel(self, args: str) -> None:
        """Cancel the running turn."""
        if self.bridge is None or not self.bridge.cancel():
            self.notify("No turn is running.")

    def cmd_new(self, args: str) -> None:
        """Start a new session."""
        if self.bridge is not None and self.bridge.running:
            self.notify("A turn is running; cancel it first (ctrl+c).", severity="warning")
            return
        self.main.reset()
        self.start_session()

    def cmd_help(self, args: str) -> None:
        """Show help."""
        self.action_help()

    def cmd_quit(self, args: str) -> None:
        """Quit."""
        self.exit(0)

    # -- actions (bound in keys.py) ---------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in MAIN_ACTIONS and not isinstance(self.screen, MainScreen):
            return False
        if action == "run_fix" and self.offered_fix is None:
            return False
        return True

    def offer_fix(self, offer: Any) -> None:
        """Keep the answer's runnable fix (None: a new turn started) and redraw the footer's keys."""
        self.offered_fix = offer
        self.refresh_bindings()

    async def action_run_fix(self) -> None:
        """Run the fix the last answer named, as the person's own call: the same policy, dry-run
        preview, approval and audit as any call (the approval dialog opens next)."""
        offer, bridge = self.offered_fix, self.bridge
        if offer is None:
            self.notify("The last answer named no fix this console can run.", severity="warning")
            return
        if bridge is None or not bridge.ready or bridge.running:
            self.notify("The engine is busy or not ready: run the fix when the turn has finished.", severity="warning")
            return
        self.offer_fix(None)
        self.run_worker(
            bridge.run_call(f"run the proposed fix: {offer.written}", offer.tool, dict(offer.arguments)),
            exclusive=True,
            group="agent",
            name="fix",
        )

    def action_help(self) -> None:
        """Show every key and command."""
        from console.screens.help import HelpScreen

        self.push_screen(HelpScreen(self.keymap))

    def action_command_mode(self) -> None:
        """Open the `:` command line."""
        from console.screens.command import CommandScreen

        extra = [f"theme {n}" for n in self.theme_names] + [f"ns {self.namespace}"]
        self.push_screen(CommandScreen(extra), lambda line: self.run_command(line) if line else None)

    def action_filter(self) -> None:
        """Filter the focused list."""
        if not self.main.open_filter():
            self.notify("/ filters a list: focus the timeline (t) or the dropped items (g) first.")

    async def action_back(self) -> None:
        """Leave the filter, the inspector, or the input."""
        screen = self.main
        if screen.close_filter(keep=False):
            return
        if screen.has_class("-inspecting"):
            await screen.toggle_inspector()
            return
        if isinstance(self.focused, PromptInput):
            screen.query_one(StepList).focus()

    def action_cancel_turn(self) -> None:
        """ctrl+c: cancel the running turn; a second press within 2 s quits."""
        now = time.monotonic()
        if now - self._last_ctrl_c < 2.0:
            self.exit(0)
            return
        self._last_ctrl_c = now
        if self.bridge is not None and self.bridge.cancel():
            self.notify("Cancelling the turn… (ctrl+c again to quit)")
        else:
            self.notify("Press ctrl+c again to quit.")

    @work(group="ui")
    async def action_handoff(self) -> None:
        """Write the current session's handoff (engine.handoff) under LANTERN_HOME and say where."""
        from engine import handoff
        from engine.config import lantern_home

        if self.bridge is not None and self.bridge.remote is not None and self.bridge.session is not None:
            self.notify(f"The server holds this session: `lantern handoff {self.bridge.session.id}` on its machine.")
            return
        if self.bridge is None or self.bridge.session is None or self.bridge.store is None:
            self.notify("No session yet: nothing to hand off.", severity="warning")
            return
        try:
            path = await handoff.export(self.bridge.store, self.bridge.session.id, lantern_home() / "handoffs")
        except Exception as exc:  # noqa: BLE001 - a file that cannot be written is reported, not raised
            self.notify(f"cannot write the handoff: {exc}", severity="error")
            return
        self.notify(f"Handoff written to {path}", timeout=10)

    def action_focus_prompt(self) -> None:
        """Focus the input."""
        self.main.query_one(PromptInput).focus()

    async def action_toggle_inspector(self) -> None:
        """Open or close the inspector."""
        await self.main.toggle_inspector()

    def action_next_theme(self) -> None:
        """Cycle themes."""
        i = self.theme_names.index(self.theme) if self.theme in self.theme_names else -1
        self.theme = self.theme_names[(i + 1) % len(self.theme_names)]
        self.notify(f"theme: {self.theme}")

    def action_resize(self, delta: int) -> None:
        """Move the split."""
        self.main.resize_panes(int(delta))

    async def action_focus_pane(self, pane: str) -> None:
        """Focus a pane by id."""
        screen = self.main
        if screen.has_class("-inspecting"):
            await screen.toggle_inspector()
        screen.query_one(f"#{pane}").focus()

    def watch_theme(self, theme: str) -> None:
        # Widgets that draw with theme variables in Python redraw on a theme change.
        try:
            screen = self.main
        except LookupError:
            return
        from console.widgets.gauge.gauge import GaugeView
        from console.widgets.investigation.steps import StepBlock

        screen.query_one(HeaderBar).refresh()
        screen.query_one(GaugeView).refresh_view()
        for b in screen.query(StepBlock):
            b.refresh_view()

    async def on_unmount(self) -> None:
        if self.bridge is not None:
            await self.bridge.close()


def _load_config(args: Any) -> tuple[Any, list[str]]:
    """The merged Config for a command line; a bad file is reported and defaults are used."""
    from engine.config import Config, ConfigError, load

    fields = {k: getattr(args, k, None) for k in ("model", "context", "namespace")}
    fields["read_only"] = True if getattr(args, "read_only", False) else None
    try:
        return load(**fields), []
    except ConfigError as exc:
        return Config(**{k: v for k, v in fields.items() if v is not None}), [f"config: {exc} (using defaults)"]


def _kube_contexts() -> tuple[list[str], str | None, str]:
    """(context names, current, note) from the kubeconfig; the sandbox when there is none."""
    try:
        from kubernetes import config as kconfig

        contexts, current = kconfig.list_kube_config_contexts()
    except Exception as exc:  # noqa: BLE001 - no kubeconfig is normal on a laptop
        return ["sandbox"], "sandbox", f"no kubeconfig ({type(exc).__name__}); the sandbox is used"
    names = [c["name"] for c in contexts]
    return names, (current or {}).get("name"), ""
