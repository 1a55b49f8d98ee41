"""The composition root: config → model, packs, playbooks, credentials, sandbox world, store,
approver → Session. The only package that imports both the engine and the skills; faces
(console/) call it, the engine never does."""

from wiring.session import (
    build_context_for,
    embedded_world,
    firing_alerts,
    leave_world,
    make_model,
    make_reviewer,
    make_toolbox,
    metrics_note,
    open_session,
    score_and_learn,
    score_in_background,
)
from wiring.toolbox import attach, build_toolbox, make_dispatcher

__all__ = [
    "attach", "build_context_for", "build_toolbox", "make_reviewer", "embedded_world", "firing_alerts", "leave_world", "make_dispatcher", "make_model", "make_toolbox", "metrics_note",
    "open_session", "score_and_learn", "score_in_background",
]  # fmt: skip
