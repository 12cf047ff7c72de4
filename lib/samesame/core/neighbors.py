"""Exact k-nearest neighbours and the threshold rule that turns them into match sets.

Every signal (phash bits, CNN embeddings, TF-IDF titles) goes through the same
shape: ``(dist, idx)`` arrays of shape (n, k), sorted so smaller distance = closer,
with the listing itself in column 0. Thresholds then cut each row, so a threshold
sweep costs one kNN search, not one search per threshold.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Iterable, Sequence

import faiss
import numpy as np
import pandas as pd
import scipy.sparse as sp

from samesame.core.metrics import scores_from_counts
from samesame.core.splits import label_codes

MAX_MATCHES = 50  # Kaggle's cap on the number of predicted matches per listing
METRICS = ("cosine", "euclidean", "hamming")


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), as float32."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def knn(emb, k: int = MAX_MATCHES, metric: str = "cosine", chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN of every row against all rows: ``(dist, idx)``, self in column 0.

    ``metric``: "cosine" (distance 1 - cos), "euclidean", or "hamming" for packed
    uint8 bit codes (see :func:`samesame.image.phash.phash_codes`). A scipy sparse matrix
    (TF-IDF) is searched by cosine in row chunks, so the n x n similarity matrix
    is never held at once.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose one of {METRICS}")
    n = emb.shape[0]
    if n == 0:
        raise ValueError("kNN over zero rows")
    k = min(k, n)
    if sp.issparse(emb):
        if metric != "cosine":
            raise ValueError("sparse input supports the cosine metric only")
        dist, idx = _knn_sparse_cosine(emb, k, chunk)
    elif metric == "hamming":
        codes = np.ascontiguousarray(emb, dtype=np.uint8)
        index = faiss.IndexBinaryFlat(codes.shape[1] * 8)
        index.add(codes)
        dist, idx = index.search(codes, k)
        dist = dist.astype(np.float32)
    elif metric == "cosine":
        x = l2_normalize(emb)
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        sim, idx = index.search(x, k)
        dist = 1.0 - sim
    else:
        x = np.ascontiguousarray(emb, dtype=np.float32)
        index = faiss.IndexFlatL2(x.shape[1])
        index.add(x)
        sq, idx = index.search(x, k)
        dist = np.sqrt(np.maximum(sq, 0.0))
    return _self_first(dist.astype(np.float32), idx.astype(np.int64))


def _knn_sparse_cosine(x: sp.spmatrix, k: int, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k cosine neighbours of L2-normalised sparse rows, one row block at a time.

    Each block's similarities are scattered into one reused dense buffer (no fresh
    allocation per block) and reduced to the top k by faiss' C++ heap, which skips
    most values after one comparison (numpy's argpartition over the whole row was
    ~100x slower and dominated the search at 70,000 listings).
    """
    x = sp.csr_matrix(x, dtype=np.float32)
    xt = x.T.tocsr()
    n = x.shape[0]
    workers = _search_threads()
    block = max(1, min(chunk, (1 << 25) // max(n, 1)))       # per worker a buffer of at most 32M floats (128 MB)
    sim = np.empty((n, k), dtype=np.float32)
    idx = np.empty((n, k), dtype=np.int64)
    starts = list(range(0, n, block))

    def run(worker: int) -> None:       # scipy's sparse kernels and faiss release the GIL: threads share the cores
        buf = np.empty((min(block, n), n), dtype=np.float32)
        for start in starts[worker::workers]:
            stop = min(start + block, n)
            out = buf[: stop - start]
            out.fill(0.0)
            (x[start:stop] @ xt).toarray(out=out)
            _top_k_max(out, sim[start:stop], idx[start:stop])

    if workers == 1:
        run(0)
    else:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, range(workers)))
    return 1.0 - sim, idx


def _search_threads() -> int:
    """Threads for the sparse search: the usable cores, capped by OMP_NUM_THREADS when it is set."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, min(cores, int(limit) if limit.isdigit() and int(limit) > 0 else cores))


def _top_k_max(values: np.ndarray, top: np.ndarray, ids: np.ndarray) -> None:
    """Per row of a C-contiguous float32 matrix: the k largest values (descending) and their columns."""
    heap = faiss.float_minheap_array_t()
    heap.nh, heap.k = values.shape[0], top.shape[1]
    heap.val, heap.ids = faiss.swig_ptr(top), faiss.swig_ptr(ids)
    heap.heapify()
    heap.addn(values.shape[1], faiss.swig_ptr(values), 0, 0, -1)
    heap.reorder()


def _self_first(dist: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Put each row's own listing in column 0 at distance 0.

    Exact duplicates can outrank the listing itself (ties), and with k < n it may
    even fall off the list; the metric needs it present, so it is forced in.
    """
    rows = np.arange(len(idx))
    bad = np.flatnonzero(idx[:, 0] != rows)
    for r in bad:
        others = idx[r] != r
        keep_idx, keep_dist = idx[r][others], dist[r][others]
        idx[r] = np.concatenate(([r], keep_idx))[: idx.shape[1]]
        dist[r] = np.concatenate(([0.0], keep_dist))[: idx.shape[1]]
    dist[:, 0] = 0.0
    return dist, idx


def within_threshold(dist: np.ndarray, idx: np.ndarray, threshold: float,
                     max_matches: int = MAX_MATCHES) -> np.ndarray:
    """Boolean (n, k) mask of the neighbours kept by ``dist <= threshold`` (self always, cap applied)."""
    keep = (dist <= threshold) & (idx >= 0)
    keep[:, 0] = True
    keep[:, max_matches:] = False
    return keep


def matches_from_knn(dist: np.ndarray, idx: np.ndarray, threshold: float,
                     max_matches: int = MAX_MATCHES) -> list[np.ndarray]:
    """Match sets (row positions, self first) of every listing at one distance threshold."""
    keep = within_threshold(dist, idx, threshold, max_matches)
    return [row[k] for row, k in zip(idx, keep)]


def sweep_thresholds(dist: np.ndarray, idx: np.ndarray, labels: Sequence,
                     thresholds: Iterable[float], max_matches: int = MAX_MATCHES) -> pd.DataFrame:
    """Mean precision/recall/F1 at each threshold, from one kNN result (labels = label_group per row)."""
    labels = np.asarray(labels)
    codes, counts = label_codes(labels)
    same = (codes[np.maximum(idx, 0)] == codes[:, None]) & (idx >= 0)
    rows = []
    for t in thresholds:
        keep = within_threshold(dist, idx, t, max_matches)
        s = scores_from_counts(keep.sum(1), counts[codes], (keep & same).sum(1))
        rows.append({"threshold": float(t), **s.as_dict()})
    return pd.DataFrame(rows)


def best_threshold(sweep: pd.DataFrame) -> float:
    """The threshold with the highest mean F1 (the smallest one on ties)."""
    return float(sweep.loc[sweep["mean_f1"].idxmax(), "threshold"])


@dataclass
class TunedThreshold:
    """A threshold chosen on the train split and the curves on both splits (test never chooses)."""

    threshold: float
    train: pd.DataFrame
    test: pd.DataFrame

    def at_threshold(self, split: str) -> pd.Series:
        sweep = self.train if split == "train" else self.test
        return sweep.loc[(sweep["threshold"] - self.threshold).abs().idxmin()]

    def summary(self) -> dict:
        """The metrics.json object: threshold, train/test mean F1 (and precision, recall)."""
        out = {"threshold": self.threshold}
        for split in ("train", "test"):
            row = self.at_threshold(split)
            out.update({f"{split}_mean_f1": row["mean_f1"], f"{split}_mean_precision": row["mean_precision"],
                        f"{split}_mean_recall": row["mean_recall"]})
        return out


def tune_threshold(train_knn: tuple[np.ndarray, np.ndarray], train_labels: Sequence,
                   test_knn: tuple[np.ndarray, np.ndarray], test_labels: Sequence,
                   thresholds: Iterable[float]) -> TunedThreshold:
    """Sweep both splits, pick the best train threshold, report test at that threshold."""
    thresholds = list(thresholds)
    train = sweep_thresholds(*train_knn, train_labels, thresholds)
    test = sweep_thresholds(*test_knn, test_labels, thresholds)
    return TunedThreshold(best_threshold(train), train, test)


def exclude_rows(dist: np.ndarray, idx: np.ndarray, usable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Make listings without a usable signal (e.g. no image) nobody's neighbour, and match only themselves.

    Their distances become +inf, so no threshold keeps them; the rows stay, so no
    listing is dropped and other signals can still match them.
    """
    usable = np.asarray(usable, dtype=bool)
    dist = dist.copy()
    dist[~usable[np.maximum(idx, 0)] | (idx < 0)] = np.inf
    dist[~usable, 1:] = np.inf
    dist[:, 0] = 0.0
    return dist, idx


def threshold_grid(dist: np.ndarray, n: int = 60) -> np.ndarray:
    """Candidate thresholds spanning the observed neighbour distances (any metric, any scale)."""
    finite = dist[:, 1:][np.isfinite(dist[:, 1:])]
    if finite.size == 0:
        return np.array([0.0])
    return np.unique(np.quantile(finite, np.linspace(0, 0.5, n)).round(4))
