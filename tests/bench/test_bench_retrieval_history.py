"""The retrieval benches' history: unseen scenes leave the history before anything is built, and
the scale bench's synthetic rows recombine real requests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.retrieval.embed import DIM


def test_the_bench_drops_unseen_scenes_from_the_history_before_anything_is_built(tmp_path: Path) -> None:
    import argparse
    import json

    from bench import retrieval_history

    q, r = tmp_path / "q.jsonl", tmp_path / "r.tsv"
    scenes = [("a", "b"), ("c",), ("d", "e"), ("f",)]
    q.write_text("".join(json.dumps({"_id": f"h{i}", "text": f"request {i}"}) + "\n" for i in range(40)))
    r.write_text("".join(f"h{i}\t{t}\t1\n" for i in range(40) for t in scenes[i % 4]))
    test = {f"t{i}": set(scenes[i % 4]) for i in range(8)} | {"t9": {"z"}}
    args = argparse.Namespace(history_queries=q, history_qrels=r, unseen_scenes=0.5, seed=3)
    h = retrieval_history.load(args, test)
    kept = {e.tools for e in h.experiences}
    assert h.scenes == 5 and h.dropped_scenes == 2 and kept < set(scenes)
    assert h.dropped_requests == 40 - len(h.experiences)
    assert h.seen == {t for t, tools in test.items() if tuple(sorted(tools)) in kept}
    assert "t9" not in h.seen and retrieval_history.load(args, test).seen == h.seen  # seeded: the same split
    assert (
        retrieval_history.check(argparse.Namespace(history_queries=None, history_qrels=r, unseen_scenes=0.0))
        is not None
    )


def test_the_scale_bench_recombines_real_requests_into_new_rows() -> None:
    from bench.retrieval_history_scale import synthetic

    texts = ["show logs of the payments pod", "roll orders-api back now", "which deploy broke checkout today"]
    vecs = np.eye(3, DIM, dtype=np.float32)
    rows, out = synthetic(texts, [("a",), ("b",), ("c",)], vecs, 5, seed=1)
    assert len(rows) == 5 and len({r.text for r in rows}) == 5 and not {r.text for r in rows} & set(texts)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    for r, v in zip(rows, out):
        source = "abc".index(r.tools[0])
        assert (
            r.text.split()[0] == texts[source].split()[0] and v[source] > 0.9
        )  # the first request's words, tools and vector
