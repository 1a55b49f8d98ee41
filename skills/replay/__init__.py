"""The replay world: a recorded Cloud-OpsBench case served through the benchmark's 10 tools."""

from __future__ import annotations

from pathlib import Path

from engine.tools import Tool
from skills.replay.executor import ReplayCase

PACK_FILE = Path(__file__).parent / "packs" / "cloudops.yaml"
"""The `cloudops` pack (not among the live packs: it needs a case to answer from)."""


def cloudops_pack():
    """The `cloudops` pack, loaded and validated."""
    from skills.loader import load_pack_file

    pack, err = load_pack_file(PACK_FILE)
    if err:
        raise ValueError(str(err))
    return pack


class ReplayTools(list[Tool]):
    """The tools of one case, and the case they answer from (its `notices` say what could not be read)."""

    def __init__(self, tools: list[Tool], case: ReplayCase) -> None:
        super().__init__(tools)
        self.case = case


def replay_tools(case_dir: Path | str, *, case: ReplayCase | None = None) -> ReplayTools:
    """The 10 benchmark tools as engine Tools answering from `case_dir` (`cloudops.GetResources`, ...)."""
    from skills.registry import pack_tools

    bound = case or ReplayCase.open(case_dir)
    return ReplayTools(pack_tools([cloudops_pack()], replay=bound), bound)


__all__ = ["ReplayCase", "ReplayTools", "cloudops_pack", "replay_tools"]
