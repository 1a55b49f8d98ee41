"""Experience memory: past requests and the tools that answered them, the index's third table.

    session ends well ──▶ lessons_from_session(events, score) ──▶ ExperienceMemory.add
    `lantern experience import` (BEIR queries + qrels) ─────────▶ ExperienceMemory.add
    request ──▶ neighbours (dense + BM25 over past requests) ──▶ tool votes (a ranked list)
                                                        └──▶ co-usage of the selected tools

Rows live beside the tools (`<index>/experience/`): LanceDB holds each request, its tools and
its e5 query vector; Tantivy holds its words. Adding appends (nothing is rebuilt), and vectors
are cached by content hash, so a forgotten and re-imported history embeds nothing. Past
requests are embedded as queries (e5's `query: ` prefix on both sides: a symmetric match).
Up to EXACT_ROWS rows a matmul scores every row; above, sign bits of the centred vectors
pre-select HAMMING_POOL rows (a popcount over 48 bytes a row) that are then scored exactly.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.retrieval.embed import DIM, Embedder
from engine.retrieval.text import terms

EXACT_ROWS = 20_000
"""Up to this many rows, dense search scores every row exactly."""

HAMMING_POOL = 2_000
"""Above EXACT_ROWS, the rows pre-selected by sign-bit distance and then scored exactly."""

Progress = Callable[[int, int], None]
"""Called with (embedded so far, to embed) while a history is embedded."""

_BATCH = 64
"""Texts per embedding call (and per cache write) on import."""


class ExperienceError(Exception):
    """The experience store or an imported file is unusable (the message says why)."""


@dataclass(frozen=True)
class Experience:
    """One past request and the tools whose calls answered it."""

    text: str
    tools: tuple[str, ...]
    source: str = ""
    """Where it came from: `session:ID` or `import:FILE`."""

    @property
    def id(self) -> str:
        """Content id: the same request with the same tools is one row, however often taught."""
        blob = json.dumps([self.text.strip(), sorted(self.tools)], ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass
class Neighbour:
    """A past request near the current one."""

    row: int
    text: str
    tools: tuple[str, ...]
    similarity: float


@dataclass
class Recall:
    """What experience says about one request: a tool ranking and the past requests behind it."""

    ranking: list[tuple[str, float]] = field(default_factory=list)
    """Tools by summed vote of the near past requests, best first."""
    because: dict[str, list[str]] = field(default_factory=dict)
    """Tool → the past requests that voted for it (nearest first)."""
    strength: float = 0.0
    """0..1: how near the nearest past request is (0 below the similarity gate)."""


def vector_key(text: str) -> str:
    """Cache key of a request's query vector."""
    return hashlib.sha256(("query: " + text.strip()).encode()).hexdigest()[:32]


def _sign_codes(mat: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Sign bits of the centred rows, one column of 64 bits per word: shape (DIM // 64, rows).
    Column-major, so a distance is six contiguous XOR + popcount passes (5x faster than a
    row-wise popcount summed along its short axis)."""
    bits = np.packbits((mat - centre) > 0, axis=1)
    return np.ascontiguousarray(np.ascontiguousarray(bits).view(np.uint64).T)


class ExperienceMemory:
    """Past requests with their tools: BM25 + e5 vectors on disk, grown incrementally."""

    def __init__(self, path: str | Path, *, embedder: Embedder | None = None, cache: str | Path | None = None) -> None:
        self.path = Path(path)
        """Directory holding `tantivy/` and `lance/` of this table."""
        self.embedder = embedder or Embedder()
        """Embeds past requests (once, cached by content hash) and queries."""
        self.cache_path = Path(cache) if cache is not None else self.path / "lance"
        """LanceDB directory of the vector cache (shareable between memories)."""
        self._lock = threading.RLock()
        self._ids: list[str] = []
        self._texts: list[str] = []
        self._tools: list[tuple[str, ...]] = []
        self._sources: list[str] = []
        self._row: dict[str, int] = {}
        self._buf = np.zeros((0, DIM), np.float32)
        self._codes = np.zeros((DIM // 64, 0), np.uint64)
        self._centre = np.zeros(DIM, np.float32)
        self._centred_at = 0
        self._co: dict[str, Counter[str]] = {}
        self._uses: Counter[str] = Counter()
        self._open()

    # -- storage ----------------------------------------------------------------------------
    def _open(self) -> None:
        import lancedb
        import tantivy

        try:
            self.path.mkdir(parents=True, exist_ok=True)
            sb = tantivy.SchemaBuilder()
            sb.add_text_field("id", stored=True, tokenizer_name="raw")
            sb.add_text_field("text", stored=False, tokenizer_name="en_stem")
            self._schema = sb.build()
            tdir = self.path / "tantivy"
            tdir.mkdir(exist_ok=True)
            self._tindex = tantivy.Index(self._schema, path=str(tdir), reuse=True)
            self._db = lancedb.connect(str(self.path / "lance"))
            self._cache_db = (
                self._db if self.cache_path == self.path / "lance" else lancedb.connect(str(self.cache_path))
            )
        except (OSError, ValueError) as exc:
            raise ExperienceError(
                f"cannot open the experience table at {self.path}: {exc}; delete the directory to start afresh"
            ) from None
        self._load()

    def _has(self, db: object, name: str) -> bool:
        try:
            res = db.list_tables()  # type: ignore[attr-defined]
            names = getattr(res, "tables", res)
        except AttributeError:
            names = db.table_names()  # type: ignore[attr-defined]
        return name in set(names)

    def _load(self) -> None:
        if not self._has(self._db, "experience"):
            self._searcher_check(0)
            return
        t = self._db.open_table("experience").to_arrow()
        vecs = t.column("vector").combine_chunks().flatten().to_numpy().reshape(-1, DIM).astype(np.float32)
        rows = zip(
            t.column("id").to_pylist(),
            t.column("text").to_pylist(),
            t.column("tools").to_pylist(),
            t.column("source").to_pylist(),
        )
        self._append([(i, x, tuple(json.loads(tl)), s) for i, x, tl, s in rows], vecs)
        self._searcher_check(len(self._ids))

    def _searcher_check(self, n: int) -> None:
        # A crash between the two stores leaves them out of step; BM25 is rebuilt from LanceDB.
        self._tindex.reload()
        if self._tindex.searcher().num_docs != n:
            w = self._tindex.writer(heap_size=50_000_000, num_threads=1)
            w.delete_all_documents()
            for i, x in zip(self._ids, self._texts):
                w.add_document(self._tdoc(i, x))
            w.commit()
            w.wait_merging_threads()
            self._tindex.reload()

    def _tdoc(self, id_: str, text: str) -> Any:
        import tantivy

        return tantivy.Document(id=id_, text=" ".join(terms(text, drop_stopwords=False)))

    def _append(self, rows: list[tuple[str, str, tuple[str, ...], str]], vecs: np.ndarray) -> None:
        """Rows into memory: the growable matrix, sign codes and co-usage counts."""
        n0, n = len(self._ids), len(self._ids) + len(rows)
        if n > len(self._buf):
            grown = np.zeros((max(n, 2 * len(self._buf), 1024), DIM), np.float32)
            grown[:n0] = self._buf[:n0]
            self._buf = grown
        self._buf[n0:n] = vecs
        for j, (i, x, tl, s) in enumerate(rows, start=n0):
            self._ids.append(i)
            self._texts.append(x)
            self._tools.append(tl)
            self._sources.append(s)
            self._row[i] = j
            self._count(tl, 1)
        if n > 2 * self._centred_at:
            self._centre = self._buf[:n].mean(axis=0) if n else np.zeros(DIM, np.float32)
            self._centred_at = n
            self._codes = _sign_codes(self._buf[:n], self._centre)
        else:
            self._codes = np.hstack([self._codes, _sign_codes(vecs, self._centre)])

    def _count(self, tools: tuple[str, ...], sign: int) -> None:
        uniq = set(tools)
        for a in uniq:
            self._uses[a] += sign
            co = self._co.setdefault(a, Counter())
            for b in uniq - {a}:
                co[b] += sign

    def _cached(self, keys: list[str]) -> dict[str, np.ndarray]:
        if not keys or not self._has(self._cache_db, "vectors"):
            return {}
        t = self._cache_db.open_table("vectors").to_arrow()
        want = set(keys)
        hs = t.column("key").to_pylist()
        mat = t.column("vector").combine_chunks().flatten().to_numpy().reshape(-1, DIM)
        return {h: mat[j].astype(np.float32) for j, h in enumerate(hs) if h in want}

    def _cache_put(self, new: dict[str, np.ndarray]) -> None:
        import pyarrow as pa

        if not new:
            return
        keys = list(new)
        mat = np.vstack([new[k] for k in keys]).astype(np.float32)
        table = pa.table(
            {
                "key": pa.array(keys, pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(mat.reshape(-1)), DIM),
            }
        )
        if self._has(self._cache_db, "vectors"):
            self._cache_db.open_table("vectors").add(table)
        else:
            self._cache_db.create_table("vectors", data=table)

    def vectors(self, texts: list[str], *, progress: Progress | None = None) -> np.ndarray:
        """Query vectors of `texts`, embedding (and caching) only those never embedded before."""
        keys = [vector_key(t) for t in texts]
        have = self._cached(keys)
        todo = list(dict.fromkeys(k for k in keys if k not in have))
        text_of = dict(zip(keys, texts))
        for s in range(0, len(todo), _BATCH):
            chunk = todo[s : s + _BATCH]
            new = dict(zip(chunk, self.embedder.query_batch([text_of[k].strip() for k in chunk])))
            self._cache_put(new)
            have.update(new)
            if progress is not None:
                progress(min(s + _BATCH, len(todo)), len(todo))
        return np.vstack([have[k] for k in keys]) if keys else np.zeros((0, DIM), np.float32)

    # -- updates ----------------------------------------------------------------------------
    def add(
        self, experiences: Iterable[Experience], *, progress: Progress | None = None, vectors: np.ndarray | None = None
    ) -> int:
        """Append new experiences (ones already held are skipped); returns how many were added.
        `vectors` (one row per experience, in order) skips embedding: for synthetic scale tests."""
        import pyarrow as pa

        fresh: dict[str, tuple[Experience, int]] = {}
        for j, e in enumerate(experiences):
            if e.text.strip() and e.tools and e.id not in self._row:
                fresh.setdefault(e.id, (e, j))
        if not fresh:
            return 0
        # Embedding happens outside the lock: searches go on while a long history is imported.
        if vectors is not None:
            vecs = np.asarray(vectors, dtype=np.float32)[[j for _, j in fresh.values()]]
        else:
            vecs = self.vectors([e.text for e, _ in fresh.values()], progress=progress)
        with self._lock:
            items = list(fresh.values())
            keep = [n for n, (e, _) in enumerate(items) if e.id not in self._row]
            rows = [items[n][0] for n in keep]
            vecs = vecs[keep]
            if not rows:
                return 0
            table = pa.table(
                {
                    "id": pa.array([e.id for e in rows], pa.string()),
                    "text": pa.array([e.text.strip() for e in rows], pa.string()),
                    "tools": pa.array([json.dumps(list(e.tools)) for e in rows], pa.string()),
                    "source": pa.array([e.source for e in rows], pa.string()),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1).astype(np.float32)), DIM),
                }
            )
            if self._has(self._db, "experience"):
                self._db.open_table("experience").add(table)
            else:
                self._db.create_table("experience", data=table)
            w = self._tindex.writer(heap_size=50_000_000, num_threads=1)
            for e in rows:
                w.add_document(self._tdoc(e.id, e.text.strip()))
            w.commit()
            w.wait_merging_threads()
            self._tindex.reload()
            self._append([(e.id, e.text.strip(), tuple(e.tools), e.source) for e in rows], vecs)
            return len(rows)

    def forget(self, *, ids: Iterable[str] = (), source: str | None = None, everything: bool = False) -> int:
        """Remove rows by id (or unique id prefix), by source (`session:ID`, `import:FILE`), or all."""
        with self._lock:
            wanted = set()
            for p in ids:
                match = [i for i in self._ids if i.startswith(p)]
                if len(match) > 1:
                    raise ExperienceError(f"{p!r} matches {len(match)} rows; give more of the id")
                wanted.update(match)
            if source is not None:
                wanted.update(i for i, s in zip(self._ids, self._sources) if s == source)
            if everything:
                wanted = set(self._ids)
            if not wanted:
                return 0
            keep = [j for j, i in enumerate(self._ids) if i not in wanted]
            rows = [(self._ids[j], self._texts[j], self._tools[j], self._sources[j]) for j in keep]
            vecs = self._buf[keep]
            if self._has(self._db, "experience"):
                self._db.drop_table("experience")
            self._reset()
            if rows:
                self._write_all(rows, vecs)
            self._searcher_check(len(self._ids))
            return len(wanted)

    def _reset(self) -> None:
        self._ids, self._texts, self._tools, self._sources, self._row = [], [], [], [], {}
        self._buf = np.zeros((0, DIM), np.float32)
        self._codes = np.zeros((DIM // 64, 0), np.uint64)
        self._centred_at, self._co, self._uses = 0, {}, Counter()

    def _write_all(self, rows: list[tuple[str, str, tuple[str, ...], str]], vecs: np.ndarray) -> None:
        import pyarrow as pa

        table = pa.table(
            {
                "id": pa.array([r[0] for r in rows], pa.string()),
                "text": pa.array([r[1] for r in rows], pa.string()),
                "tools": pa.array([json.dumps(list(r[2])) for r in rows], pa.string()),
                "source": pa.array([r[3] for r in rows], pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vecs.reshape(-1).astype(np.float32)), DIM),
            }
        )
        self._db.create_table("experience", data=table, mode="overwrite")
        self._append(rows, vecs)

    # -- reads ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._ids)

    def rows(self) -> list[tuple[str, str, tuple[str, ...], str]]:
        """Every row as (id, text, tools, source), oldest first."""
        return list(zip(self._ids, self._texts, self._tools, self._sources))

    def dense(self, vector: np.ndarray, k: int = 20) -> list[tuple[int, float]]:
        """The k rows nearest the query vector: [(row, cosine)], best first."""
        n = len(self._ids)
        if not n:
            return []
        q = np.asarray(vector, dtype=np.float32).reshape(-1)
        mat = self._buf[:n]
        if n <= EXACT_ROWS:
            rows = None
            scores = np.einsum("ij,j->i", mat, q)
        else:
            qc = _sign_codes(q[None, :], self._centre)[:, 0]
            dist = np.bitwise_count(self._codes[0] ^ qc[0]).astype(np.uint16)
            for w in range(1, len(qc)):
                dist += np.bitwise_count(self._codes[w] ^ qc[w])
            rows = np.sort(np.argpartition(dist, HAMMING_POOL - 1)[:HAMMING_POOL])
            scores = np.einsum("ij,j->i", mat[rows], q)
        take = min(k, len(scores))
        best = np.argpartition(-scores, take - 1)[:take] if take < len(scores) else np.arange(len(scores))
        best = best[np.argsort(-scores[best])]
        return [(int(b if rows is None else rows[b]), float(scores[b])) for b in best]

    def bm25(self, query: str, k: int = 20) -> list[tuple[int, float]]:
        """The k rows whose words best match the query: [(row, score)], best first."""
        # Filler words match nearly every past request and cost a pass over all their postings.
        ts = terms(query) or terms(query, drop_stopwords=False)
        if not ts or not self._ids:
            return []
        q = self._tindex.parse_query(" ".join(dict.fromkeys(ts)), ["text"])
        searcher = self._tindex.searcher()
        out = []
        for score, addr in searcher.search(q, k).hits:
            j = self._row.get(searcher.doc(addr)["id"][0])
            if j is not None:
                out.append((j, float(score)))
        return out

    def neighbours(self, query: str, vector: np.ndarray, k: int = 20) -> list[Neighbour]:
        """Past requests near this one (dense and BM25 candidates), by cosine similarity, best first."""
        with self._lock:  # a session's lesson may be appended from another thread meanwhile
            rows = dict(self.dense(vector, k))
            q = np.asarray(vector, dtype=np.float32).reshape(-1)
            for j, _ in self.bm25(query, k):
                if j not in rows:
                    rows[j] = float(self._buf[j] @ q)
            best = sorted(rows.items(), key=lambda kv: -kv[1])
            return [Neighbour(j, self._texts[j], self._tools[j], s) for j, s in best]

    def companions(self, tool: str, *, min_uses: int = 5, min_share: float = 0.6) -> list[tuple[str, float]]:
        """Tools that come with `tool` in at least `min_share` of its past uses: [(tool, share)]."""
        with self._lock:
            uses = self._uses.get(tool, 0)
            if uses < min_uses:
                return []
            co = self._co.get(tool, Counter())
            return sorted(((b, c / uses) for b, c in co.items() if c / uses >= min_share), key=lambda kv: -kv[1])


@dataclass
class RecallConfig:
    """How near past requests become a tool ranking (defaults chosen on a split of the history)."""

    k: int = 20
    """Neighbours taken from each of the dense and BM25 rankings."""
    gate: float = 0.86
    """Below this cosine to the nearest past request, experience says nothing."""
    full: float = 0.93
    """At or above this cosine, experience speaks with its full weight."""
    margin: float = 0.03
    """Neighbours more than this below the nearest one do not vote."""
    temperature: float = 0.01
    """Vote weight exp((cos - best) / temperature): the nearest requests count most."""
    min_share: float = 0.15
    """A tool needs this share of the top tool's votes to be ranked."""


def recall(
    memory: ExperienceMemory,
    query: str,
    vector: np.ndarray,
    config: RecallConfig | None = None,
    allowed: set[str] | None = None,
) -> Recall:
    """The tools the near past requests used, ranked by similarity-weighted votes."""
    c = config or RecallConfig()
    if not len(memory):
        return Recall()
    near = memory.neighbours(query, vector, c.k)
    if not near or near[0].similarity < c.gate:
        return Recall()
    best = near[0].similarity
    votes: dict[str, float] = {}
    because: dict[str, list[str]] = {}
    for n in near:
        if n.similarity < best - c.margin:
            break
        w = math.exp((n.similarity - best) / c.temperature)
        for t in dict.fromkeys(n.tools):
            if allowed is not None and t not in allowed:
                continue
            votes[t] = votes.get(t, 0.0) + w
            because.setdefault(t, []).append(n.text)
    if not votes:
        return Recall()
    top = max(votes.values())
    ranking = sorted(((t, v) for t, v in votes.items() if v >= c.min_share * top), key=lambda kv: -kv[1])
    strength = min(1.0, (best - c.gate) / max(c.full - c.gate, 1e-6))
    return Recall(ranking, {t: because[t] for t, _ in ranking}, strength)
