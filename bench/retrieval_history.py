"""History for `lantern bench retrieval`: a BEIR training split as the experience memory.

`--unseen-scenes F --seed N` picks a random share F of the test's tool sets ("scenes") and drops
from the history every request whose tool set is one of them, before anything is built from it:
the memory, its vectors and its co-usage counts never see a dropped set. Test queries are then
split into "seen" (their tool set is in the remaining history) and "never seen".
"""

from __future__ import annotations

import argparse
import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path


def configure(p: argparse.ArgumentParser) -> None:
    """The history arguments of `lantern bench retrieval`."""
    p.add_argument(
        "--history-queries",
        type=Path,
        default=None,
        help="BEIR queries.jsonl of past requests (e.g. queries-train.jsonl)",
    )
    p.add_argument("--history-qrels", type=Path, default=None, help="BEIR qrels .tsv of the tools those requests used")
    p.add_argument(
        "--unseen-scenes", type=float, default=0.0, help="share of the test's tool sets dropped from the history (0..1)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed for --unseen-scenes")


@dataclass
class History:
    """The history the bench searches with, and which test queries it has seen."""

    experiences: list = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    """Test query ids whose tool set is in the history."""
    dropped_scenes: int = 0
    dropped_requests: int = 0
    scenes: int = 0
    """Distinct tool sets among the test queries."""


def check(args: argparse.Namespace) -> str | None:
    """A one-line problem with the history arguments, or None."""
    if (args.history_queries is None) != (args.history_qrels is None):
        return "--history-queries and --history-qrels go together"
    if not 0.0 <= args.unseen_scenes < 1.0:
        return f"--unseen-scenes must be in [0, 1), got {args.unseen_scenes}"
    if args.unseen_scenes and args.history_queries is None:
        return "--unseen-scenes needs a history (--history-queries, --history-qrels)"
    return None


def load(args: argparse.Namespace, test_qrels: dict[str, set[str]]) -> History:
    """Read the history files and drop the unseen scenes (raises beir.DataError on a bad file)."""
    from engine.retrieval.beir import load_qrels, load_queries
    from engine.retrieval.experience import Experience

    queries = load_queries(args.history_queries)
    qrels = load_qrels(args.history_qrels)
    scenes = sorted({tuple(sorted(r)) for r in test_qrels.values()})
    rng = random.Random(args.seed)
    unseen = set(rng.sample(scenes, round(args.unseen_scenes * len(scenes)))) if args.unseen_scenes else set()
    source = f"import:{Path(args.history_queries).name}"
    out = History(scenes=len(scenes), dropped_scenes=len(unseen))
    kept_sets: set[tuple[str, ...]] = set()
    for qid, tools in qrels.items():
        text = queries.get(qid, "").strip()
        scene = tuple(sorted(tools))
        if not text:
            continue
        if scene in unseen:
            out.dropped_requests += 1
            continue
        kept_sets.add(scene)
        out.experiences.append(Experience(text, scene, source))
    out.seen = {q for q, r in test_qrels.items() if tuple(sorted(r)) in kept_sets}
    return out


def memory_for(history: History, bench_dir: Path, embedder: object) -> object:
    """An experience memory holding exactly this history (reused when it already does); vectors
    come from a cache shared by every history built from the same requests."""
    from engine.retrieval.experience import ExperienceMemory

    digest = hashlib.sha256("\n".join(sorted(e.id for e in history.experiences)).encode()).hexdigest()[:16]
    mem = ExperienceMemory(
        bench_dir / f"experience-{digest}", embedder=embedder, cache=bench_dir.parent / "experience-vectors"
    )
    if len(mem) != len({e.id for e in history.experiences}):
        mem.forget(everything=True)
        mem.add(history.experiences)
    return mem
