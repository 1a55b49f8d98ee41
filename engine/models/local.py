"""The embedded model: Qwen2.5-Coder-1.5B-Instruct in process through llama.cpp, behind `Model`.

Small-model craft, in order of effect:
- Every step is constrained by a grammar built from the offered tools (engine.models.grammar):
  the model can only emit one JSON object, either a call of an offered tool with arguments of
  the right shape, or an answer. Its chat template's own tool-call text is not used.
- The prompt is ChatML as Qwen2.5 expects, system first with a compact one-line-per-tool list
  sorted by name, so the prefix stays byte-identical between steps and llama.cpp reuses its KV
  cache (the reused length is reported as `Usage.cached_tokens`).
- Tool results go back as `<tool_response>` blocks in a user turn, as Qwen2.5's template does.

Nothing blocks the event loop: the weights load in a thread (`warm()`), and each step runs in a
worker thread that streams through an asyncio queue. Closing or cancelling the stream sets a
flag that the token loop and llama.cpp's abort callback both read, so generation (and a long
prompt evaluation) stops within a fraction of a second.
"""

from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import io
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from engine.models import errors
from engine.models.base import Completion, Message, ModelChunk, TextDelta, ToolCall, ToolSpec, Usage, drop_nulls
from engine.models.grammar import (
    StepParser,
    answer_fix_gbnf,
    fix_text,
    ground_arguments,
    step_gbnf,
    tool_line,
)
from engine.models.install import QWEN_CODER_1_5B, model_path, status

DEFAULT_N_CTX = 8192
"""Window in tokens: 8k keeps the KV cache ~230 MB; at ~30 prompt tokens/s more is not usable anyway."""
DEFAULT_THREADS = 2
MAX_STEP_TOKENS = 768
"""Generated tokens per step (a call is ~40; an answer gets the rest)."""
MIN_ANSWER_ROOM = 96
REPEAT_SPAN = 20
"""An answer that writes the same REPEAT_SPAN tokens a second time is stopped there: greedy
decoding of a small model otherwise loops the same sentences until the token limit."""
"""Tokens that must remain free after the prompt for a step to be worth starting."""

DEFAULT_SYSTEM = "You are Lantern, an on-call assistant. Use the tools to gather evidence, then answer."

REPLY_FORMAT_THOUGHT = (
    "Reply with one JSON object only.\n"
    'To call a tool: {"thought": "<why, one short sentence>", "tool": "<tool name>", "arguments": {...}}\n'
    'To answer: {"answer": "<your answer>"}'
)
REPLY_FORMAT_PLAIN = (
    "Reply with one JSON object only.\n"
    'To call a tool: {"tool": "<tool name>", "arguments": {...}}\n'
    'To answer: {"answer": "<your answer>"}'
)


TOOLS_NOTE = (
    "A tool is named system.action: when the user names a system (Datadog, Prometheus, ...), use that system's tool."
)
"""Sibling tools of two systems (prometheus.range_query, datadog.query_metrics) read alike to a 1.5B model."""

ADDED_TOOLS_HEAD = "[Lantern, not from the user] Tools loaded since the list above (call them the same way):"

ANSWER_STRUCTURED = 'To answer: {"answer": <the JSON value the task asks for>}'


def system_text(system: str, tools: list[ToolSpec], *, thought: bool = True, structured: bool = False) -> str:
    """The system turn's content: the caller's instructions, the tool lines, the reply format."""
    parts = [system.strip() or DEFAULT_SYSTEM]
    if tools:
        lines = [tool_line(t) for t in sorted(tools, key=lambda t: t.name)]
        parts.append("# Tools\n" + "\n".join(lines) + "\n" + TOOLS_NOTE)
    reply = REPLY_FORMAT_THOUGHT if thought else REPLY_FORMAT_PLAIN
    if structured:
        reply = reply.rsplit("\n", 1)[0] + "\n" + ANSWER_STRUCTURED
    parts.append("# Reply\n" + reply)
    return "\n\n".join(parts)


def _assistant_json(m: Message, *, thought: bool, structured: bool = False) -> str:
    """An earlier assistant turn in the same JSON shape the grammar makes the model write."""
    if not m.tool_calls:
        answer: Any = m.content
        if structured:
            try:
                answer = json.loads(m.content)
            except ValueError:
                pass
        return json.dumps({"answer": answer}, ensure_ascii=False)
    out = []
    for i, c in enumerate(m.tool_calls):
        d: dict[str, Any] = {}
        if thought:
            d["thought"] = m.content if i == 0 else ""
        d["tool"] = c.name
        d["arguments"] = c.arguments
        out.append(json.dumps(d, ensure_ascii=False))
    return "\n".join(out)


def render_prompt(
    messages: list[Message], tools: list[ToolSpec], *, thought: bool = True, structured: bool = False
) -> str:
    """ChatML text for Qwen2.5: system (with tools) first, then the turns, then the assistant cue."""
    system = "\n\n".join(m.content for m in messages if m.role == "system" and m.content)
    out = [f"<|im_start|>system\n{system_text(system, tools, thought=thought, structured=structured)}<|im_end|>\n"]
    rest = [m for m in messages if m.role != "system"]
    i = 0
    while i < len(rest):
        m = rest[i]
        if m.role == "tool":
            # Consecutive tool results share one user turn, as Qwen2.5's template renders them.
            blocks = []
            while i < len(rest) and rest[i].role == "tool":
                blocks.append(f"<tool_response>\n{rest[i].content}\n</tool_response>")
                i += 1
            out.append("<|im_start|>user\n" + "\n".join(blocks) + "<|im_end|>\n")
            continue
        if m.role == "assistant":
            out.append(
                f"<|im_start|>assistant\n{_assistant_json(m, thought=thought, structured=structured)}<|im_end|>\n"
            )
        else:
            out.append(f"<|im_start|>user\n{m.content}<|im_end|>\n")
        i += 1
    out.append("<|im_start|>assistant\n")
    return "".join(out)


def after_user(messages: list[Message]) -> bool:
    """The step answers the user's message: the newest message that is not an engine note is the
    user's. The context notes ride at the end of the prompt as a user message; counting them as the
    user's would make every step after a tool result call a tool (`tool_first`), so a model that
    wanted to answer could only repeat a call until the loop stopped offering tools."""
    last = next((m for m in reversed(messages) if not m.note), None)
    return last is not None and last.role == "user"


def _common_prefix(a: Any, b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class _Cancelled(Exception):
    """The consumer went away; the worker stops."""


class LocalModel:
    """Qwen2.5-Coder-1.5B-Instruct (GGUF) in process via llama-cpp-python; a `Model`."""

    def __init__(
        self,
        path: str | Path,
        *,
        name: str = "local/qwen2.5-coder-1.5b-instruct",
        n_ctx: int = DEFAULT_N_CTX,
        n_threads: int = DEFAULT_THREADS,
        thought: bool = False,
        max_step_tokens: int = MAX_STEP_TOKENS,
        tool_first: bool = True,
    ) -> None:
        self.path = Path(path)
        """The GGUF file."""
        self.name = name
        """Display name."""
        self.context_window = n_ctx
        """Prompt + answer tokens per request (llama.cpp's n_ctx)."""
        self.n_threads = n_threads
        """CPU threads for llama.cpp."""
        self.thought = thought
        """Ask for a one-sentence thought before each tool call (streamed as text); off by default
        because on 2 cores its ~25 tokens add ~2.5 s to every step."""
        self.max_step_tokens = max_step_tokens
        """Generated tokens per step."""
        self.tool_first = tool_first
        """The first step after a user message must call a tool (when tools are offered): a 1.5B
        model otherwise often answers an operational question from memory, inventing the facts."""
        self.load_seconds: float | None = None
        """How long loading the weights took, once loaded."""
        self.last_step: dict[str, Any] = {}
        """Timings of the last step: prompt/cached/generated tokens, prefill_s, gen_s, first_token_s."""
        self._llm: Any = None
        self._load_lock = threading.Lock()
        self._load_future: concurrent.futures.Future[Any] | None = None
        self._gen_lock = threading.Lock()
        self._current_cancel: threading.Event | None = None
        self._flag_lock = threading.Lock()
        self._abort_flag = ctypes.create_string_buffer(2)
        """Byte 0 is 1 while the running step is cancelled; llama.cpp's abort callback reads it."""
        self._abort_cb: Any = None
        self._log_cb: Any = None
        self._busy = threading.Event()
        self._base_tools: list[ToolSpec] = []
        self._last_prompt = ""

    # -- construction and loading -------------------------------------------------------------
    @classmethod
    def create(cls, name: str = "local", *, preload: bool = True) -> LocalModel:
        """'local' → the installed, verified default model; 'local:PATH' → a GGUF file of your own.

        With `preload`, the weights start loading in a background thread at once, so they are
        ready by the time the user has typed a question; nothing waits for them here.
        """
        model = cls._resolve(name)
        if preload:
            model.start_loading()
        return model

    @classmethod
    def _resolve(cls, name: str) -> LocalModel:
        if name.startswith("local:"):
            p = Path(name.split(":", 1)[1]).expanduser()
            if not p.is_file():
                raise errors.Unavailable(
                    f"no model file at {p}", hint="give the path of a GGUF file, or use --model local"
                )
            return cls(p, name=f"local/{p.stem}")
        st = status()
        if not st["exists"]:
            raise errors.Unavailable(
                f"the embedded model is not installed (expected at {model_path()})",
                hint="run `lantern model install` (about 1.1 GB, once), or set a provider key such as ANTHROPIC_API_KEY",
            )
        if not st["verified"]:
            raise errors.Unavailable(
                f"the model file at {st['path']} is not verified",
                hint="run `lantern model install` to check it against its pinned sha256 (or replace it)",
            )
        return cls(st["path"], name=f"local/{QWEN_CODER_1_5B.filename.removesuffix('.gguf')}")

    @property
    def loaded(self) -> bool:
        """True once the weights are in memory."""
        return self._llm is not None

    @property
    def busy(self) -> bool:
        """True while a worker thread is evaluating or generating."""
        return self._busy.is_set()

    def start_loading(self) -> concurrent.futures.Future[Any]:
        """Begin loading the weights in a background thread (idempotent); returns its future."""
        with self._load_lock:
            if self._load_future is None:
                fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
                self._load_future = fut
                threading.Thread(target=self._load, args=(fut,), name="lantern-local-load", daemon=True).start()
            return self._load_future

    async def warm(self) -> None:
        """Load the weights without blocking the event loop; raises Unavailable if they cannot load."""
        await asyncio.wrap_future(self.start_loading())

    def _load(self, fut: concurrent.futures.Future[Any]) -> None:
        t0 = time.perf_counter()
        try:
            import llama_cpp
        except ImportError as exc:
            fut.set_exception(
                errors.Unavailable(f"llama-cpp-python is not installed: {exc}", hint="run `uv sync --frozen`")
            )
            return
        # llama.cpp's own logging goes nowhere, set before the load (it logs while loading).
        _quiet_llama_logs(llama_cpp)
        try:
            # verbose=False would make llama-cpp-python point file descriptors 1 and 2 at
            # /dev/null for the whole load, process-wide: every frame the console drew meanwhile
            # (the header turning ready, then working) was lost, and the header stayed on
            # "loading model…". Verbose only adds Python prints to sys.stderr; those are kept
            # out here, and the per-call prints are turned off on the loaded model.
            with contextlib.redirect_stderr(io.StringIO()):
                llm = llama_cpp.Llama(
                    model_path=str(self.path),
                    n_ctx=self.context_window,
                    n_threads=self.n_threads,
                    n_threads_batch=self.n_threads,
                    n_batch=512,
                    verbose=True,
                )
            llm.verbose = False
        except Exception as exc:  # noqa: BLE001 - llama.cpp reports load failures as bare ValueErrors
            with self._load_lock:
                self._load_future = None  # a later call may try again (e.g. after reinstalling)
            fut.set_exception(
                errors.Unavailable(f"could not load {self.path}: {exc}", hint="run `lantern model install --force`")
            )
            return
        self._abort_cb = _abort_callback(llama_cpp, self._abort_flag, self._should_abort)
        llama_cpp.llama_set_abort_callback(llm.ctx, self._abort_cb, ctypes.cast(self._abort_flag, ctypes.c_void_p))
        self._llm = llm
        self.load_seconds = time.perf_counter() - t0
        fut.set_result(llm)

    def _should_abort(self, _data: Any) -> bool:
        return self._abort_flag[0] != b"\x00"

    def _cancel(self, cancel: threading.Event) -> None:
        """Stop the step that owns `cancel`: the token loop sees the event, llama.cpp the flag byte."""
        cancel.set()
        with self._flag_lock:
            if self._current_cancel is cancel:
                self._abort_flag[0] = b"\x01"

    # -- tokens -------------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[int]:
        """Token ids of `text` (special tokens such as <|im_start|> parsed); needs the model loaded."""
        return self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> int:
        """Exact with the model's tokenizer once loaded; before that, ~3.5 characters a token."""
        text = render_prompt(messages, tools or [], thought=self.thought)
        if self._llm is not None:
            return len(self.tokenize(text))
        return int(len(text) / 3.5) + 1

    # -- one step -----------------------------------------------------------------------------
    def stream(
        self, messages: list[Message], tools: list[ToolSpec], *, answer_schema: dict[str, Any] | None = None
    ) -> AsyncIterator[ModelChunk]:
        """Run one constrained step in a worker thread; stream the answer (or thought) text."""
        return self._step(messages, tools, answer_schema, {})

    def stream_excluding(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        exclude: list[ToolCall],
        *,
        answer_schema: dict[str, Any] | None = None,
    ) -> AsyncIterator[ModelChunk]:
        """The same step again with the calls in `exclude` ruled out by the grammar: the arguments
        as the model wrote them and as they were kept after grounding. The prompt is the one just
        evaluated, so only the generation runs again."""
        return self._step(messages, tools, answer_schema, _ruled(exclude))

    def stream_answer(
        self, messages: list[Message], fixes: list[ToolSpec], exclude: list[ToolCall] | None = None
    ) -> AsyncIterator[ModelChunk]:
        """The answer step with its fix shaped by the grammar: the answer in words, then one call of
        `fixes` with arguments of their schema, or what a person must do. The prompt is the
        previous step's, continued (no tools offered), so only the new tail is read."""
        return self._step(messages, [], None, _ruled(exclude or []), fixes=fixes)

    async def _step(
        self,
        messages: list[Message],
        tools: list[ToolSpec],
        answer_schema: dict[str, Any] | None,
        exclude: dict[str, list[dict[str, Any]]],
        *,
        fixes: list[ToolSpec] | None = None,
    ) -> AsyncIterator[ModelChunk]:
        await self.warm()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        cancel = threading.Event()
        structured = answer_schema is not None
        prompt = self._prompt_for(messages, tools, structured)
        must_call = self.tool_first and after_user(messages) and bool(tools)
        gbnf = (
            answer_fix_gbnf(fixes, exclude)
            if fixes
            else step_gbnf(
                tools, thought=self.thought, answer=not must_call, answer_schema=answer_schema, exclude=exclude
            )
        )

        def emit(kind: str, value: Any) -> None:
            if cancel.is_set():
                raise _Cancelled()
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the event loop is gone
                cancel.set()
                raise _Cancelled() from None

        worker = threading.Thread(
            target=self._run_step, args=(prompt, gbnf, emit, cancel), name="lantern-local-step", daemon=True
        )
        worker.start()
        parser = StepParser()
        try:
            while True:
                kind, value = await queue.get()
                if kind == "piece":
                    delta = parser.feed(value)
                    if delta:
                        yield TextDelta(text=delta)
                elif kind == "error":
                    raise value
                elif kind == "done":
                    yield self._completion(parser, value, tools or fixes or [], _conversation(prompt))
                    return
        finally:
            # Closing or cancelling the stream lands here: stop the worker (and llama.cpp) promptly.
            self._cancel(cancel)

    def _prompt_for(self, messages: list[Message], tools: list[ToolSpec], structured: bool) -> str:
        """The step's prompt text, written so llama.cpp can reuse its KV cache from the last step.

        The system turn lists the tools of the step that began the conversation (`_base_tools`), and
        keeps listing them while the prompt continues the previous one (the same system turn and the
        same first user message; what follows may have moved, e.g. the context's tail note). Tools
        loaded since (`find_tools`, a runbook) are listed in a short block at the end, where the
        prompt changes anyway; tools no longer offered stay in the list and the grammar alone rules
        them out. Re-listing them in the system turn would change its text a few hundred tokens in
        and make llama.cpp read every tool output again: over a minute a step on two cores."""
        base = self._base_tools
        if base:
            kept = render_prompt(messages, base, thought=self.thought, structured=structured)
            first_user = kept.find("<|im_end|>", kept.find("<|im_start|>user"))
            if first_user > 0 and self._last_prompt[:first_user] == kept[:first_user]:
                listed = {t.name for t in base}
                added = [t for t in tools if t.name not in listed]
                if added:
                    cue = kept.rindex("<|im_start|>assistant\n")
                    block = "\n".join(tool_line(t) for t in sorted(added, key=lambda t: t.name))
                    kept = f"{kept[:cue]}<|im_start|>user\n{ADDED_TOOLS_HEAD}\n{block}<|im_end|>\n{kept[cue:]}"
                self._last_prompt = kept
                return kept
        prompt = render_prompt(messages, tools, thought=self.thought, structured=structured)
        if tools:
            self._base_tools = list(tools)
        self._last_prompt = prompt
        return prompt

    def _completion(
        self, parser: StepParser, info: dict[str, Any], tools: list[ToolSpec], conversation: str
    ) -> Completion:
        usage = Usage(
            prompt_tokens=info["prompt_tokens"],
            completion_tokens=info["completion_tokens"],
            cached_tokens=info["cached_tokens"],
        )
        step = parser.result()
        if step is None and info.get("repeated_at") is not None:
            # Stopped where the answer began to repeat itself: the text up to there, said so.
            said = _streamed_text(parser.text[: info["repeated_at"]]).rstrip()
            return Completion(
                text=f"{said}\n\n(stopped here: the local model began repeating itself)",
                usage=usage,
                finish_reason="length",
            )
        if step is None:
            # Cut off by the token limit: keep what was said; a half-written call comes back as an error.
            streamed = _streamed_text(parser.text)
            m = re.search(r'"tool"\s*:\s*"([^"]+)"', parser.text)
            if m and not parser.is_answer:
                call = ToolCall(
                    id=_call_id(),
                    name=m.group(1),
                    raw_arguments=parser.text,
                    parse_error=f"the call was cut off after {info['completion_tokens']} tokens; use shorter arguments",
                )
                return Completion(text=streamed, tool_calls=[call], usage=usage, finish_reason="length")
            return Completion(text=streamed, usage=usage, finish_reason="length")
        if "answer" in step:
            answer = step.get("answer", "")
            text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
            fix = _fix_of(step.get("fix"), tools)
            if fix:
                text = f"{text.rstrip()}\n\n{fix}".strip()
            return Completion(text=text, usage=usage, finish_reason="stop")
        raw = step.get("arguments")
        args: dict[str, Any] = raw if isinstance(raw, dict) else {}
        name = str(step.get("tool", ""))
        kept, dropped = ground_arguments(
            drop_nulls(args), next((t for t in tools if t.name == name), None), conversation
        )
        call = ToolCall(id=_call_id(), name=name, arguments=kept, raw_arguments=json.dumps(args, ensure_ascii=False))
        text = str(step.get("thought", ""))
        if dropped:
            # Said where the step is shown, so nothing the model wrote disappears unseen.
            note = f"(left out {', '.join(dropped)}: not mentioned in the conversation, so the tool's default applies)"
            text = f"{text} {note}".strip()
        return Completion(text=text, tool_calls=[call], usage=usage, finish_reason="tool_calls")

    def _run_step(self, prompt: str, gbnf: str, emit: Any, cancel: threading.Event) -> None:
        """Worker thread: evaluate the prompt (reusing the cached prefix), then sample under the grammar."""
        try:
            with self._gen_lock:
                if cancel.is_set():
                    return
                with self._flag_lock:
                    self._current_cancel = cancel
                    self._abort_flag[0] = b"\x00"
                self._busy.set()
                try:
                    emit("done", self._generate(prompt, gbnf, emit, cancel))
                finally:
                    self._busy.clear()
                    with self._flag_lock:
                        self._current_cancel = None
        except _Cancelled:
            return
        except errors.ModelError as exc:
            self._emit_error(emit, exc)
        except Exception as exc:  # noqa: BLE001 - anything llama.cpp raises becomes a typed model error
            if cancel.is_set():
                return
            self._emit_error(
                emit,
                errors.ModelError(f"local model failed: {exc}", hint="try again; if it repeats, reinstall the model"),
            )

    @staticmethod
    def _emit_error(emit: Any, exc: Exception) -> None:
        try:
            emit("error", exc)
        except _Cancelled:
            pass

    def _generate(self, prompt: str, gbnf: str, emit: Any, cancel: threading.Event) -> dict[str, Any]:
        import llama_cpp

        llm = self._llm
        tokens = self.tokenize(prompt)
        n = len(tokens)
        if n + MIN_ANSWER_ROOM > self.context_window:
            raise errors.ContextOverflow(
                f"the prompt is {n:,} tokens; the local model's window is {self.context_window:,}",
                hint="start a new session or ask a narrower question",
            )
        t0 = time.perf_counter()
        cached = min(_common_prefix(llm.input_ids[: llm.n_tokens], tokens), n - 1)
        # Evaluate everything but the last prompt token here (llama.cpp reuses the cached prefix);
        # generate() then finds the prefix in place and evaluates only the last one.
        llm.n_tokens = cached
        try:
            if cached < n - 1:
                llm.eval(tokens[cached : n - 1])
        except RuntimeError:
            if cancel.is_set():
                raise _Cancelled() from None
            raise
        t1 = time.perf_counter()
        grammar = llama_cpp.LlamaGrammar.from_string(gbnf, verbose=False)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        parser = StepParser()
        produced = 0
        first = None
        budget = min(self.max_step_tokens, self.context_window - n)
        vocab = llm._model.vocab
        loop = _RepeatGuard(REPEAT_SPAN)
        repeated_at: int | None = None
        try:
            for tok in llm.generate(
                tokens, temp=0.0, top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, grammar=grammar
            ):
                if cancel.is_set():
                    raise _Cancelled()
                if llama_cpp.llama_vocab_is_eog(vocab, tok):
                    break
                produced += 1
                if first is None:
                    first = time.perf_counter()
                piece = decoder.decode(llm.detokenize([tok], special=False))
                if piece:
                    parser.feed(piece)
                    emit("piece", piece)
                if parser.complete or produced >= budget:
                    break
                if parser.is_answer and not parser.answer_closed:
                    repeated_at = loop.add(tok, len(parser.text))
                    if repeated_at is not None:
                        break
        except RuntimeError:
            if cancel.is_set():
                raise _Cancelled() from None
            raise
        t2 = time.perf_counter()
        info = {
            "prompt_tokens": n,
            "cached_tokens": cached,
            "completion_tokens": produced,
            "prefill_s": t1 - t0,
            "gen_s": t2 - t1,
            "first_token_s": (first - t0) if first else None,
            "prompt_tok_s": (n - cached - 1) / (t1 - t0) if t1 > t0 and n - cached > 1 else None,
            "gen_tok_s": produced / (t2 - t1) if t2 > t1 else None,
            "repeated_at": repeated_at,
        }
        self.last_step = info
        return info


_QUIET_LOG: Any = None


def _quiet_llama_logs(llama_cpp: Any) -> None:
    """Send llama.cpp's log (process-wide) to a no-op, once. The callback lives as long as the
    process: one owned by a model would dangle in llama.cpp once that model is collected."""
    global _QUIET_LOG
    if _QUIET_LOG is None:
        _QUIET_LOG = llama_cpp.llama_log_callback(lambda level, text, data: None)
        llama_cpp.llama_log_set(_QUIET_LOG, ctypes.c_void_p(0))


def _abort_callback(llama_cpp: Any, flag: Any, fallback: Any) -> Any:
    """llama.cpp's abort callback: true while the flag byte is set, checked between graph nodes.

    llama.cpp calls it hundreds of times per token from its compute thread. A Python callback
    would take the GIL each time (slow whenever the UI thread is busy), so we hand it libc's
    `strlen` on a 2-byte buffer [flag, NUL]: it returns 0 or 1 without touching Python, and
    0/1 in the return register is exactly the C bool llama.cpp expects. Where libc cannot be
    found, the Python callback is used instead.
    """
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        addr = ctypes.cast(libc.strlen, ctypes.c_void_p).value
        if addr:
            return llama_cpp.ggml_abort_callback(addr)
    except (OSError, AttributeError):
        pass
    return llama_cpp.ggml_abort_callback(fallback)


def _conversation(prompt: str) -> str:
    """The prompt without its system turn (tool descriptions and examples are not the user's words)."""
    end = prompt.find("<|im_end|>")
    return prompt[end:] if prompt.startswith("<|im_start|>system") and end >= 0 else prompt


def _raw_object(raw: str | None) -> dict[str, Any] | None:
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _call_id() -> str:
    return "call_" + uuid.uuid4().hex[:12]


class _RepeatGuard:
    """Finds the first time the last `span` tokens equal an earlier run of `span` tokens.

    `add` takes each token with the length of the text so far and returns, on the first
    repeat, the text length where the repeated run began the second time (where to cut)."""

    def __init__(self, span: int) -> None:
        self.span = span
        self.tokens: list[int] = []
        self.ends: list[int] = []
        self.seen: set[tuple[int, ...]] = set()

    def add(self, token: int, text_len: int) -> int | None:
        self.tokens.append(token)
        self.ends.append(text_len)
        n = len(self.tokens)
        if n < self.span:
            return None
        window = tuple(self.tokens[n - self.span :])
        if window in self.seen:
            start = n - self.span
            return self.ends[start - 1] if start > 0 else 0
        self.seen.add(window)
        return None


def _streamed_text(text: str) -> str:
    """The thought or answer text written so far, from a possibly unfinished JSON object."""
    p = StepParser()
    return p.feed(text)


def _fix_of(fix: Any, tools: list[ToolSpec]) -> str:
    """An answer step's fix as text. Its arguments are not grounded as a read's are: a fix may
    need a value no output shows (a variable's new value), and it runs only through the backend's
    dry run and a person's approval of the diff. Optional slots the model filled with nothing
    (an empty string, the declared default) are left out, so the call says only what it changes."""
    if isinstance(fix, dict) and isinstance(fix.get("arguments"), dict):
        spec = next((t for t in tools if t.name == fix.get("tool")), None)
        schema = (spec.parameters or {}) if spec is not None else {}
        props, required = schema.get("properties") or {}, set(schema.get("required") or [])
        args = {
            k: v
            for k, v in drop_nulls(fix["arguments"]).items()
            if k in required or not (v == "" or (isinstance(props.get(k), dict) and props[k].get("default") == v))
        }
        fix = {**fix, "arguments": args}
    return fix_text(fix)


def _ruled(exclude: list[ToolCall]) -> dict[str, list[dict[str, Any]]]:
    """Tool name → the argument objects ruled out: as the model wrote them and as they were kept."""
    ruled: dict[str, list[dict[str, Any]]] = {}
    for c in exclude:
        for args in (_raw_object(c.raw_arguments), c.arguments):
            if args is not None and args not in ruled.setdefault(c.name, []):
                ruled[c.name].append(args)
    return ruled
