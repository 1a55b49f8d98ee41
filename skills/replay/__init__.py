"""The replay world: a recorded Cloud-OpsBench case served through the benchmark's 10 tools."""

from __future__ import annotations

from pathlib import Path

from engine.tools import Tool
from skills.replay.executor import ReplayCase

PACK_FILE = Path(__file__).parent / "packs" / "cloudops.yaml"
"""The `cloudops` pack (not among the live packs: it needs a case to answer from)."""


def cloudops_pack():  # noqa: ANN201 - returns skills.spec.Pack
    """The `cloudops` pack, loaded and validated."""
    from skills.loader import load_pack_file

    pack, err = load_pack_file(PACK_FILE)
    if err:
        raise ValueError(str(err))
    return pack


def replay_tools(case_dir: Path | str, *, case: ReplayCase | None = None) -> list[Tool]:
    """The 10 benchmark tools as engine Tools answering from `case_dir` (`cloudops.GetResources`, ...)."""
    from skills.registry import pack_tools

    bound = case or ReplayCase.open(case_dir)
    tools = pack_tools([cloudops_pack()], replay=bound)
    for t in tools:
        t.meta["replay_case"] = bound
    return tools


__all__ = ["ReplayCase", "cloudops_pack", "replay_tools"]
