"""Signals of a pool of listings and their candidate pairs: what every fusion rule works on.

:func:`compute_signals` builds each signal of a pool (TF-IDF fitted on the pool itself, the
learned title embedding, phash codes, optional image vectors); :func:`candidate_pairs` takes the
union of each searched signal's k nearest neighbours and scores every pair with every signal. A row whose value
of a signal is unusable (no image, no phash, a phash or title shared by a crowd: :func:`shared_limit`) gets no
neighbours from it and a NaN similarity, so the fusion decides on its other signals.
Similarities are "larger = closer": cosine for embeddings, ``1 - bits/32`` for phash.
:func:`blend_signals` is neighbourhood blending (a recipe's optional first pass).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from samesame.core.neighbors import MAX_MATCHES, knn, l2_normalize
from samesame.image.phash import phash_column, phash_similarity
from samesame.match.pairs import pair_dot, rank_in_row, reverse_index
from samesame.text.title_model import TitleEncoder
from samesame.text.titles import TfidfConfig, normalize_titles, quantities, tfidf_embeddings, unit_conflict

SIGNALS = ("tfidf", "title", "image", "phash")
"""The signals a recipe may weigh or union."""
EMBEDDINGS = ("tfidf", "title", "image")  # blended, cosine signals
MAX_SHARED = 3 * MAX_MATCHES
"""A phash, title or TF-IDF vector shared by more listings than this says nothing about the product: Shopee's
label groups hold 2 to 51 listings (a submission names at most 50), so it is a placeholder or a collision, and
matching on it would join every listing that carries it (a placeholder phash took the sample's F1 from 0.80 to
0.45). A fact of the data, like the metric's 50-match cap it follows, so not a setting."""
POOL_SHARE = 0.5
"""In a small pool, a value held by more than this share of it and by more listings than train's largest label group
is no product either: 19 identical titles, or one phash, across the tiny test's 19 listings joined them all."""


def shared_limit(n: int, largest_group: int | None) -> int:
    """The most listings of a pool of ``n`` that may share a value of a signal and still be linked by it:
    :data:`MAX_SHARED`, or in a small pool, when train's largest label group is known, the larger of that group
    and :data:`POOL_SHARE` of the pool (a pool of one product's listings still matches)."""
    if largest_group is None:
        return MAX_SHARED
    return min(MAX_SHARED, max(largest_group, int(POOL_SHARE * n)))


@dataclass
class Signals:
    """Every signal of one pool of listings (rows aligned with the DataFrame)."""

    emb: dict[str, object]           # name -> unit-length sparse (tfidf) or dense float32 (title, image)
    phash: np.ndarray                # packed uint8 (n, 8)
    usable: dict[str, np.ndarray]    # signal -> bool (n,): rows whose value may be used (absent signal: every row)
    quantities: list[dict]
    titles: list[str] = field(default_factory=list)   # normalised titles (pair classifier features)
    knn_cache: dict = field(default_factory=dict, repr=False)   # (signal, k) -> (rows searched, kNN indices);
    # ("pairs", k, searched signals) -> Candidates: the tuning scores several recipes on one pool (never blended)
    scored: np.ndarray | None = None   # bool (n,): the listings whose F1 counts; the rest pad the pool (None: all)

    @property
    def n(self) -> int:
        return len(self.phash)


def compute_signals(df: pd.DataFrame, encoder: TitleEncoder | None, tfidf_config: TfidfConfig,
                    image_embeddings=None, largest_group: int | None = None) -> Signals:
    """TF-IDF (fit on this pool), learned title embedding, phash codes, optional image vectors.

    ``image_embeddings`` is ``None`` or ``(vectors float32 (n, d), ok bool (n,))``;
    rows with ``ok`` False get no image neighbours and are matched by the other signals. So are rows without a
    phash or a usable image vector, and rows whose phash or title (TF-IDF vector) more than :func:`shared_limit`
    rows share (``largest_group``: train's largest label group, None where unknown), each with a warning.
    A missing title (NaN, None: a frame not read by read_listings) is an empty one, with a warning.
    """
    n, limit = len(df), shared_limit(len(df), largest_group)
    raw = _pool_titles(df["title"])
    titles = normalize_titles(raw)
    emb: dict[str, object] = {}
    usable: dict[str, np.ndarray] = {}
    if any(titles):         # image-only data (every title empty) has no title signal, not an error
        emb["tfidf"] = tfidf_embeddings(raw, tfidf_config)
        if encoder is not None:
            emb["title"] = encoder.embed(raw)
        usable["tfidf"] = usable["title"] = ok = _uncrowded(_row_keys(emb["tfidf"]), "title (or its TF-IDF vector)",
                                                           raw, limit, largest_group)
        if not ok.all():    # zero rows: a crowd's title never flows into its neighbours' blend either
            emb = {name: sp.csr_matrix(sp.diags(ok.astype(np.float32)) @ x) if sp.issparse(x) else x * ok[:, None]
                   for name, x in emb.items()}
    if image_embeddings is not None:
        usable["image"], emb["image"] = _image_signal(*image_pair(image_embeddings, n))
    phash, present = phash_column(df["image_phash"].tolist())
    if not present.all():
        warnings.warn(f"{int((~present).sum()):,} of {n:,} listings have no image_phash: they are matched without "
                      "it (read test.csv with samesame.data.listings.read_listings to have it checked)", stacklevel=2)
    hexes = [code.tobytes().hex() for code in phash]
    usable["phash"] = present & _uncrowded(pd.Series([h if p else None for h, p in zip(hexes, present)], dtype=object),
                                          "image_phash", hexes, limit, largest_group)
    return Signals(emb, phash, usable, [quantities(t) for t in titles], titles)


def _pool_titles(titles: pd.Series) -> list:
    """The titles, a missing one (NaN, None) made empty with a warning naming how many and the first row: str()
    would make it the word "nan", and every such listing would match the others."""
    missing = titles.isna().to_numpy()
    if missing.any():
        warnings.warn(f"{int(missing.sum()):,} of {len(titles):,} titles are missing (NaN or None; the first at row "
                      f"{int(np.argmax(missing))}): they are matched as empty titles, by their other signals; read "
                      "the csv with samesame.data.listings.read_listings, which keeps an empty title empty",
                      stacklevel=3)
    return ["" if gone else title for title, gone in zip(titles.tolist(), missing)]


def _image_signal(vectors: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which rows' image vectors are usable, and the unit vectors (zero elsewhere). A row said to have an image
    whose vector is NaN, infinite or all zero is matched without it, with a warning naming how many."""
    sound = np.isfinite(vectors).all(1) & (np.abs(vectors).sum(1) > 0)
    broken = ok & ~sound
    if broken.any():
        warnings.warn(f"{int(broken.sum()):,} of {int(ok.sum()):,} listings with an image have NaN, infinite or "
                      f"all-zero image vectors (the first at row {int(np.argmax(broken))}): they are matched "
                      "without the image signal; embed them again (samesame.run.matcher.embed_for_matcher), with "
                      "the embedding cache cleared if it holds them", stacklevel=3)
    usable = ok & sound
    return usable, l2_normalize(np.where(usable[:, None], vectors, 0.0))


def image_pair(image_embeddings, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``(vectors (n, d), ok (n,))`` checked: anything else is refused with what was passed and the fix."""
    fix = (f"pass (vectors (n, d), ok (n,)) for the n={n} listings, one row per listing and ok=False where no "
           "image, as samesame.run.matcher.embed_for_matcher returns")
    if not isinstance(image_embeddings, (tuple, list)) or len(image_embeddings) != 2:
        raise ValueError(f"image_embeddings is {type(image_embeddings).__name__} of shape "
                         f"{np.shape(image_embeddings)}: {fix}")
    vectors, ok = np.asarray(image_embeddings[0], dtype=np.float32), np.asarray(image_embeddings[1], dtype=bool)
    if vectors.ndim != 2 or len(vectors) != n or ok.shape != (n,):
        raise ValueError(f"image_embeddings hold vectors {vectors.shape} and ok {ok.shape}: {fix}")
    return vectors, ok


def _uncrowded(keys: pd.Series, what: str, shown: Sequence[str], limit: int, largest_group: int | None) -> np.ndarray:
    """False for the rows whose key (None: no value) more than ``limit`` rows share (:func:`shared_limit`); a
    warning names each such value (``shown`` of its first row) and how many rows carry it."""
    counts = keys.map(keys.value_counts()).fillna(0).to_numpy()
    crowded = counts > limit
    if crowded.any():
        first = keys[crowded].drop_duplicates().index
        values = ", ".join(f"{str(shown[i])[:60]!r} ({int(counts[i]):,} listings)" for i in first[:3])
        why = (f"over {MAX_SHARED}" if limit == MAX_SHARED else f"over {limit}: train's largest product has "
               f"{largest_group} listings, and the value holds more than {POOL_SHARE:.0%} of this pool of {len(keys)}")
        warnings.warn(f"{what} shared by more listings than any product has ({why}): {values}"
                      f"{' ...' if len(first) > 3 else ''}; a placeholder or a collision, so it links none of them "
                      "(they are matched by their other signals)", stacklevel=3)
    return ~crowded


def _row_keys(x: sp.csr_matrix) -> pd.Series:
    """Each row's sparse vector as bytes (None for an empty row): equal keys <=> equal vectors."""
    x = x.sorted_indices()
    return pd.Series([x.indices[a:b].tobytes() + x.data[a:b].tobytes() if b > a else None
                      for a, b in zip(x.indptr[:-1], x.indptr[1:])], dtype=object)


def dropped_signals(df: pd.DataFrame, image_embeddings=None) -> dict[str, str]:
    """The signals these listings cannot give, each with the reason: fusion runs on the rest (a photo-only set
    has no title signals, a csv without images no image signal), and 06 / metrics.json say what was dropped."""
    n, dropped = len(df), {}
    if not any(normalize_titles(df["title"].tolist())):     # a missing title normalises to an empty one
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
        ok = signals.usable.get(name)
        rows_sub = np.arange(n) if ok is None else np.flatnonzero(ok)
        if len(rows_sub) < 2:
            continue
        if (name, k) in signals.knn_cache:
            rows_sub, idx = signals.knn_cache[(name, k)]
        else:
            x = emb if len(rows_sub) == n else emb[rows_sub]
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
    sims["phash"][_unusable(signals, "phash", rows, cols)] = np.nan
    conflict = _pair_conflicts(signals.quantities, rows, cols)
    signals.knn_cache[key] = Candidates(rows, cols, sims, conflict, n, signals.scored)
    return signals.knn_cache[key]


def embedding_sims(signals: Signals, rows: np.ndarray, cols: np.ndarray) -> dict[str, np.ndarray]:
    """Cosine of every embedding signal per pair; NaN where either listing's value is unusable (no image...)."""
    sims = {name: pair_dot(emb, rows, cols) for name, emb in signals.emb.items()}
    for name, sim in sims.items():
        sim[_unusable(signals, name, rows, cols)] = np.nan
    return sims


def _unusable(signals: Signals, name: str, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The pairs where either listing's value of signal ``name`` may not be used (see ``Signals.usable``)."""
    ok = signals.usable.get(name)
    return np.zeros(len(rows), dtype=bool) if ok is None else ~(ok[rows] & ok[cols])


def _pair_conflicts(qty: list[dict], rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """:func:`unit_conflict` per pair, decided once per distinct pair of stated amounts (far fewer than pairs)."""
    distinct: dict = {}
    ids = np.array([distinct.setdefault(frozenset(q.items()), len(distinct)) for q in qty], dtype=np.int64)
    kinds = [dict(key) for key in distinct]
    has = np.array([bool(q) for q in kinds], dtype=bool)[ids] if len(ids) else np.zeros(0, dtype=bool)
    both = np.flatnonzero(has[rows] & has[cols])
    conflict = np.zeros(len(rows), dtype=bool)
    pairs, which = np.unique(ids[rows[both]] * len(kinds) + ids[cols[both]], return_inverse=True)
    decided = np.array([unit_conflict(kinds[p // len(kinds)], kinds[p % len(kinds)]) for p in pairs], dtype=bool)
    conflict[both] = decided[which.ravel()]
    return conflict



# ---------------------------------------------------------------- blending


def blend_signals(signals: Signals, cands: Candidates, score: np.ndarray, threshold: float,
                  top: int = 8, mutual: bool = False) -> Signals:
    """Neighbourhood blending: each embedding becomes the score-weighted mean of itself and its
    ``top`` best neighbours with fused score >= ``threshold``, re-normalised; ``mutual``: only the neighbours
    whose own ``top`` hold this listing too.

    Close neighbours agree on the product, so averaging them cancels seller-specific
    noise (a title's extra promo words, a photo's background) before searching again.
    """
    n = signals.n
    sel = (score >= threshold) & (rank_in_row(cands.rows, score) < top)
    if mutual:
        sel &= sel[reverse_index(cands.rows, cands.cols, n)]
    r, c, s = cands.rows[sel], cands.cols[sel], score[sel]
    w = sp.csr_matrix((np.r_[s, np.ones(n)], (np.r_[r, np.arange(n)], np.r_[c, np.arange(n)])), shape=(n, n))
    emb = {}
    for name, x in signals.emb.items():
        if name == "image":     # blend images only among listings that have one
            ok = signals.usable["image"].astype(np.float32)
            x = l2_normalize((w @ sp.diags(ok)) @ x) * ok[:, None]
        elif sp.issparse(x):
            x = sp.csr_matrix(w @ x)
            x = sp.diags(1.0 / np.maximum(np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel()), 1e-12)) @ x
            x = sp.csr_matrix(x, dtype=np.float32)
        else:
            x = l2_normalize(w @ x)
        emb[name] = x
    return Signals(emb, signals.phash, signals.usable, signals.quantities, signals.titles,
                   {key: v for key, v in signals.knn_cache.items() if key[0] == "phash"}, signals.scored)
