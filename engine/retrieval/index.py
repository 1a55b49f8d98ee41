"""HybridIndex: tools and runbooks in Tantivy (BM25) and LanceDB (e5 vectors), on disk.

Each document is keyed by a hash of its content. `sync(docs)` compares hashes with what is
stored and touches only what changed: a start with unchanged packs embeds nothing; a changed
pack re-embeds only its changed actions. Vectors live in LanceDB (one table per kind, plus an
`embeddings` cache keyed by passage hash, so a document that moves or comes back is never
embedded twice); at ≤ 10k rows a brute-force matmul over the vectors held in memory answers in
well under a millisecond, cheaper than a LanceDB query's fixed overhead, so searches use it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import threading
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from engine.retrieval.embed import DIM, Embedder
from engine.retrieval.text import split_identifiers, terms

Kind = Literal["tool", "runbook"]
KINDS: tuple[str, ...] = ("tool", "runbook")
"""Document kinds; each has its own LanceDB table."""

SCHEMA_VERSION = 3
"""Bumped when the stored layout or the passage text changes; a mismatch rebuilds the index."""

FEEDBACK_POOL = 1000
"""Rows the feedback ranking re-scores in a larger index: the first dense pass's best."""

FIELD_BOOSTS: dict[str, float] = {
    "name": 1.0,
    "keywords": 1.0,
    "description": 1.0,
    "pack": 1.0,
    "params": 1.0,
    "details": 1.0,
}
"""BM25 field weights. Equal weights measured best: tool text is short, so every field counts."""


class IndexError_(Exception):
    """The index directory is unusable (the message says why and what to do)."""


@dataclass(frozen=True)
class Doc:
    """One retrievable document: a tool (pack action) or a runbook."""

    id: str
    kind: Kind
    name: str
    description: str = ""
    pack: str = ""
    keywords: tuple[str, ...] = ()
    params: tuple[str, ...] = ()
    """Parameter names (and, for runbooks, step tool names)."""
    details: str = ""
    """Free text from the schema: parameter descriptions, enum values, output fields."""

    def __post_init__(self) -> None:
        if not self.id or not isinstance(self.id, str):
            raise ValueError(f"Doc needs a non-empty string id, got {self.id!r}")
        if self.kind not in KINDS:
            raise ValueError(f"Doc {self.id!r}: kind must be one of {KINDS}, got {self.kind!r}")
        object.__setattr__(self, "keywords", tuple(self.keywords))
        object.__setattr__(self, "params", tuple(self.params))

    @property
    def hash(self) -> str:
        """Content hash: what decides whether a stored copy is still current."""
        blob = json.dumps([SCHEMA_VERSION, asdict(self)], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def passage(self) -> str:
        """The text the embedder sees (e5 `passage: ` prefix added by the embedder)."""
        head = split_identifiers(self.name)
        pack = split_identifiers(self.pack) if self.pack else ""
        parts = [f"{pack}: {head}" if pack and not head.startswith(pack) else head]
        if self.description:
            parts.append(self.description.strip())
        if self.keywords:
            parts.append("Keywords: " + ", ".join(self.keywords))
        if self.params:
            parts.append("Parameters: " + ", ".join(split_identifiers(p) for p in self.params))
        if self.details:
            parts.append(self.details.strip())
        return ". ".join(parts)[:1500]


def doc_from_tool(tool: Any) -> Doc:
    """The retrieval document of an engine.tools.Tool (id = tool name)."""
    props = (tool.parameters or {}).get("properties") or {}
    details = []
    for pname, spec in props.items():
        if isinstance(spec, dict):
            bits = [str(spec.get("description") or "")]
            if spec.get("enum"):
                bits.append(" ".join(map(str, spec["enum"])))
            text = " ".join(b for b in bits if b)
            if text:
                details.append(f"{pname}: {text}")
    return Doc(
        id=tool.name,
        kind="tool",
        name=tool.name,
        description=tool.description or "",
        pack=tool.pack or "",
        keywords=tuple(tool.keywords or ()),
        params=tuple(props),
        details="; ".join(details),
    )


def runbook_doc(
    id: str,
    title: str,
    text: str,
    *,
    tools: list[str] | tuple[str, ...] = (),
    keywords: list[str] | tuple[str, ...] = (),
    pack: str = "",
) -> Doc:
    """A runbook/playbook as a Doc of the second table (its steps' tool names go in params)."""
    return Doc(
        id=id, kind="runbook", name=title, description=text, pack=pack, keywords=tuple(keywords), params=tuple(tools)
    )


@dataclass
class SyncReport:
    """What one `sync` changed."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    embedded: int = 0
    """Passages embedded by this sync (0 on a warm start)."""


def _bm25_text(doc: Doc) -> dict[str, str]:
    return {
        "name": split_identifiers(doc.name),
        "description": split_identifiers(doc.description),
        "pack": split_identifiers(doc.pack),
        "keywords": split_identifiers(" ".join(doc.keywords)),
        "params": split_identifiers(" ".join(doc.params)),
        "details": split_identifiers(doc.details),
    }


class HybridIndex:
    """Tantivy BM25 + LanceDB vectors over tools and runbooks, kept in sync by content hash."""

    def __init__(self, path: str | Path | None = None, *, embedder: Embedder | None = None) -> None:
        if path is None:
            from engine.config import cache_dir

            path = cache_dir() / "index"
        self.path = Path(path)
        """Directory holding `tantivy/` and `lance/`."""
        self.embedder = embedder or Embedder()
        """Embeds passages (on change only) and queries."""
        self._lock = threading.RLock()
        self._docs: dict[str, Doc] = {}
        self._hashes: dict[str, str] = {}
        self._ids: dict[str, list[str]] = {k: [] for k in KINDS}
        self._mat: dict[str, np.ndarray] = {k: np.zeros((0, DIM), np.float32) for k in KINDS}
        self._experience: Any = None
        self._experience_off = False
        self._generation = ""
        self.path.mkdir(parents=True, exist_ok=True)
        with self._exclusive():
            self._open()

    # -- storage ----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _exclusive(self) -> Any:
        """Hold the index directory against other processes: Tantivy allows one writer per
        directory, so a second process that opens or syncs the same index waits here, then reads
        what the first one wrote instead of failing."""
        fd = os.open(self.path / ".write.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _read_generation(self) -> str:
        try:
            return (self.path / "generation").read_text()
        except OSError:
            return ""

    def _bump_generation(self) -> None:
        self._generation = uuid.uuid4().hex
        (self.path / "generation").write_text(self._generation)

    def _open(self) -> None:
        import lancedb
        import tantivy

        meta = self.path / "meta.json"
        try:
            version = json.loads(meta.read_text()).get("version") if meta.exists() else None
        except (OSError, ValueError):
            version = None
        if version != SCHEMA_VERSION:
            # An old or damaged layout is rebuilt from the packs; the embeddings cache survives
            # only when its own table is still readable.
            shutil.rmtree(self.path / "tantivy", ignore_errors=True)
            for k in KINDS:
                shutil.rmtree(self.path / "lance" / f"{k}s.lance", ignore_errors=True)
        sb = tantivy.SchemaBuilder()
        sb.add_text_field("id", stored=True, tokenizer_name="raw")
        sb.add_text_field("kind", stored=True, tokenizer_name="raw")
        for f in FIELD_BOOSTS:
            sb.add_text_field(f, stored=False, tokenizer_name="en_stem")
        self._schema = sb.build()
        tdir = self.path / "tantivy"
        tdir.mkdir(exist_ok=True)
        try:
            self._tindex = tantivy.Index(self._schema, path=str(tdir), reuse=True)
        except ValueError as exc:
            raise IndexError_(
                f"cannot open the BM25 index at {tdir}: {exc}; delete the directory to rebuild it"
            ) from exc
        self._db = lancedb.connect(str(self.path / "lance"))
        self._load_tables()
        meta.write_text(json.dumps({"version": SCHEMA_VERSION}))
        self._generation = self._read_generation()

    def _table_names(self) -> list[str]:
        try:
            res = self._db.list_tables()
            names = getattr(res, "tables", res)
        except AttributeError:
            names = self._db.table_names()
        return list(names)

    def _load_tables(self) -> None:
        names = set(self._table_names())
        self._docs.clear()
        self._hashes.clear()
        for k in KINDS:
            tname = f"{k}s"
            if tname not in names:
                self._ids[k], self._mat[k] = [], np.zeros((0, DIM), np.float32)
                continue
            t = self._db.open_table(tname).to_arrow()
            ids = t.column("id").to_pylist()
            hashes = t.column("hash").to_pylist()
            docs = t.column("doc").to_pylist()
            vecs = t.column("vector").to_numpy(zero_copy_only=False)
            mat = np.vstack(vecs).astype(np.float32) if len(vecs) else np.zeros((0, DIM), np.float32)
            for i, h, d in zip(ids, hashes, docs):
                dd = json.loads(d)
                self._docs[i] = Doc(**dd)
                self._hashes[i] = h
            self._ids[k], self._mat[k] = ids, mat
        # A crash between the two stores leaves them out of step; BM25 is rebuilt from LanceDB.
        self._tindex.reload()
        if self._tindex.searcher().num_docs != len(self._docs):
            self._rebuild_bm25()

    def _rebuild_bm25(self) -> None:
        w = self._tindex.writer(heap_size=50_000_000, num_threads=1)
        w.delete_all_documents()
        for d in self._docs.values():
            w.add_document(self._tdoc(d))
        w.commit()
        w.wait_merging_threads()
        self._tindex.reload()

    def _tdoc(self, d: Doc) -> Any:
        import tantivy

        return tantivy.Document(id=d.id, kind=d.kind, **_bm25_text(d))

    def _cached_vectors(self, hashes: list[str]) -> dict[str, np.ndarray]:
        if not hashes or "embeddings" not in set(self._table_names()):
            return {}
        t = self._db.open_table("embeddings").to_arrow()
        want = set(hashes)
        out = {}
        for h, v in zip(t.column("hash").to_pylist(), t.column("vector").to_numpy(zero_copy_only=False)):
            if h in want:
                out[h] = np.asarray(v, dtype=np.float32)
        return out

    def _write_tables(self, kinds: set[Any], new_vectors: dict[str, np.ndarray], vec_of: dict[str, np.ndarray]) -> None:
        import pyarrow as pa

        vec_type = pa.list_(pa.float32(), DIM)
        for k in kinds:
            rows = [d for d in self._docs.values() if d.kind == k]
            ids = [d.id for d in rows]
            mat = np.vstack([vec_of[i] for i in ids]).astype(np.float32) if rows else np.zeros((0, DIM), np.float32)
            table = pa.table(
                {
                    "id": pa.array(ids, pa.string()),
                    "kind": pa.array([k] * len(ids), pa.string()),
                    "hash": pa.array([self._hashes[i] for i in ids], pa.string()),
                    "doc": pa.array([json.dumps(asdict(d), ensure_ascii=False) for d in rows], pa.string()),
                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(mat.reshape(-1), pa.float32()), DIM),
                },
                schema=pa.schema(
                    [
                        ("id", pa.string()),
                        ("kind", pa.string()),
                        ("hash", pa.string()),
                        ("doc", pa.string()),
                        ("vector", vec_type),
                    ]
                ),
            )
            self._db.create_table(f"{k}s", data=table, mode="overwrite")
            self._ids[k], self._mat[k] = ids, mat
        if new_vectors:
            hs = list(new_vectors)
            emb = pa.table(
                {
                    "hash": pa.array(hs, pa.string()),
                    "vector": pa.FixedSizeListArray.from_arrays(
                        pa.array(np.vstack([new_vectors[h] for h in hs]).reshape(-1).astype(np.float32), pa.float32()),
                        DIM,
                    ),
                }
            )
            if "embeddings" in set(self._table_names()):
                self._db.open_table("embeddings").add(emb)
            else:
                self._db.create_table("embeddings", data=emb)

    # -- updates ----------------------------------------------------------------------------
    def sync(
        self, docs: Iterable[Doc], *, kinds: Iterable[str] | None = None, scope: Iterable[str] | None = None
    ) -> SyncReport:
        """Make the index hold exactly `docs` (within `kinds`, and within packs `scope` if given).

        Unchanged documents are left alone; changed and new ones are re-indexed, embedding only
        passages whose hash is not cached; documents no longer present are removed. With
        `scope`, only documents of those packs are considered for removal, so one changed pack
        can be synced alone.
        """
        seen = _unique_docs(docs)
        kinds_set = set(kinds or KINDS)
        scope_set = set(scope) if scope is not None else None
        rep = SyncReport()
        with self._lock, self._exclusive():
            if self._read_generation() != self._generation:  # another process wrote since we read
                self._load_tables()
                self._generation = self._read_generation()
            changed: list[Doc] = []
            for d in seen.values():
                old = self._hashes.get(d.id)
                if old == d.hash:
                    rep.unchanged += 1
                    continue
                (rep.updated if old is not None else rep.added).append(d.id)
                changed.append(d)
            rep.removed = [
                i
                for i, d in self._docs.items()
                if i not in seen and d.kind in kinds_set and (scope_set is None or d.pack in scope_set)
            ]
            if changed or rep.removed:
                self._apply(changed, rep)
        return rep

    def _vectors_for(self, changed: list[Doc], rep: SyncReport) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(vectors embedded now by passage hash, every document's vector by id): the current row,
        then the hash cache, then the embedder for the rest."""
        passage_hash = {d.id: hashlib.sha256(d.passage().encode()).hexdigest()[:32] for d in changed}
        cached = self._cached_vectors(list(passage_hash.values()))
        need = [d for d in changed if passage_hash[d.id] not in cached]
        new_vectors: dict[str, np.ndarray] = {}
        if need:
            uniq: dict[str, str] = {}
            for d in need:
                uniq.setdefault(passage_hash[d.id], d.passage())
            mat = self.embedder.passages(list(uniq.values()))
            new_vectors = dict(zip(uniq, mat))
            rep.embedded = len(uniq)
        vec_of: dict[str, np.ndarray] = {}
        for k in KINDS:
            for i, row in zip(self._ids[k], self._mat[k]):
                vec_of[i] = row
        for d in changed:
            ph = passage_hash[d.id]
            vec_of[d.id] = new_vectors[ph] if ph in new_vectors else cached[ph]
        return new_vectors, vec_of

    def _apply(self, changed: list[Doc], rep: SyncReport) -> None:
        """Write the changed and removed documents to the text index and the vector tables (under the lock)."""
        new_vectors, vec_of = self._vectors_for(changed, rep)
        touched = {d.kind for d in changed} | {self._docs[i].kind for i in rep.removed}
        for i in rep.removed:
            self._docs.pop(i, None)
            self._hashes.pop(i, None)
        for d in changed:
            old = self._docs.get(d.id)
            if old is not None:
                touched.add(old.kind)
            self._docs[d.id] = d
            self._hashes[d.id] = d.hash
        w = self._tindex.writer(heap_size=50_000_000, num_threads=1)
        try:
            for i in [*rep.removed, *(d.id for d in changed)]:
                w.delete_documents_by_term("id", i)
            for d in changed:
                w.add_document(self._tdoc(d))
            self._write_tables(touched, new_vectors, vec_of)
            w.commit()
        except BaseException:
            w.rollback()
            raise
        finally:
            w.wait_merging_threads()
        self._tindex.reload()
        self._bump_generation()

    # -- experience (the third table) -------------------------------------------------------
    @property
    def experience(self) -> Any:
        """The experience memory beside the tools (`<index>/experience`), opened on first use."""
        if self._experience is None:
            from engine.retrieval.experience import ExperienceMemory

            with self._lock:
                if self._experience is None:
                    self._experience = ExperienceMemory(self.path / "experience", embedder=self.embedder)
        return self._experience

    def experience_if_any(self) -> Any:
        """The experience memory when one exists on disk or was attached (None: no history yet)."""
        if self._experience_off or (self._experience is None and not (self.path / "experience").exists()):
            return None
        return self.experience

    def attach_experience(self, memory: Any) -> None:
        """Use this experience memory instead of the one beside the tools (None: search without
        history; benchmarks compare several)."""
        self._experience = memory
        self._experience_off = memory is None

    # -- reads ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._docs)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._docs

    def get(self, doc_id: str) -> Doc | None:
        """The stored document with this id, or None."""
        return self._docs.get(doc_id)

    def content_hash(self, doc_id: str) -> str | None:
        """The stored content hash of a document (changes whenever the document does), or None."""
        return self._hashes.get(doc_id)

    def docs(self, kind: str | None = None) -> list[Doc]:
        """Every stored document (of one kind if given)."""
        return [d for d in self._docs.values() if kind is None or d.kind == kind]

    def bm25(
        self,
        query: str,
        *,
        kind: str = "tool",
        k: int = 50,
        allowed: set[str] | None = None,
        fields: tuple[str, ...] | None = None,
        stopwords: bool = True,
    ) -> list[tuple[str, float]]:
        """BM25 over name/description/pack/keywords/params/details (or only `fields`): [(id, score)],
        best first. `stopwords=False` keeps filler words ("tell" in a command phrase)."""
        import tantivy

        ts = terms(query, drop_stopwords=stopwords)
        if not ts:
            return []
        names = list(fields or FIELD_BOOSTS)
        q = self._tindex.parse_query(
            " ".join(dict.fromkeys(ts)), names, field_boosts={f: FIELD_BOOSTS[f] for f in names}
        )
        q = tantivy.Query.boolean_query(
            [(tantivy.Occur.Must, q), (tantivy.Occur.Must, tantivy.Query.term_query(self._schema, "kind", kind))]
        )
        searcher = self._tindex.searcher()
        limit = k if allowed is None else max(k * 4, k + 50)
        out: list[tuple[str, float]] = []
        for score, addr in searcher.search(q, limit).hits:
            i = searcher.doc(addr)["id"][0]
            if allowed is None or i in allowed:
                out.append((i, float(score)))
            if len(out) >= k:
                break
        return out

    def dense(
        self, vector: np.ndarray, *, kind: str = "tool", k: int = 50, allowed: set[str] | None = None
    ) -> list[tuple[str, float]]:
        """Cosine similarity of a query vector against every passage: [(id, score)], best first."""
        if not len(self._mat[kind]):
            return []
        scores = self._scores(kind, vector)
        best = self._best(kind, scores, k, allowed)
        return self._pairs(kind, best, scores[best])

    def dense_feedback(
        self,
        vector: np.ndarray,
        *,
        kind: str = "tool",
        k: int = 50,
        allowed: set[str] | None = None,
        docs: int = 5,
        alpha: float = 0.6,
    ) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
        """The dense ranking and its Rocchio pseudo-relevance feedback ranking, from one pass.

        Feedback ranks by the query moved towards the centroid c of the first ranking's best
        `docs` passages: (1 - alpha)·q + alpha·c. The moved vector re-scores only the first pass's
        best FEEDBACK_POOL rows (every row of a smaller index), where q·d is known and only c·d
        costs anything: a second sweep over 10,000 rows, cold in cache right after the query
        embedding, took longer than the rest of the pipeline together.
        """
        mat = self._mat[kind]
        if not len(mat):
            return [], []
        n = len(mat)
        scores = self._scores(kind, vector)
        first = self._best(kind, scores, k, allowed)
        if docs <= 0 or not len(first):
            return self._pairs(kind, first, scores[first]), []
        c = mat[first[:docs]].mean(axis=0)
        if n <= FEEDBACK_POOL:
            rows = None
            moved = (1 - alpha) * scores + alpha * np.einsum("ij,j->i", mat, c)
        else:
            # The pool keeps FEEDBACK_POOL allowed rows even when the filter drops many of the best.
            pool = min(n, FEEDBACK_POOL + (n - len(allowed) if allowed is not None else 0))
            # In row order, so that gathering them reads memory forwards.
            rows = np.sort(np.argpartition(-scores, pool - 1)[:pool]) if pool < n else np.arange(n)
            moved = (1 - alpha) * scores[rows] + alpha * np.einsum("ij,j->i", mat[rows], c)
        moved /= np.linalg.norm((1 - alpha) * np.asarray(vector, dtype=np.float32).reshape(-1) + alpha * c) or 1.0
        best = self._best(kind, moved, k, allowed, rows)
        return self._pairs(kind, first, scores[first]), self._pairs(
            kind, best if rows is None else rows[best], moved[best]
        )

    def _pairs(self, kind: str, rows: np.ndarray, scores: np.ndarray) -> list[tuple[str, float]]:
        ids = self._ids[kind]
        return [(ids[j], x) for j, x in zip(rows.tolist(), scores.tolist())]

    def _scores(self, kind: str, vector: np.ndarray) -> np.ndarray:
        # einsum runs a plain single-threaded loop; `mat @ v` goes to OpenBLAS, whose thread pool
        # wakes up against the embedder's OpenMP threads: 0.1 ms when warm but 6–16 ms right
        # after a query embedding at 10k rows, against ~0.5 ms here.
        return np.einsum("ij,j->i", self._mat[kind], np.asarray(vector, dtype=np.float32).reshape(-1))

    def _best(
        self, kind: str, scores: np.ndarray, k: int, allowed: set[str] | None, rows: np.ndarray | None = None
    ) -> np.ndarray:
        """Positions in `scores` of the best k rows whose ids are allowed, best first. `scores`
        covers every row of `kind`, or the rows listed in `rows`."""
        ids = self._ids[kind]
        n = len(scores)
        # A filter that admits most rows drops at most n - len(allowed) of the best; when it held
        # ids of other kinds and too few came through, every row is sorted.
        take = min(n, k + max(0, n - len(allowed))) if allowed is not None else min(k, n)
        while True:
            idx = np.argpartition(-scores, take - 1)[:take] if take < n else np.arange(n)
            idx = idx[np.argsort(-scores[idx])]
            if allowed is None:
                return idx
            keep = [j for j in idx if ids[j if rows is None else rows[j]] in allowed][:k]
            if len(keep) >= k or take >= n:
                return np.asarray(keep, dtype=np.int64)
            take = n


def _unique_docs(docs: Iterable[Doc]) -> dict[str, Doc]:
    """Documents by id; two different documents with one id are an error."""
    seen: dict[str, Doc] = {}
    for d in docs:
        if not isinstance(d, Doc):
            raise TypeError(f"sync expects Doc objects, got {type(d).__name__}")
        if d.id in seen and seen[d.id] != d:
            raise ValueError(f"two different documents share the id {d.id!r}")
        seen[d.id] = d
    return seen
