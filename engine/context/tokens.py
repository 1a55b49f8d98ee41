"""Token counting for budgets: the model's own counter, made cheap.

The model's counter (`Model.count_tokens`) is the truth, but a provider tokenizer can cost a
millisecond or more a call. The counter times it once at start: when it is fast, texts are
counted exactly (and cached by the caller per event); when it is slow, a character ratio
calibrated on a sample stands in, and the builder checks the assembled prompt with the model's
counter and corrects the ratio from the difference.
"""

from __future__ import annotations

import math
import time
from typing import Any

from engine.models.base import Message, Model, ToolSpec

_SAMPLE = (
    "NAME                                     READY   STATUS             RESTARTS      AGE\n"
    "checkoutservice-8445f8b6cb-bd8ng         0/1     CrashLoopBackOff   14 (2m ago)   41m\n"
    "Last State:     Terminated\n      Reason:       OOMKilled\n      Exit Code:    137\n"
    "2025-10-08 12:51:24.856 ERROR [http-nio-8080-exec-20] c.p.repository.PaymentRepository - "
    "java.sql.SQLException: Connection pool exhausted - max pool size of 10 reached\n"
    "The pods are restarting because the container exceeds its 512Mi memory limit; the latest "
    "deployment (revision 7, image shop/checkout:v2.3.1-abc123f) raised the cache size.\n"
)
EXACT_BELOW_S = 0.002
"""A counter faster than this per call is used for every text; a slower one only for the final check."""


class TokenCounter:
    """Counts tokens for one model: exact when its counter is cheap, calibrated estimate otherwise."""

    def __init__(self, model: Model, *, exact: bool | None = None) -> None:
        self.model = model
        """The model whose tokenizer defines the numbers."""
        self.chars_per_token = 4.0
        """Calibrated ratio used by the estimate."""
        self.per_message = 4
        """Tokens a message costs beyond its content (role, separators)."""
        self.exact = False
        """True when every text is counted with the model's own counter."""
        self.calls = 0
        """How many times the model's counter was called (for the bench)."""
        self._tool_cache: dict[tuple[str, ...], int] = {}
        self._calibrate(exact)

    def _model_count(self, messages: list[Message], tools: list[ToolSpec] | None = None) -> int:
        self.calls += 1
        return int(self.model.count_tokens(messages, tools))

    def _calibrate(self, exact: bool | None) -> None:
        try:
            t0 = time.perf_counter()
            empty = self._model_count([Message(role="user", content="")])
            full = self._model_count([Message(role="user", content=_SAMPLE)])
            took = (time.perf_counter() - t0) / 2
        except Exception:  # noqa: BLE001 - a model without a working counter still gets budgets (estimated)
            self.exact = False
            return
        self.per_message = max(0, empty)
        body = max(1, full - empty)
        self.chars_per_token = max(1.0, len(_SAMPLE) / body)
        self.exact = (took < EXACT_BELOW_S) if exact is None else exact

    def text(self, text: str) -> int:
        """Tokens of one text's content (no message overhead)."""
        if not text:
            return 0
        if self.exact:
            try:
                return max(0, self._model_count([Message(role="user", content=text)]) - self.per_message)
            except Exception:  # noqa: BLE001 - fall back to the estimate rather than fail a turn
                self.exact = False
        return math.ceil(len(text) / self.chars_per_token)

    def message(self, message: Message) -> int:
        """Tokens of one message, overhead and tool-call arguments included."""
        n = self.per_message + self.text(message.content)
        for c in message.tool_calls:
            n += self.text(c.name) + self.text(c.raw_arguments or _json(c.arguments)) + 3
        return n

    def tools(self, tools: list[ToolSpec]) -> int:
        """Tokens the tool schemas add to a request (cached per set of names)."""
        if not tools:
            return 0
        key = tuple(sorted(t.name for t in tools))
        if key not in self._tool_cache:
            try:
                self._tool_cache[key] = max(0, self._model_count([], tools))
            except Exception:  # noqa: BLE001
                self._tool_cache[key] = sum(
                    self.text(t.description) + self.text(_json(t.parameters)) + 8 for t in tools
                )
        return self._tool_cache[key]

    def request(self, messages: list[Message], tools: list[ToolSpec]) -> int:
        """The model's own count of a whole request (the final check)."""
        try:
            return self._model_count(messages, tools)
        except Exception:  # noqa: BLE001
            return sum(self.message(m) for m in messages) + self.tools(tools)


def _json(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False, default=str)
