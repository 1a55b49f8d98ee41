"""Tool retrieval: a Tantivy + LanceDB hybrid index, query rewriting, fusion, and the ToolSelector.

index = HybridIndex()                       # ~/.cache/lantern/index, synced by content hash
selector = ToolSelector(tools, index, budget_tokens=4000, threshold=0.55, sticky_turns=2)
selector.add_tool(find_tools_tool(selector))
toolbox = Toolbox(tools, selector=selector, dispatcher=dispatcher)   # engine.toolbox
"""

from engine.retrieval.fusion import rrf
from engine.retrieval.index import Doc, HybridIndex, SyncReport, doc_from_tool, runbook_doc
from engine.retrieval.rewrite import Entity, Exchange, Rewrite, Rewriter, extract_entities
from engine.retrieval.search import Hit, HybridSearch, SearchConfig
from engine.retrieval.selector import FIND_TOOLS, Selection, ToolSelector, find_tools_tool, schema_tokens

__all__ = [
    "FIND_TOOLS",
    "Doc",
    "Entity",
    "Exchange",
    "Hit",
    "HybridIndex",
    "HybridSearch",
    "Rewrite",
    "Rewriter",
    "SearchConfig",
    "Selection",
    "SyncReport",
    "ToolSelector",
    "doc_from_tool",
    "extract_entities",
    "find_tools_tool",
    "rrf",
    "runbook_doc",
    "schema_tokens",
]
