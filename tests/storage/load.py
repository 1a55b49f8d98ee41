"""One writer of a concurrent load on a shared store: `python -m tests.storage.load URL WORKER CALLS`.

The real Session and Dispatcher (tests.guard.harness) on the scripted model, with python tools:
every second call is a write (approved: approval, intent and execution rows), the others reads
(an execution row), five calls a turn. Prints one JSON line: the session, the calls executed,
and the wall-clock span of its turns.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

PER_TURN = 5
"""Tool calls per scripted turn."""


def script(worker: int, calls: int) -> list[dict[str, Any]]:
    """The model's turns: PER_TURN calls, then a short answer."""
    from tests.guard.harness import step

    out: list[dict[str, Any]] = []
    for t in range(calls // PER_TURN):
        batch = []
        for k in range(PER_TURN):
            i = t * PER_TURN + k
            if i % 2:
                batch.append(("kubernetes.scale_deployment", {"name": f"w{worker}-d{i}", "replicas": i % 7}))
            else:
                batch.append(("kubernetes.get_pod", {"name": f"w{worker}-p{i}"}))
        out += [step(*batch), {"text": f"turn {t} done"}]
    return out


async def work(url: str, worker: int, calls: int) -> dict[str, Any]:
    """Run the writer's turns on the store at `url`."""
    from engine.store import Store
    from tests.guard.harness import Recorder, ScriptedApprover, k8s_tools, make_session, run

    rec = Recorder()
    async with Store(url) as store:
        approver = ScriptedApprover(*([True] * calls), by=f"worker{worker}")
        session, _, _ = await make_session(
            store, k8s_tools(rec), script(worker, calls), approver=approver, user=f"worker{worker}"
        )
        t0 = time.time()
        for t in range(calls // PER_TURN):
            events = await run(session, f"turn {t}")
            assert events[-1].reason == "answered", events[-1]
        t1 = time.time()
    return {"worker": worker, "session": session.id, "executed": len(rec.calls), "t0": t0, "t1": t1}


if __name__ == "__main__":
    url, worker, calls = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(asyncio.run(work(url, worker, calls))), flush=True)
