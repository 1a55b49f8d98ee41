"""Budgets hold with the model's own tokenizer, even when the builder counts with a calibrated estimate."""

from __future__ import annotations

import time

from engine.context import CompactingContext, ContextConfig, TokenCounter
from engine.models.base import Message
from engine.testing import ScriptedModel
from tests.context.test_properties import history


class DenseModel(ScriptedModel):
    """A real scripted model whose tokenizer is slow and packs fewer characters per token (like code-heavy text)."""

    def count_tokens(self, messages, tools=None):
        time.sleep(0.003)
        chars = sum(len(m.content) + sum(len(str(c.arguments)) for c in m.tool_calls) for m in messages)
        return chars // 2 + 6 * len(messages)


def test_slow_counter_switches_to_calibrated_estimate():
    fast = TokenCounter(ScriptedModel())
    slow = TokenCounter(DenseModel())
    assert fast.exact and not slow.exact
    assert 1.8 <= slow.chars_per_token <= 2.2 and slow.per_message == 6
    n = slow.calls
    assert slow.text("x" * 1000) in range(450, 560)
    assert slow.calls == n  # the estimate did not call the model


def test_final_check_uses_the_models_counter_and_keeps_the_budget():
    events, pods = history([(2, [200, 150, 0], i % 3 == 0, False) for i in range(12)])
    model = DenseModel(context_window=12_000)
    b = CompactingContext(model, ContextConfig(share=0.6))
    c = b.compact(events, "You are Lantern.")
    assert c.used == model.count_tokens(c.messages)
    assert c.used <= c.budget == 7200
    text = c.text
    assert all(p in text for p in pods)


def test_counter_survives_a_model_whose_counter_fails():
    class Broken(ScriptedModel):
        def count_tokens(self, messages, tools=None):
            raise RuntimeError("tokenizer download blocked")

    tc = TokenCounter(Broken())
    assert not tc.exact and tc.text("abcd" * 10) == 10
    assert tc.request([Message(role="user", content="abcd" * 10)], []) == 10 + tc.per_message
