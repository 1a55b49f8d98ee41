"""Context engineering: token budgets, compaction tiers, the fact ledger, explicit drops, the gauge.

`build_context(model, cfg)` gives the session's ContextBuilder (the composition root, wiring/, calls it);
`recall_tool(store_getter, builder)` gives the `recall_detail` tool that brings dropped details back.
"""

from __future__ import annotations

from typing import Any

from engine.context.builder import CompactingContext, Compaction, ContextConfig
from engine.context.ledger import Fact, Ledger, extract_facts
from engine.context.recall import recall_tool
from engine.context.tokens import TokenCounter
from engine.models.base import Model

__all__ = [
    "Compaction",
    "CompactingContext",
    "ContextConfig",
    "Fact",
    "Ledger",
    "TokenCounter",
    "build_context",
    "extract_facts",
    "recall_tool",
]


def build_context(model: Model, cfg: Any = None) -> CompactingContext:
    """The compacting ContextBuilder for `model`, with the share of the window from `cfg.context_share`."""
    share = getattr(cfg, "context_share", None) if cfg is not None else None
    config = ContextConfig(share=float(share)) if share else ContextConfig()
    return CompactingContext(model, config)
