"""Signals of a pool of listings and their candidate pairs: what every fusion rule works on.

:func:`compute_signals` builds each signal of a pool (TF-IDF fitted on the pool itself, the
learned title embedding, phash codes, optional image vectors); :func:`candidate_pairs` takes the
union of each searched signal's k nearest neighbours and scores every pair with every signal.
Similarities are "larger = closer": cosine for embeddings, ``1 - bits/32`` for phash.
:func:`blend_signals` is neighbourhood blending (a recipe's optional first pass).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from samesame.core.neighbors import MAX_MATCHES, knn, l2_normalize
from samesame.image.phash import phash_codes, phash_similarity
from samesame.match.pairs import pair_dot
from samesame.text.title_model import TitleEncoder
from samesame.text.titles import TfidfConfig, normalize_titles, quantities, tfidf_embeddings, unit_conflict

SIGNALS = ("tfidf", "title", "image", "phash")
"""The signals a recipe may weigh or union."""
EMBEDDINGS = ("tfidf", "title", "image")  # blended, cosine signals


@dataclass
class Signals:
    """Every signal of one pool of listings (rows aligned with the DataFrame)."""

    emb: dict[str, object]           # name -> unit-length sparse (tfidf) or dense float32 (title, image)
    phash: np.ndarray                # packed uint8 (n, 8)
    image_ok: np.ndarray             # bool (n,): rows whose image embedding may be used
    quantities: list[dict]
    titles: list[str] = field(default_factory=list)   # normalised titles (pair classifier features)
    knn_cache: dict = field(default_factory=dict, repr=False)   # (signal, k) -> (rows searched, kNN indices);
    # ("pairs", k, searched signals) -> Candidates: the tuning scores several recipes on one pool (never blended)
    scored: np.ndarray | None = None   # bool (n,): the listings whose F1 counts; the rest pad the pool (None: all)

    @property
    def n(self) -> int:
        return len(self.phash)


def compute_signals(df: pd.DataFrame, encoder: TitleEncoder | None, tfidf_config: TfidfConfig,
                    image_embeddings=None) -> Signals:
    """TF-IDF (fit on this pool), learned title embedding, phash codes, optional image vectors.

    ``image_embeddings`` is ``None`` or ``(vectors float32 (n, d), ok bool (n,))``;
    rows with ``ok`` False get no image neighbours and are matched by the other signals.
    """
    n = len(df)
    titles = normalize_titles(df["title"].tolist())
    emb: dict[str, object] = {}
    if any(titles):         # image-only data (every title empty) has no title signal, not an error
        emb["tfidf"] = tfidf_embeddings(df["title"].tolist(), tfidf_config)
        if encoder is not None:
            emb["title"] = encoder.embed(df["title"].tolist())
    image_ok = np.zeros(n, dtype=bool)
    if image_embeddings is not None:
        vectors, ok = image_embeddings
        vectors, ok = np.asarray(vectors, dtype=np.float32), np.asarray(ok, dtype=bool)
        if vectors.ndim != 2 or len(vectors) != n or ok.shape != (n,):
            raise ValueError(f"image_embeddings must be (vectors (n, d), ok (n,)) for n={n} listings; "
                             f"got {vectors.shape} and {ok.shape}: pass one row per listing, ok=False where no image")
        image_ok = ok & np.isfinite(vectors).all(1) & (np.abs(vectors).sum(1) > 0)
        emb["image"] = np.where(image_ok[:, None], l2_normalize(vectors), 0.0).astype(np.float32)
    return Signals(emb, phash_codes(df["image_phash"].tolist()), image_ok, [quantities(t) for t in titles], titles)


def dropped_signals(df: pd.DataFrame, image_embeddings=None) -> dict[str, str]:
    """The signals these listings cannot give, each with the reason: fusion runs on the rest (a photo-only set
    has no title signals, a csv without images no image signal), and 06 / metrics.json say what was dropped."""
    n, dropped = len(df), {}
    if not any(normalize_titles(df["title"].tolist())):
        dropped["tfidf"] = dropped["title"] = f"every one of the {n:,} titles is empty"
    usable = 0 if image_embeddings is None else int(np.asarray(image_embeddings[1], dtype=bool).sum())
    if image_embeddings is None:
        dropped["image"] = "no image vectors (image.in_fusion is false)"
    elif usable < 2:
        dropped["image"] = f"{usable} of {n:,} listings have a usable image: too few to search"
    return dropped


@dataclass
class Candidates:
    """Directed candidate pairs (row -> col, no self pairs, both directions present) with per-signal similarity."""

    rows: np.ndarray
    cols: np.ndarray
    sims: dict[str, np.ndarray]      # NaN where a signal has no value (image missing on either side)
    conflict: np.ndarray             # bool: both titles state different amounts of a shared unit
    n: int
    scored: np.ndarray | None = None  # bool (n,): listings whose F1 counts (None: all); see Signals.scored


def candidate_pairs(signals: Signals, k: int = MAX_MATCHES, progress: bool = False,
                    search: Sequence[str] | None = None) -> Candidates:
    """Union of the k nearest neighbours of each signal in ``search`` (default: all), made
    symmetric, scored by every signal (a signal that is not searched still scores the pairs)."""
    n = signals.n
    pairs = []
    searched = [(name, emb) for name, emb in list(signals.emb.items()) + [("phash", signals.phash)]
                if search is None or name in search]
    key = ("pairs", k, tuple(name for name, _ in searched))
    if key in signals.knn_cache:
        return signals.knn_cache[key]
    for name, emb in tqdm(searched, desc="knn", disable=not progress):
        rows_sub = np.flatnonzero(signals.image_ok) if name == "image" else np.arange(n)
        if len(rows_sub) < 2:
            continue
        if (name, k) in signals.knn_cache:
            rows_sub, idx = signals.knn_cache[(name, k)]
        else:
            x = emb[rows_sub] if name == "image" else emb
            _, idx = knn(x, k, metric="hamming" if name == "phash" else "cosine")
            if name == "phash":             # never blended: the blend pass searches the same codes again
                signals.knn_cache[(name, k)] = (rows_sub, idx)
        r = np.repeat(rows_sub, idx.shape[1])
        c = rows_sub[np.maximum(idx, 0)].ravel()
        ok = (idx.ravel() >= 0) & (r != c)
        pairs.append(r[ok] * n + c[ok])
        pairs.append(c[ok] * n + r[ok])
    keys = np.sort(np.concatenate(pairs)) if pairs else np.zeros(0, np.int64)
    keys = keys[np.r_[True, keys[1:] != keys[:-1]]] if len(keys) else keys     # unique (faster than np.unique here)
    rows, cols = keys // n, keys % n
    sims = embedding_sims(signals, rows, cols)
    bits = np.unpackbits(signals.phash[rows] ^ signals.phash[cols], axis=1).sum(1)
    sims["phash"] = phash_similarity(bits).astype(np.float32)
    conflict = _pair_conflicts(signals.quantities, rows, cols)
    signals.knn_cache[key] = Candidates(rows, cols, sims, conflict, n, signals.scored)
    return signals.knn_cache[key]


def embedding_sims(signals: Signals, rows: np.ndarray, cols: np.ndarray) -> dict[str, np.ndarray]:
    """Cosine of every embedding signal per pair; NaN image similarity where either image is missing."""
    sims = {name: pair_dot(emb, rows, cols) for name, emb in signals.emb.items()}
    if "image" in sims:
        sims["image"][~(signals.image_ok[rows] & signals.image_ok[cols])] = np.nan
    return sims


def _pair_conflicts(qty: list[dict], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    has = np.array([bool(q) for q in qty], dtype=bool)
    both = np.flatnonzero(has[rows] & has[cols])
    conflict = np.zeros(len(rows), dtype=bool)
    conflict[both] = [unit_conflict(qty[r], qty[c]) for r, c in zip(rows[both], cols[both])]
    return conflict



# ---------------------------------------------------------------- blending


def blend_signals(signals: Signals, cands: Candidates, score: np.ndarray, threshold: float,
                  top: int = 8) -> Signals:
    """Neighbourhood blending: each embedding becomes the score-weighted mean of itself and its
    ``top`` best neighbours with fused score >= ``threshold``, re-normalised.

    Close neighbours agree on the product, so averaging them cancels seller-specific
    noise (a title's extra promo words, a photo's background) before searching again.
    """
    sel = score >= threshold
    r, c, s = cands.rows[sel], cands.cols[sel], score[sel]
    order = np.lexsort((-s, r))
    r, c, s = r[order], c[order], s[order]
    rank = np.arange(len(r)) - np.searchsorted(r, r)
    r, c, s = r[rank < top], c[rank < top], s[rank < top]
    n = signals.n
    w = sp.csr_matrix((np.r_[s, np.ones(n)], (np.r_[r, np.arange(n)], np.r_[c, np.arange(n)])), shape=(n, n))
    emb = {}
    for name, x in signals.emb.items():
        if name == "image":     # blend images only among listings that have one
            ok = signals.image_ok.astype(np.float32)
            x = l2_normalize((w @ sp.diags(ok)) @ x) * ok[:, None]
        elif sp.issparse(x):
            x = sp.csr_matrix(w @ x)
            x = sp.diags(1.0 / np.maximum(np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel()), 1e-12)) @ x
            x = sp.csr_matrix(x, dtype=np.float32)
        else:
            x = l2_normalize(w @ x)
        emb[name] = x
    return Signals(emb, signals.phash, signals.image_ok, signals.quantities, signals.titles,
                   {key: v for key, v in signals.knn_cache.items() if key[0] == "phash"}, signals.scored)
