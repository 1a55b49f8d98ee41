"""Findings: deterministic checks over what the read tools returned.

An on-call engineer reads a listing, sees something unhealthy, looks closer and reads the one
line that explains it; a check does the same reading, so that a small model is handed the
decisive line instead of having to find it in 200 lines of output. A check knows the failure
signals of one domain and states each as a `Finding`: a cause, the object it names, the line
that shows it and a weight. The checks themselves live with the skill pack whose outputs they
read (a pack's `checks`); whoever builds a session hands it a `CheckSet`.

```
tool output ──▶ Diagnoser.observe ──▶ each Check.read ──▶ new Findings (on the tool result)
                Diagnoser.ranked   ──▶ each Check.weigh ──▶ strongest first
                Diagnoser.next_reads ─▶ each Check.follow_ups ──▶ Read(intent, args, why)
                Diagnoser.call_for ──▶ the first Route whose tool is loaded ──▶ {name, arguments}
```

The checks never decide anything: findings are notes on tool results that the model (and the
console) read, and the model still gives the answer. The reads they name are intents, not
tools; the packs' routes say which tool answers each. Nothing here calls a tool or a model.
"""

from engine.diagnose.findings import Check, CheckSet, Diagnoser, Finding, Read, Route

__all__ = ["Check", "CheckSet", "Diagnoser", "Finding", "Read", "Route"]
