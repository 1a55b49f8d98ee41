"""The only place the console touches the engine: warm-up, turns, and approvals, as worker code.

The bridge opens the session in a worker after the first frame (heavy imports run in a thread),
runs each turn in one exclusive worker (`group="agent"`) that reads `Session.run_turn` and posts
messages to the app, and answers approval requests with a modal pushed from inside that worker.
Widgets never call a model or an executor; they post a request and the bridge turns it into a
user turn.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from textual.message import Message

from engine import events as ev

if TYPE_CHECKING:
    from textual.app import App

    from engine.config import Config
    from engine.loop import ApprovalAnswer, Session
    from engine.store import Store


class SessionFactory(Protocol):
    """Builds the session the console talks to (injected in tests: scripted model, frozen clock)."""

    async def __call__(self, cfg: Config, *, store: Store, approver: Any, session_id: str | None) -> Session: ...


async def default_session_factory(cfg: Config, *, store: Store, approver: Any, session_id: str | None) -> Session:
    """The real wiring: wiring.open_session, with the slow model/toolbox set-up in threads."""
    from engine.config import resolve_model

    runtime = await asyncio.to_thread(importlib.import_module, "wiring")
    alert = None
    world_error = ""
    if session_id is None:
        # No kubeconfig on this machine: the embedded world (the sandbox with a live incident).
        try:
            alert = await asyncio.to_thread(runtime.embedded_world, cfg)
        except Exception as exc:  # noqa: BLE001 - the console still opens; it says why there is no cluster
            world_error = getattr(exc, "message", None) or str(exc)
    model = await asyncio.to_thread(runtime.make_model, resolve_model(cfg), cfg)
    toolbox = await asyncio.to_thread(runtime.make_toolbox, cfg)
    session = await runtime.open_session(
        cfg, store=store, approver=approver, session_id=session_id, model=model, toolbox=toolbox
    )
    if world_error:
        await session.emit(
            ev.Notice, text=f"The sandbox cluster could not start: {world_error}", level="warning", topic="world"
        )
    if alert and (note := await asyncio.to_thread(runtime.metrics_note)):
        await session.emit(ev.Notice, text=note, level="info", topic="world")
    if alert and cfg.namespace and "kubernetes.list_pods" in toolbox.tools:
        # As k9s opens on the pods: the alert's namespace is read before the model's first step,
        # and the findings' follow-ups (describe the sick pods, their previous logs) run with it.
        reads = [{"name": "kubernetes.list_pods", "arguments": {"namespace": cfg.namespace}}]
        session.first_turn_reads(reads, cfg.namespace)
    if alert:
        # Read after the model loaded: by then the re-armed scenario may have made Prometheus fire.
        firing = await asyncio.to_thread(runtime.firing_alerts, cfg)
        now = f"Firing now in the sandbox's Prometheus: {'; '.join(firing)}. " if firing else ""
        session.opening = (  # type: ignore[attr-defined]
            f"Alert from the sandbox cluster (context {cfg.context}): {alert.rstrip('. ')}. {now}"
            "The alert is unconfirmed until a read shows its condition; if no read confirms it, say so plainly. "
            "Investigate: find the root cause with evidence, then propose the smallest safe fix as a call of a tool "
            "you can run, or say that no available action can make it and what a person must do."
        )
    return session


# -- messages the bridge posts to the app ---------------------------------------------------------


class EngineStarting(Message):
    """The engine began warming up (imports, model, store)."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model
        """The model being prepared."""


class EngineReady(Message):
    """The session is open; `session.events` holds any past events to render."""

    def __init__(self, session: SessionView, resumed: bool, model: str | None = None) -> None:
        super().__init__()
        self.session = session
        """The open session (a local Session, or a remote one's view)."""
        self.resumed = resumed
        """True for --continue / --session / :sessions."""
        self.model = model if model is not None else session.model.name  # type: ignore[attr-defined]
        """The model the session talks to."""


class EngineFailed(Message):
    """The engine could not start (the console stays usable and says why)."""

    def __init__(self, message: str, hint: str = "", code: str = "") -> None:
        super().__init__()
        self.message = message
        """What failed, in words."""
        self.hint = hint
        """What to do about it."""
        self.code = code
        """The typed error code, when the engine gave one."""


class EngineEvent(Message):
    """One event of the running turn (already persisted by the engine)."""

    def __init__(self, event: Any) -> None:
        super().__init__()
        self.event = event
        """The engine event."""


class AnswerStreamed(Message):
    """The text streamed so far for one step; newer messages replace older queued ones."""

    def __init__(self, turn: int, step: int, text: str) -> None:
        super().__init__()
        self.turn = turn
        """The turn."""
        self.step = step
        """The model step within the turn."""
        self.text = text
        """Everything streamed so far in this step."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, AnswerStreamed) and (message.turn, message.step) == (self.turn, self.step)


class TurnStateChanged(Message):
    """A turn started or ended."""

    def __init__(self, running: bool) -> None:
        super().__init__()
        self.running = running
        """True while a turn runs."""


class ApprovalsChanged(Message):
    """The number of approval requests waiting for a human changed."""

    def __init__(self, pending: int) -> None:
        super().__init__()
        self.pending = pending
        """Requests waiting (the one on screen included)."""


# -- the seam: what the app drives, local or remote ------------------------------------------------


class SessionView(Protocol):
    """What the app reads of an open session, local or held by a server."""

    id: str
    events: list[Any]

    @property
    def running(self) -> bool: ...


class EngineLink(Protocol):
    """The one interface the app drives: `Bridge` (the engine in this process) and
    `console.remote_bridge.RemoteBridge` (a session held by `lantern serve`) both satisfy it.
    Everything arrives as the messages above; nothing else of the engine reaches the app."""

    cfg: Config
    approver: ConsoleApprover
    error: str
    store: Store | None
    """The local store (None on a remote link: the server has it)."""
    remote: Any
    """The server's client (None for a local link)."""

    @property
    def session(self) -> SessionView | None: ...

    @property
    def ready(self) -> bool: ...

    @property
    def running(self) -> bool: ...

    async def start(self, *, session_id: str | None = None, latest: bool = False) -> None: ...

    async def run_turn(self, text: str) -> None: ...

    async def run_call(self, text: str, tool: str, arguments: dict[str, Any]) -> None: ...

    def cancel(self) -> bool: ...

    async def blob(self, ref: str) -> str | None: ...

    async def sessions(self, limit: int = 200) -> list[Any]: ...

    async def close(self) -> None: ...


# -- approvals ------------------------------------------------------------------------------------


class ConsoleApprover:
    """The engine's Approver for the console: one modal at a time, the rest queue behind it."""

    def __init__(self, app: App[Any], *, countdown_s: float = 5.0, user: str = "operator") -> None:
        self.app = app
        """The app that shows the modal."""
        self.countdown_s = countdown_s
        """Seconds a 'confirm' request waits before it proceeds (cancellable)."""
        self.user = user
        """Who answers (recorded in ApprovalResolved.by)."""
        self.pending: list[Any] = []
        """Requests waiting, oldest first."""
        self.withdrawn: dict[str, str] = {}
        """request id → why it no longer needs this face's answer (answered on another face, expired)."""
        self._lock = asyncio.Lock()

    async def ask(self, request: Any) -> ApprovalAnswer:
        """Show the request and wait for the human's answer (called from inside the turn worker)."""
        from console.screens.approval import ApprovalScreen
        from engine.loop import ApprovalAnswer

        self.pending.append(request)
        self.app.post_message(ApprovalsChanged(len(self.pending)))
        try:
            async with self._lock:
                if request.request_id in self.withdrawn:
                    return ApprovalAnswer.to(request, False, self.user, self.withdrawn[request.request_id])
                queued = len(self.pending) - 1
                answer = await self.app.push_screen_wait(
                    ApprovalScreen(request, queued=queued, countdown_s=self.countdown_s, user=self.user)
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a broken modal must deny, never approve
            answer = ApprovalAnswer.to(request, False, "console", f"approval screen failed: {exc}")
        finally:
            if request in self.pending:
                self.pending.remove(request)
            self.app.post_message(ApprovalsChanged(len(self.pending)))
        if answer is None:
            return ApprovalAnswer.to(request, False, self.user, self.withdrawn.get(request.request_id, "dismissed"))
        return answer

    def withdraw(self, request_id: str, why: str) -> bool:
        """Take a request off this face (another face answered it): its modal closes, a queued one never
        opens; True when a modal was on screen."""
        from console.screens.approval import ApprovalScreen

        self.withdrawn[request_id] = why
        stack = list(self.app.screen_stack)
        for i, screen in enumerate(stack):
            if isinstance(screen, ApprovalScreen) and screen.request.request_id == request_id:
                for above in reversed(stack[i + 1 :]):  # a reason being typed goes with its request
                    above.dismiss(None)
                screen.withdraw()
                return True
        return False


# -- the bridge ---------------------------------------------------------------------------------


class Bridge:
    """Owns the session and the store; everything the console asks of the engine goes through here
    (the local `EngineLink`)."""

    def __init__(
        self,
        app: App[Any],
        cfg: Config,
        *,
        factory: SessionFactory | None = None,
        approver: ConsoleApprover | None = None,
        store_path: str | None = None,
    ) -> None:
        self.app = app
        """The app messages are posted to."""
        self.cfg = cfg
        """The run's configuration."""
        self.factory: SessionFactory = factory or default_session_factory
        """How a session is built."""
        self.approver = approver or ConsoleApprover(app, user=cfg.user)
        """Answers approval requests with the modal."""
        self.store_path = store_path
        """The store file (None: the default under LANTERN_HOME)."""
        self.store: Store | None = None
        """The open store (sessions, events, blobs)."""
        self.session: Session | None = None
        """The open session, once ready."""
        self.remote: Any = None
        """None: the engine runs in this process."""
        self.error: str = ""
        """Why the engine is not available, when it is not."""
        self._stream: dict[tuple[int, int], str] = {}

    @property
    def ready(self) -> bool:
        """True when a session is open."""
        return self.session is not None

    @property
    def running(self) -> bool:
        """True while a turn runs."""
        return self.session is not None and self.session.running

    async def open_store(self) -> Store:
        """Open the store once (aiosqlite runs its own thread)."""
        if self.store is None:
            from engine.store import Store

            self.store = await Store(self.store_path).open()
        return self.store

    async def start(self, *, session_id: str | None = None, latest: bool = False) -> None:
        """Open (or reopen) a session; posts EngineReady or EngineFailed. Run as a worker."""
        from engine.config import resolve_model

        self.app.post_message(EngineStarting(resolve_model(self.cfg)))
        try:
            store = await self.open_store()
            if latest and session_id is None:
                session_id = await store.latest()
                if session_id is None:
                    self.app.post_message(
                        EngineFailed("there is no earlier session to continue; starting a new one", code="no-session")
                    )
            elif session_id is not None:
                found = await store.find(session_id)
                if found is None:
                    raise LookupError(f"no session matches {session_id!r} (or the prefix is ambiguous)")
                session_id = found
            self.session = await self.factory(self.cfg, store=store, approver=self.approver, session_id=session_id)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any start failure is shown, the console stays up
            self.session = None
            self.error = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.app.post_message(
                EngineFailed(
                    self.error, hint=getattr(exc, "hint", "") or "", code=getattr(exc, "code", "") or type(exc).__name__
                )
            )
            return
        self.error = ""
        self.app.post_message(EngineReady(self.session, resumed=session_id is not None))

    async def run_turn(self, text: str) -> None:
        """Run one user turn and post its events. Run as the exclusive 'agent' worker."""
        session = self.session
        if session is not None:
            await self._pump(session, session.run_turn(text))

    async def run_call(self, text: str, tool: str, arguments: dict[str, Any]) -> None:
        """Run a person's own call (the inspector's Apply) through the engine's pipeline and post its events."""
        session = self.session
        if session is not None:
            await self._pump(session, session.run_call(text, tool, arguments))

    async def _pump(self, session: Any, stream: Any) -> None:
        self.app.post_message(TurnStateChanged(True))
        try:
            async for e in stream:
                if isinstance(e, ev.AssistantDelta):
                    key = (e.turn, e.step)
                    self._stream[key] = self._stream.get(key, "") + e.text
                    self.app.post_message(AnswerStreamed(e.turn, e.step, self._stream[key]))
                    continue
                if isinstance(e, ev.AssistantMessage):
                    self._stream.pop((e.turn, e.step), None)
                self.app.post_message(EngineEvent(e))
        except asyncio.CancelledError:
            session.cancel()
            raise
        except Exception as exc:  # noqa: BLE001 - a crash in a turn is shown, not raised into the UI
            self.app.post_message(EngineFailed(f"the turn failed: {type(exc).__name__}: {exc}", code="turn-crashed"))
        finally:
            self._stream.clear()
            self.app.post_message(TurnStateChanged(False))
            if self.store is not None:
                try:
                    from wiring import score_in_background

                    score_in_background(self.store, session.id, session.toolbox)
                except Exception:  # noqa: BLE001 - scoring is advisory; it never breaks a turn
                    pass

    def cancel(self) -> bool:
        """Cancel the running turn; False when none runs."""
        if self.session is not None and self.session.running:
            self.session.cancel()
            return True
        return False

    async def blob(self, ref: str) -> str | None:
        """The full scrubbed output behind `ref`, when the store has it."""
        if self.store is None:
            return None
        return await self.store.get_blob(ref)

    async def sessions(self, limit: int = 200) -> list[Any]:
        """Sessions, most recent first."""
        store = await self.open_store()
        return await store.sessions(limit=limit)

    async def close(self) -> None:
        """Close the store."""
        if self.store is not None:
            await self.store.close()
            self.store = None


Clock = Callable[[], Any]
"""A time source (frozen in snapshot tests)."""
