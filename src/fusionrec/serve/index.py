"""The item index the server retrieves from: FAISS, exact for small catalogues, IVF above a threshold.

A model with ``SupportsVectors`` scores ``user_vector @ item_vector`` (biases folded in), so top-k
retrieval is maximum inner product search over the ``(n_items, d)`` item vectors; for
``vector_measure == "cosine"`` both sides are L2-normalised first (item rows when added, queries
when searched), which turns cosine into inner product.

- **exact** (``n < exact_threshold``): ``IndexIDMap2(IndexFlatIP)``, brute force, the same top-k
  as numpy (ties aside). Below ~50k items one query costs about a millisecond, so nothing is gained
  by approximating.
- **ivf** (``n >= exact_threshold``): ``IndexIVFFlat`` with the inner-product metric, ``nlist ~
  4 sqrt(n)`` lists trained by k-means on a sample (spherical for cosine), ``nprobe`` lists scanned
  per query. Chosen over HNSW because it adds and removes ids natively (``add_with_ids`` /
  ``remove_ids``): no tombstones, no periodic rebuild to honour a removal. Vectors are stored
  uncompressed (Flat), so the scores of what it returns are exact inner products; only the set
  can miss items. :meth:`VectorIndex.recall_against_exact` measures how much, and
  :meth:`VectorIndex.calibrate` raises ``nprobe`` until a target recall is met.

Ids are the model's item indices (``int64 >= 0``). ``add`` of an id already present replaces its
vector. Items added after training go to the list of their nearest centroid; when the catalogue
has grown several-fold the lists become unbalanced and a rebuild (``VectorIndex.build``) is due;
likewise an exact index stays exact when adds take it past the threshold (``kind`` tells).

Threads: ``search`` only reads (FAISS searches are thread-safe, each call passes its own
``SearchParameters``, nothing shared is mutated), so any number may run at once; ``add`` /
``remove`` modify the index and must not run concurrently with a search or each other: the caller
holds a lock (the server does). OpenMP threads are left as they are unless ``threads`` is given.

On disk (never pickle): ``index.faiss`` (``faiss.write_index``) and the header ``index.json``
(format version, measure, kind, dim, n, nprobe, plus the caller's ``meta``, e.g. a bundle digest).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import faiss
import numpy as np

from fusionrec.errors import ModelError

FORMAT_VERSION = 1
HEADER_FILE = "index.json"
INDEX_FILE = "index.faiss"
MEASURES = ("inner_product", "cosine")
EXACT_THRESHOLD = 50_000
#: Rows whose exclusion list is at most this long are over-fetched (``k + len`` then filtered) in
#: one batched search; longer lists get a per-query FAISS ``IDSelector`` instead.
OVERFETCH_LIMIT = 512
#: Ids index a boolean "present" array, so they must be item indices, not arbitrary 64-bit keys.
MAX_ID = 1 << 31

ExcludeLike = Any  # a sequence (one per query) of item-id arrays, or a CSR with one row per query


def default_nlist(n: int) -> int:
    """``~4 sqrt(n)`` inverted lists (the FAISS guideline), at least 1 and at most ``n // 39``
    (k-means wants >= 39 training points per centroid)."""
    return int(max(1, min(round(4 * math.sqrt(n)), n // 39)))


def default_nprobe(nlist: int) -> int:
    """Lists scanned per query: ``max(16, nlist // 32)`` (~3 % of the catalogue). On the clustered
    data of benchmarks/bench_index.py: recall@20 0.99 at 1M items (nlist 4000, nprobe 125, p99 ~1.4 ms),
    0.996 at 100k; the recall/latency curve is flat enough that safety costs little."""
    return int(min(nlist, max(16, nlist // 32)))


def _as_matrix(vectors: np.ndarray, dim: int | None, what: str) -> np.ndarray:
    x = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim):
        raise ModelError(f"{what} must be (n, {dim if dim is not None else 'd'}), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ModelError(f"{what} contain NaN or infinite values")
    return x


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


class VectorIndex:
    """Top-k inner-product (or cosine) search over item vectors keyed by int64 item ids.

    Build with :meth:`build`, restore with :meth:`load`; the constructor wraps a FAISS index.
    """

    def __init__(self, index: Any, measure: str, kind: str, dim: int, nprobe: int = 1,
                 meta: dict[str, Any] | None = None) -> None:
        if measure not in MEASURES:
            raise ModelError(f"unknown vector measure {measure!r} (one of {', '.join(MEASURES)})")
        self.index: Any = index  # faiss.IndexIDMap2 or faiss.IndexIVFFlat (the stubs know neither's fields)
        self.measure = measure
        self.kind = kind
        self.dim = int(dim)
        self.nprobe = int(nprobe)
        self.meta: dict[str, Any] = dict(meta or {})
        self._live = np.zeros(0, dtype=bool)  # id -> present
        self._mark(self._stored_ids(), True)

    # ------------------------------------------------------------------ building
    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        ids: np.ndarray | None = None,
        *,
        measure: str = "inner_product",
        exact_threshold: int = EXACT_THRESHOLD,
        nlist: int | None = None,
        nprobe: int | None = None,
        train_size: int | None = None,
        niter: int = 10,
        seed: int = 0,
        threads: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> VectorIndex:
        """Index ``(n, d)`` item ``vectors`` under ``ids`` (default ``arange(n)``).

        Exact below ``exact_threshold`` items, IVF-Flat at or above it with ``nlist`` lists
        (default :func:`default_nlist`) trained on ``train_size`` sampled rows (default ``64 *
        nlist``, ``niter`` k-means iterations) and ``nprobe`` (default :func:`default_nprobe`).
        ``threads`` sets FAISS's OpenMP threads (process-wide) when given.
        """
        if threads is not None:
            faiss.omp_set_num_threads(int(threads))
        x = _as_matrix(vectors, None, "item vectors")
        n, dim = x.shape
        if measure == "cosine":
            x = _normalise(x)
        item_ids = np.arange(n, dtype=np.int64) if ids is None else cls._check_ids(ids, n)
        if n < exact_threshold or n < 39:
            index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            kind, probe = "exact", 1
        else:
            lists = int(nlist or default_nlist(n))
            quantizer = faiss.IndexFlatIP(dim)
            ivf: Any = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
            ivf.cp.niter = int(niter)
            ivf.cp.seed = int(seed)
            ivf.cp.spherical = measure == "cosine"
            ivf.cp.max_points_per_centroid = 1 << 30  # the sample below is what it trains on
            size = min(n, int(train_size or 64 * lists))
            sample = np.random.default_rng(seed).choice(n, size=size, replace=False) if size < n else slice(None)
            ivf.train(np.ascontiguousarray(x[sample]))
            ivf.set_direct_map_type(cast(Any, faiss).DirectMap.Hashtable)  # O(1) remove_ids / reconstruct
            index = ivf
            kind, probe = "ivf", int(nprobe or default_nprobe(lists))
        out = cls(index, measure, kind, dim, probe, meta)
        out._add_prepared(x, item_ids)
        return out

    @staticmethod
    def _check_ids(ids: np.ndarray, n: int) -> np.ndarray:
        out = np.ascontiguousarray(np.asarray(ids).ravel(), dtype=np.int64)
        if len(out) != n:
            raise ModelError(f"{len(out)} ids for {n} vectors")
        if len(out) and (out.min() < 0 or out.max() >= MAX_ID):
            raise ModelError(f"item ids must be dense item indices in [0, {MAX_ID})")
        if len(np.unique(out)) != len(out):
            raise ModelError("item ids must be unique")
        return out

    # ------------------------------------------------------------------ bookkeeping
    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def nlist(self) -> int:
        return int(self.index.nlist) if self.kind == "ivf" else 1

    def __contains__(self, item_id: object) -> bool:
        i = int(item_id)  # type: ignore[call-overload]
        return 0 <= i < len(self._live) and bool(self._live[i])

    def _mark(self, ids: np.ndarray, value: bool) -> None:
        if len(ids) and ids.max() >= len(self._live):
            grown = np.zeros(max(int(ids.max()) + 1, 2 * len(self._live)), dtype=bool)
            grown[: len(self._live)] = self._live
            self._live = grown
        self._live[ids] = value

    def ids(self) -> np.ndarray:
        """``(len,)`` int64 ids present, sorted."""
        return np.flatnonzero(self._live).astype(np.int64)

    def _stored_ids(self) -> np.ndarray:
        if self.kind == "exact":
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        return self._ivf_contents(with_vectors=False)[0]

    def _ivf_contents(self, with_vectors: bool) -> tuple[np.ndarray, np.ndarray]:
        """Ids and (optionally) stored vectors of every inverted list, read in place."""
        invlists = self.index.invlists
        ids, rows = [], []
        for list_no in range(self.index.nlist):
            size = invlists.list_size(list_no)
            if not size:
                continue
            ids.append(faiss.rev_swig_ptr(invlists.get_ids(list_no), size).copy())
            if with_vectors:
                codes = invlists.get_codes(list_no)
                rows.append(faiss.rev_swig_ptr(codes, size * self.index.code_size).copy().view(np.float32))
                invlists.release_codes(list_no, codes)
        all_ids = np.concatenate(ids).astype(np.int64) if ids else np.zeros(0, dtype=np.int64)
        vectors = np.concatenate(rows).reshape(-1, self.dim) if rows else np.zeros((0, self.dim), dtype=np.float32)
        return all_ids, vectors

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(ids (n,) int64, vectors (n, d) float32)`` as stored (normalised for cosine)."""
        if self.kind == "exact":
            ids = faiss.vector_to_array(self.index.id_map).astype(np.int64)
            flat = faiss.downcast_index(self.index.index)
            return ids, flat.reconstruct_n(0, flat.ntotal) if flat.ntotal else np.zeros((0, self.dim), np.float32)
        return self._ivf_contents(with_vectors=True)

    # ------------------------------------------------------------------ updates (caller holds a lock)
    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add ``(m, d)`` vectors under ``ids``; an id already present gets the new vector. No rebuild."""
        x = _as_matrix(vectors, self.dim, "item vectors")
        if self.measure == "cosine":
            x = _normalise(x)
        self._add_prepared(x, self._check_ids(ids, len(x)))

    def _add_prepared(self, x: np.ndarray, ids: np.ndarray) -> None:
        present = ids[ids < len(self._live)]
        present = present[self._live[present]]
        if len(present):
            self.remove(present)
        if len(ids):
            self.index.add_with_ids(x, ids)
            self._mark(ids, True)

    def remove(self, ids: np.ndarray | Sequence[int]) -> int:
        """Remove ``ids`` (absent ones ignored); returns how many were removed. No rebuild."""
        wanted = np.unique(np.asarray(ids, dtype=np.int64).ravel())
        wanted = wanted[(wanted >= 0) & (wanted < len(self._live))]
        wanted = wanted[self._live[wanted]]
        if not len(wanted):
            return 0
        # an IDSelectorArray: the only selector IVF's hashtable direct map accepts for removal
        removed = int(self.index.remove_ids(faiss.IDSelectorArray(len(wanted), faiss.swig_ptr(wanted))))
        self._mark(wanted, False)
        return removed

    # ------------------------------------------------------------------ search (thread-safe)
    def _params(self, selector: Any | None = None) -> Any:
        if self.kind == "ivf":
            params = cast(Any, faiss).SearchParametersIVF(nprobe=self.nprobe)
            if selector is not None:
                params.sel = selector
            return params
        return cast(Any, faiss).SearchParameters(sel=selector) if selector is not None else None

    def _raw_search(self, q: np.ndarray, k: int, selector: Any | None = None) -> tuple[np.ndarray, np.ndarray]:
        params = self._params(selector)
        scores, ids = self.index.search(q, k) if params is None else self.index.search(q, k, params=params)
        scores = scores.astype(np.float32, copy=False)
        scores[ids < 0] = -np.inf
        return ids.astype(np.int64, copy=False), scores

    def search(self, queries: np.ndarray, k: int, exclude: ExcludeLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` ids per query, best first: ``(ids int64 (b, k), scores float32 (b, k))``.

        ``queries``: ``(b, d)`` user vectors (normalised here for cosine). ``exclude``: per query
        the item ids never to return (e.g. the user's seen items): a length-``b`` sequence of id
        arrays or a ``(b, n_items)`` CSR. Empty slots hold id ``-1`` and score ``-inf``.
        """
        q = _as_matrix(queries, self.dim, "queries")
        if self.measure == "cosine":
            q = _normalise(q)
        b, k = len(q), int(k)
        if k < 1:
            raise ModelError(f"k must be >= 1, got {k}")
        excl = _exclusion_lists(exclude, b)
        lengths = np.array([len(e) for e in excl], dtype=np.int64)
        out_ids = np.full((b, k), -1, dtype=np.int64)
        out_scores = np.full((b, k), -np.inf, dtype=np.float32)
        if b == 0:
            return out_ids, out_scores
        batched = np.flatnonzero(lengths <= OVERFETCH_LIMIT)
        if len(batched):
            extra = int(lengths[batched].max(initial=0))
            ids, scores = self._raw_search(q[batched], k + extra)
            if extra:
                ids, scores = _drop_excluded(ids, scores, [excl[i] for i in batched], k)
            out_ids[batched], out_scores[batched] = ids[:, :k], scores[:, :k]
        for i in np.flatnonzero(lengths > OVERFETCH_LIMIT):
            selector = faiss.IDSelectorNot(faiss.IDSelectorBatch(excl[i]))
            out_ids[i], out_scores[i] = (a[0] for a in self._raw_search(q[i : i + 1], k, selector))
        return out_ids, out_scores

    def exact_search(self, queries: np.ndarray, k: int, exclude: ExcludeLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Brute-force top-k over the same live items (a flat copy; what :meth:`search` approximates)."""
        if self.kind == "exact":
            return self.search(queries, k, exclude)
        ids, vectors = self.vectors()
        flat = VectorIndex(faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim)), "inner_product", "exact", self.dim)
        flat._add_prepared(vectors, ids)
        q = _as_matrix(queries, self.dim, "queries")
        return flat.search(_normalise(q) if self.measure == "cosine" else q, k, exclude)

    def recall_against_exact(self, queries: np.ndarray, k: int = 20, exclude: ExcludeLike | None = None) -> float:
        """Mean over queries of ``|top-k of this index ∩ exact top-k| / |exact top-k|`` (1.0 for exact)."""
        got, _ = self.search(queries, k, exclude)
        truth, _ = self.exact_search(queries, k, exclude)
        return recall_of(got, truth)

    def calibrate(self, queries: np.ndarray, k: int = 20, target: float = 0.95, max_nprobe: int | None = None) -> float:
        """Double ``nprobe`` (IVF) until recall@k on ``queries`` reaches ``target``; returns the recall."""
        truth, _ = self.exact_search(queries, k)
        limit = int(max_nprobe or self.nlist)
        while True:
            recall = recall_of(self.search(queries, k)[0], truth)
            if recall >= target or self.kind == "exact" or self.nprobe >= limit:
                return recall
            self.nprobe = min(limit, 2 * self.nprobe)

    # ------------------------------------------------------------------ persistence
    def header(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "measure": self.measure, "kind": self.kind, "dim": self.dim,
                "n": len(self), "nlist": self.nlist, "nprobe": self.nprobe, "meta": self.meta}

    def save(self, directory: str | Path) -> Path:
        """Write ``index.faiss`` then ``index.json`` (last: a header means a complete index)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self.index, str(out / INDEX_FILE))
        tmp = out / f".{HEADER_FILE}.tmp"
        tmp.write_text(json.dumps(self.header(), indent=2))
        tmp.replace(out / HEADER_FILE)
        return out

    @classmethod
    def load(cls, directory: str | Path) -> VectorIndex:
        root = Path(directory)
        path = root / HEADER_FILE
        if not path.exists():
            raise ModelError(f"{root} holds no vector index (no {HEADER_FILE})")
        try:
            meta = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"{path}: not valid JSON ({exc})") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise ModelError(f"{path}: unsupported format version {meta.get('format_version')} (this fusionrec reads {FORMAT_VERSION})")
        index = faiss.read_index(str(root / INDEX_FILE))
        if index.d != meta["dim"] or index.ntotal != meta["n"]:
            raise ModelError(f"{root}: {INDEX_FILE} has {index.ntotal} x {index.d}, the header says {meta['n']} x {meta['dim']}")
        return cls(index, meta["measure"], meta["kind"], meta["dim"], meta["nprobe"], meta.get("meta"))


def recall_of(got: np.ndarray, truth: np.ndarray) -> float:
    """Mean per-row share of ``truth``'s valid ids (``>= 0``) found in ``got`` (rows without any skipped)."""
    values = []
    for g, t in zip(got, truth, strict=True):
        t = t[t >= 0]
        if len(t):
            values.append(len(np.intersect1d(g, t)) / len(t))
    return float(np.mean(values)) if values else 1.0


def _exclusion_lists(exclude: ExcludeLike | None, b: int) -> list[np.ndarray]:
    if exclude is None:
        return [np.zeros(0, dtype=np.int64)] * b
    if hasattr(exclude, "indptr"):
        csr = exclude.tocsr()
        if csr.shape[0] != b:
            raise ModelError(f"exclude has {csr.shape[0]} rows for {b} queries")
        return [csr.indices[csr.indptr[i] : csr.indptr[i + 1]].astype(np.int64) for i in range(b)]
    lists = [np.asarray(e, dtype=np.int64).ravel() for e in exclude]
    if len(lists) != b:
        raise ModelError(f"exclude has {len(lists)} lists for {b} queries")
    return lists


def _drop_excluded(ids: np.ndarray, scores: np.ndarray, excl: list[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove excluded ids from over-fetched rows, keep the first ``k`` others in order (vectorised)."""
    rows = np.arange(len(ids), dtype=np.int64)
    base = int(max(ids.max(initial=0), max((int(e.max()) for e in excl if len(e)), default=0))) + 1
    banned = np.concatenate([r * base + e for r, e in zip(rows, excl, strict=True)]) if excl else np.zeros(0, np.int64)
    drop = np.isin(rows[:, None] * base + ids, banned) & (ids >= 0)
    order = np.argsort(drop, axis=1, kind="stable")[:, :k]
    kept_ids = np.take_along_axis(ids, order, axis=1)
    kept_scores = np.take_along_axis(scores, order, axis=1)
    gone = np.take_along_axis(drop, order, axis=1)
    kept_ids[gone], kept_scores[gone] = -1, -np.inf
    return kept_ids, kept_scores
