"""Fuse title, phash and (optional) image signals into match sets; every threshold tuned on train.

The pipeline works on *candidate pairs*: the union of each signal's k nearest
neighbours, with every signal's similarity computed for every pair. Fusion rules
are then cheap array operations, so a whole grid of weights and thresholds can
be scored on train in seconds:

* **concat**: weighted mean of per-signal cosine similarities (= cosine of the
  concatenation of unit-length embeddings scaled by sqrt(weight)), one threshold;
* **union**: also keep a pair when phash alone is within its own threshold;
* **unit filter**: drop a title-driven match when both titles state different
  amounts of the same unit (200 gr vs 400 gr);
* **min2**: a listing left alone keeps its best candidate unless that one is very far;
* **blend**: replace every embedding by the similarity-weighted mean of its close
  neighbours, re-normalise and search again (neighbourhood blending);
* **pair classifier**: a :class:`samesame.pairs.PairClassifier` scores every candidate pair
  from all similarities plus pool-relative features; its probability replaces the
  fused score (kept only where it beats the threshold rule on the train-side tune part).

Similarities are "larger = closer": cosine for embeddings, ``1 - bits/32`` for phash.
The rule itself is a typed :class:`samesame.recipe.Recipe`; a fitted :class:`Matcher`
saves to and loads from a folder (:meth:`Matcher.save`, :meth:`Matcher.load`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from .data import split_by_group
from .metrics import Scores, score_matches, scores_from_counts
from .neighbors import MAX_MATCHES, knn, l2_normalize
from .pairs import PairClassifier, TitleTokens, pair_dot, pair_features, symmetric_probability
from .phash import phash_codes
from .recipe import Blend, PairStep, Recipe
from .text import TfidfConfig, normalize_titles, quantities, tfidf_embeddings, unit_conflict
from .title_model import TitleEncoder, TitleModelConfig, fitted_encoder

EMBEDDINGS = ("tfidf", "title", "image")  # blended, cosine signals
SIGNALS = EMBEDDINGS + ("phash",)
STEP_FOLDS = 5   # group folds of the tuning pool an optional step (unit filter, blending, pair classifier) must win


# ---------------------------------------------------------------- signals and candidate pairs


@dataclass
class Signals:
    """Every signal of one pool of listings (rows aligned with the DataFrame)."""

    emb: dict[str, object]           # name -> unit-length sparse (tfidf) or dense float32 (title, image)
    phash: np.ndarray                # packed uint8 (n, 8)
    image_ok: np.ndarray             # bool (n,): rows whose image embedding may be used
    quantities: list[dict]
    titles: list[str] = field(default_factory=list)   # normalised titles (pair classifier features)
    knn_cache: dict = field(default_factory=dict, repr=False)   # (signal, k) -> (rows searched, kNN indices)

    @property
    def n(self) -> int:
        return len(self.phash)


def compute_signals(df: pd.DataFrame, encoder: TitleEncoder | None, tfidf_config: TfidfConfig = TfidfConfig(),
                    image_embeddings=None) -> Signals:
    """TF-IDF (fit on this pool), learned title embedding, phash codes, optional image vectors.

    ``image_embeddings`` is ``None`` or ``(vectors float32 (n, d), ok bool (n,))``;
    rows with ``ok`` False get no image neighbours and are matched by the other signals.
    """
    n = len(df)
    emb: dict[str, object] = {"tfidf": tfidf_embeddings(df["title"].tolist(), tfidf_config)}
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
    titles = normalize_titles(df["title"].tolist())
    return Signals(emb, phash_codes(df["image_phash"].tolist()), image_ok, [quantities(t) for t in titles], titles)


@dataclass
class Candidates:
    """Directed candidate pairs (row -> col, no self pairs, both directions present) with per-signal similarity."""

    rows: np.ndarray
    cols: np.ndarray
    sims: dict[str, np.ndarray]      # NaN where a signal has no value (image missing on either side)
    conflict: np.ndarray             # bool: both titles state different amounts of a shared unit
    n: int


def candidate_pairs(signals: Signals, k: int = MAX_MATCHES, progress: bool = False,
                    search: Sequence[str] | None = None) -> Candidates:
    """Union of the k nearest neighbours of each signal in ``search`` (default: all), made
    symmetric, scored by every signal (a signal that is not searched still scores the pairs)."""
    n = signals.n
    pairs = []
    searched = [(name, emb) for name, emb in list(signals.emb.items()) + [("phash", signals.phash)]
                if search is None or name in search]
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
    sims["phash"] = (1.0 - bits / 32.0).astype(np.float32)
    conflict = _pair_conflicts(signals.quantities, rows, cols)
    return Candidates(rows, cols, sims, conflict, n)


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


# ---------------------------------------------------------------- the fusion rule


def fused_score(cands: Candidates, weights: dict[str, float]) -> np.ndarray:
    """Weighted mean of the available signals' similarities per pair (a missing image drops out)."""
    num = np.zeros(len(cands.rows), dtype=np.float64)
    den = np.zeros(len(cands.rows), dtype=np.float64)
    for name, w in weights.items():
        if w <= 0 or name not in cands.sims:
            continue
        s = cands.sims[name]
        have = ~np.isnan(s)
        num[have] += w * s[have]
        den[have] += w
    return np.divide(num, den, out=np.full_like(num, -1.0), where=den > 0)


def keep_pairs(cands: Candidates, recipe: Recipe | dict, score: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the candidate pairs the recipe matches (before the 50 cap)."""
    recipe = Recipe.from_dict(recipe)
    score = fused_score(cands, recipe.weights) if score is None else score
    keep = score >= recipe.threshold
    if recipe.unit_filter:
        keep &= ~cands.conflict
    for name, t in recipe.union.items():
        if name in cands.sims:
            keep |= np.nan_to_num(cands.sims[name], nan=-np.inf) >= t
    if recipe.min2 is not None:
        keep |= _min2_pairs(cands, score, keep, recipe.min2)
    return keep


def _min2_pairs(cands: Candidates, score: np.ndarray, keep: np.ndarray, loose: float) -> np.ndarray:
    """For listings with no match but themselves, their best-scoring candidate if it is >= ``loose``."""
    alone = np.bincount(cands.rows[keep], minlength=cands.n) == 0
    order = np.lexsort((-score, cands.rows))             # per row, best score first
    first = order[np.r_[True, cands.rows[order][1:] != cands.rows[order][:-1]]]
    add = np.zeros(len(score), dtype=bool)
    chosen = first[alone[cands.rows[first]] & (score[first] >= loose)]
    add[chosen] = True
    return add


def matches_from_pairs(cands: Candidates, keep: np.ndarray, score: np.ndarray,
                       max_matches: int = MAX_MATCHES) -> list[np.ndarray]:
    """Match sets (self first, then by decreasing score), capped at ``max_matches``."""
    r, c, s = cands.rows[keep], cands.cols[keep], score[keep]
    order = np.lexsort((-s, r))
    r, c = r[order], c[order]
    bounds = np.searchsorted(r, np.arange(cands.n + 1))
    return [np.concatenate(([i], c[bounds[i]:bounds[i + 1]][: max_matches - 1])) for i in range(cands.n)]


def pair_scores(cands: Candidates, keep: np.ndarray, labels: Sequence):
    """Mean F1/precision/recall of a pair mask (self counted), without building match lists."""
    _, codes, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    codes = codes.ravel()
    same = codes[cands.rows] == codes[cands.cols]
    n_pred = 1 + np.bincount(cands.rows[keep], minlength=cands.n)
    n_hit = 1 + np.bincount(cands.rows[keep & same], minlength=cands.n)
    return scores_from_counts(n_pred, counts[codes], n_hit)


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
                   {key: v for key, v in signals.knn_cache.items() if key[0] == "phash"})


# ---------------------------------------------------------------- candidates of a recipe, pair classifier step


def searched_signals(recipe: Recipe | dict) -> set[str]:
    """Signals whose kNN can bring a pair the recipe may keep (see :meth:`Recipe.searched_signals`)."""
    return Recipe.from_dict(recipe).searched_signals()


def pool_candidates(signals: Signals, recipe: Recipe, k: int = MAX_MATCHES,
                    progress: bool = False) -> tuple[Signals, Candidates, np.ndarray]:
    """The recipe's final signals, candidate pairs and fused score (after its blend pass, if any).

    After blending, the pairs also carry the unblended similarities ("raw_" + signal):
    the pair classifier can then tell a pair close in itself from one pulled close by its neighbours.
    """
    search = recipe.searched_signals()
    cands = candidate_pairs(signals, k, progress, search)
    blend = recipe.blend
    if blend:
        first = fused_score(cands, blend.weights)
        raw = signals
        signals = blend_signals(signals, cands, first, blend.threshold, blend.top)
        cands = candidate_pairs(signals, k, progress, search)
        cands.sims.update({f"raw_{name}": s for name, s in embedding_sims(raw, cands.rows, cands.cols).items()})
    return signals, cands, fused_score(cands, recipe.weights)


def pair_classifier_features(signals: Signals, cands: Candidates, score: np.ndarray,
                             subset: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """The pair classifier's features for these candidates (every signal, the fused score, titles);
    ``subset``: positions of the pairs to describe (default: all)."""
    return pair_features(cands.rows, cands.cols, cands.n, {**cands.sims, "fused": score}, cands.conflict,
                         TitleTokens.from_titles(signals.titles), subset)


FLOOR_QUANTILE = 0.002   # share of matching tuning pairs allowed below the pair classifier's fused-score floor


def classified_pairs(score: np.ndarray, floor: float | None) -> np.ndarray:
    """Positions of the candidate pairs the pair classifier scores (fused score >= floor; symmetric)."""
    return np.arange(len(score)) if floor is None else np.flatnonzero(score >= floor)


PROBABILITIES = np.round(np.arange(0.05, 0.951, 0.01), 3)


def tune_pair_step(cands: Candidates, p: np.ndarray, labels: Sequence) -> PairStep:
    """The pair classifier's decision on labelled candidates: probability threshold, then min2's looser one."""
    def f1(step: PairStep):
        return pair_scores(cands, keep_pairs(cands, step.rule(), p), labels).mean_f1

    best = max((PairStep(float(t)) for t in PROBABILITIES), key=f1)
    loose = [PairStep(best.threshold, float(m)) for m in np.round(np.arange(0.01, best.threshold, 0.02), 3)]
    return max([best] + loose, key=f1)


# ---------------------------------------------------------------- tuning on train


THRESHOLDS = np.round(np.arange(0.20, 0.951, 0.01), 3)
PHASH_BITS = tuple(range(0, 17))
WEIGHT_GRID = (0.0, 0.25, 0.5, 1.0)


def tune_recipe(cands: Candidates, labels: Sequence, *, concat: Sequence[str], union_phash: bool = False,
                min2: bool = False, unit_filter: bool = False) -> Recipe:
    """Grid-search weights and thresholds of one fusion rule on labelled (train) candidates.

    Weights of the ``concat`` signals: coordinate search over a coarse grid (first
    one fixed at 1), the fused threshold over a fine grid for each; then the phash
    union threshold and the min2 looser threshold, each given the previous choices.
    """
    concat = [s for s in concat if s in cands.sims]
    weights = {s: (1.0 if i == 0 else 0.0) for i, s in enumerate(concat)}
    best_f1, recipe = -1.0, None
    for name in concat[1:] * 2:                      # coordinate search, two passes over the extra signals
        for w in WEIGHT_GRID:
            trial = {**weights, name: w}
            score = fused_score(cands, trial)
            for t in THRESHOLDS:
                r = Recipe(weights=trial, threshold=float(t), unit_filter=unit_filter)
                f1 = pair_scores(cands, keep_pairs(cands, r, score), labels).mean_f1
                if f1 > best_f1:
                    best_f1, recipe = f1, r
        weights = dict(recipe.weights)
    if recipe is None:                               # a single signal: only its threshold to tune
        score = fused_score(cands, weights)
        recipe = max((Recipe(weights=weights, threshold=float(t), unit_filter=unit_filter) for t in THRESHOLDS),
                     key=lambda r: pair_scores(cands, keep_pairs(cands, r, score), labels).mean_f1)
    score = fused_score(cands, recipe.weights)

    def _try(variants):
        nonlocal recipe
        scored = [(pair_scores(cands, keep_pairs(cands, v, score), labels).mean_f1, i) for i, v in enumerate(variants)]
        recipe = variants[max(scored)[1]]

    if union_phash:
        _try([recipe.replace(union={"phash": 1.0 - b / 32.0}) for b in PHASH_BITS] + [recipe])
        # re-tune the fused threshold now that phash catches some pairs
        _try([recipe.replace(threshold=float(t)) for t in THRESHOLDS])
    if min2:
        _try([recipe.replace(min2=float(t)) for t in np.round(np.arange(0.0, recipe.threshold, 0.02), 3)])
    return recipe


# ---------------------------------------------------------------- the matcher

MATCHER_FORMAT = 1


@dataclass
class Matcher:
    """A tuned recipe plus what it was fitted with (title encoder, pair classifier); :meth:`predict` matches
    any pool of listings, :meth:`save` / :meth:`load` keep it in a folder (JSON, Keras, joblib)."""

    recipe: Recipe
    encoder: TitleEncoder | None
    tfidf_config: TfidfConfig = field(default_factory=TfidfConfig)
    k: int = MAX_MATCHES
    pair_classifier: PairClassifier | None = None
    info: dict = field(default_factory=dict)       # free JSON-ready facts (train.csv hash, image model, timings)

    def __post_init__(self):
        self.recipe = Recipe.from_dict(self.recipe)
        if (self.recipe.pair_classifier is not None) != (self.pair_classifier is not None):
            raise ValueError("a recipe with a pair_classifier step needs its trained PairClassifier "
                             "(pair_classifier=...), and a PairClassifier needs the recipe's pair_classifier "
                             "thresholds; refit with fit_matcher")

    @property
    def name(self) -> str:
        """Short method name for tables and metrics.json, e.g. ``blend(tfidf+title)|phash+min2``."""
        return self.recipe.name

    def predict(self, df: pd.DataFrame, *, image_embeddings=None, progress: bool = True) -> list[np.ndarray]:
        """Match sets (row positions, self first, at most 50) for every row of ``df``."""
        signals = compute_signals(df, self.encoder if self._needs_title() else None, self.tfidf_config,
                                  image_embeddings)
        signals, cands, score = pool_candidates(signals, self.recipe, self.k, progress)
        if self.pair_classifier is None:
            return matches_from_pairs(cands, keep_pairs(cands, self.recipe, score), score)
        step = self.recipe.pair_classifier
        sub = classified_pairs(score, step.floor)
        x, names = pair_classifier_features(signals, cands, score, sub)
        p = np.zeros(len(score), dtype=np.float32)
        p[sub] = self.pair_classifier.predict_proba(x, names)
        p = symmetric_probability(p, cands.rows, cands.cols, cands.n)
        return matches_from_pairs(cands, keep_pairs(cands, step.rule(), p), p)

    def _needs_title(self) -> bool:
        """Embed titles only when the recipe or the pair classifier reads the learned title (it is slow)."""
        return "title" in self.recipe.searched_signals() or (
            self.pair_classifier is not None and "title" in self.pair_classifier.feature_names)

    # ------------------------------------------------------------ persistence

    def save(self, folder: str | Path) -> Path:
        """Write ``recipe.json``, ``matcher.json`` (settings, versions, info), ``title_encoder/`` and
        ``pair_classifier.*`` into ``folder`` (replaced as a whole, so no stale file survives)."""
        folder = Path(folder)
        tmp = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        self.recipe.save(tmp / "recipe.json")
        if self.encoder is not None:
            self.encoder.save(tmp / "title_encoder")
        if self.pair_classifier is not None:
            self.pair_classifier.save(tmp / "pair_classifier")
        meta = {"format": MATCHER_FORMAT, "name": self.name, "tfidf_config": dataclasses.asdict(self.tfidf_config),
                "k": self.k, "title_encoder": self.encoder is not None,
                "pair_classifier": self.pair_classifier is not None, "info": self.info}
        (tmp / "matcher.json").write_text(json.dumps(meta, indent=2, default=str))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "Matcher":
        """The matcher :meth:`save` wrote (raises with the reason when the folder is incomplete or too new)."""
        folder = Path(folder)
        meta_file = folder / "matcher.json"
        if not meta_file.exists():
            raise FileNotFoundError(f"{meta_file} not found: fit and save a matcher first (make fit)")
        meta = json.loads(meta_file.read_text())
        if meta.get("format") != MATCHER_FORMAT:
            raise ValueError(f"{folder}: matcher format {meta.get('format')}, this samesame reads {MATCHER_FORMAT}; refit")
        tc = meta["tfidf_config"]
        tfidf_config = TfidfConfig(**{**tc, "char_ngrams": tuple(tc["char_ngrams"])})
        encoder = TitleEncoder.load(folder / "title_encoder") if meta["title_encoder"] else None
        pair_classifier = PairClassifier.load(folder / "pair_classifier") if meta["pair_classifier"] else None
        return cls(Recipe.load(folder / "recipe.json"), encoder, tfidf_config, int(meta["k"]), pair_classifier,
                   meta.get("info", {}))


def fit_matcher(train_df: pd.DataFrame, *, image_embeddings=None, tune_fraction: float = 0.4, seed: int = 0,
                title_model: TitleModelConfig | None = TitleModelConfig(), tfidf_config: TfidfConfig = TfidfConfig(),
                union_phash: bool = True, min2: bool = True, unit_filter: bool | None = None, blend: bool = True,
                pair_classifier: bool | None = None, cache_dir: str | None = None, progress: bool = True) -> Matcher:
    """Train the title encoder and tune the whole recipe on train listings only.

    Train groups are split in two: the encoder learns from one part, the recipe is
    tuned on the other (searched within itself), so thresholds are set on
    embeddings of groups the encoder has never seen, as at test time.
    ``unit_filter=None`` keeps the filter only if it helps on the tuning part.
    ``title_model=None`` skips the learned title embedding (TF-IDF + phash only).
    ``pair_classifier=None`` adds the pair classifier only if it beats the threshold rule there (True: always).
    ``cache_dir``: where a trained title encoder is kept and found again (same titles, labels, config).
    """
    tuning = _TuningPool.build(train_df, image_embeddings, tune_fraction, seed, title_model, tfidf_config, progress,
                               cache_dir)
    recipe = tuning.tune(concat=tuning.signal_names, union_phash=union_phash, min2=min2,
                         unit_filter=unit_filter, blend=blend)
    recipe, classifier = tuning.add_pair_classifier(recipe, pair_classifier, progress)
    return Matcher(recipe, tuning.encoder, tfidf_config, pair_classifier=classifier)


@dataclass
class _TuningPool:
    """The train listings the recipe is tuned on, their signals and candidate pairs (computed once)."""

    encoder: TitleEncoder | None
    signals: Signals
    cands: Candidates
    labels: np.ndarray

    @classmethod
    def build(cls, train_df, image_embeddings, tune_fraction, seed, title_model, tfidf_config, progress, cache_dir=None):
        # seed + 1: the outer train/val split may have used ``seed`` itself, which would put no group in tune_part
        fit_part, tune_part = split_by_group(train_df, test_fraction=tune_fraction, seed=seed + 1)
        if tune_part.empty or fit_part.empty:
            raise ValueError(f"splitting {len(train_df)} train listings left an empty part; "
                             f"use more train groups or another tune_fraction (got {tune_fraction})")
        tune_rows = train_df["label_group"].isin(set(tune_part["label_group"])).to_numpy()
        encoder = (fitted_encoder(fit_part["title"], fit_part["label_group"], title_model, cache_dir, progress)
                   if title_model else None)
        signals = compute_signals(tune_part, encoder, tfidf_config, _subset_images(image_embeddings, tune_rows))
        return cls(encoder, signals, candidate_pairs(signals, MAX_MATCHES, progress), tune_part["label_group"].to_numpy())

    @property
    def signal_names(self) -> list[str]:
        return [s for s in ("tfidf", "title", "image", "phash") if s in self.cands.sims]

    def f1(self, cands: Candidates, recipe: Recipe) -> float:
        return self.scores(cands, recipe).mean_f1

    def scores(self, cands: Candidates, recipe: Recipe, score: np.ndarray | None = None) -> Scores:
        return pair_scores(cands, keep_pairs(cands, recipe, score), self.labels)

    def wins(self, new: Scores, old: Scores) -> bool:
        """Keep an optional step only when it beats going without on the mean **and** in most of
        STEP_FOLDS folds of the pool's label groups: a step that wins on one lucky subset of groups
        is noise, and it costs on an unseen pool."""
        gains = new.fold_f1(self.labels, STEP_FOLDS) - old.fold_f1(self.labels, STEP_FOLDS)
        return new.mean_f1 > old.mean_f1 and int(np.sum(gains > 0)) > len(gains) // 2

    def tune(self, *, concat: Sequence[str], union_phash: bool = False, min2: bool = False,
             unit_filter: bool | None = False, blend: bool = False) -> Recipe:
        """Best recipe for one family of rules; blending kept only if it beats no blending on train."""
        filters = (False, True) if unit_filter is None else (bool(unit_filter),)

        def _tuned(cands):
            options = [tune_recipe(cands, self.labels, concat=concat, union_phash=union_phash, min2=min2,
                                   unit_filter=u) for u in filters]
            chosen = options[0]
            for other in options[1:]:        # the unit filter, when optional, must win across group folds
                if self.wins(self.scores(cands, other), self.scores(cands, chosen)):
                    chosen = other
            return chosen

        recipe = _tuned(self.cands)
        if not blend:
            return recipe
        score = fused_score(self.cands, recipe.weights)
        best, best_scores = recipe, self.scores(self.cands, recipe)
        for t in (recipe.threshold, recipe.threshold + 0.1):
            step = Blend(dict(recipe.weights), float(t), 8)
            b_cands = candidate_pairs(blend_signals(self.signals, self.cands, score, t, step.top))
            r = _tuned(b_cands).replace(blend=step)
            if self.wins(self.scores(b_cands, r), best_scores):
                best, best_scores = r, self.scores(b_cands, r)
        return best

    def add_pair_classifier(self, recipe: Recipe, wanted: bool | None,
                            progress: bool = False) -> tuple[Recipe, PairClassifier | None]:
        """Add the pair classifier step to ``recipe`` (``wanted`` True: always, None: if it wins, False: never).

        Its decision thresholds are tuned on out-of-fold probabilities (group K-fold
        inside this pool), the kept model is then trained on all of the pool's pairs.
        """
        if wanted is False:
            return recipe, None
        signals, cands, score = pool_candidates(self.signals, recipe)
        _, codes = np.unique(self.labels, return_inverse=True)
        codes = codes.ravel()
        same = codes[cands.rows] == codes[cands.cols]
        # pairs far below every matching pair's fused score are left out (p = 0): most candidates, few matches
        floor = float(np.quantile(score[same], FLOOR_QUANTILE)) if same.any() else None
        sub = classified_pairs(score, floor)
        x, names = pair_classifier_features(signals, cands, score, sub)
        clf = PairClassifier()
        folds = np.minimum(codes[cands.rows], codes[cands.cols])[sub]       # (i, j) and (j, i) share a fold
        p = np.zeros(len(score), dtype=np.float32)
        p[sub] = clf.out_of_fold(x, same[sub], folds, progress=progress)
        p = symmetric_probability(p, cands.rows, cands.cols, cands.n)
        step = tune_pair_step(cands, p, self.labels).replace(floor=floor)
        if wanted is None and not self.wins(self.scores(cands, step.rule(), p), self.scores(cands, recipe, score)):
            return recipe, None
        return recipe.replace(pair_classifier=step), clf.fit(x, same[sub], names)


ABLATION = {  # row name -> tuning options (signals missing from the pool are skipped)
    "phash": dict(concat=["phash"]),
    "tfidf": dict(concat=["tfidf"]),
    "tfidf+min2": dict(concat=["tfidf"], min2=True),
    "learned title": dict(concat=["title"]),
    "image": dict(concat=["image"]),                 # only when image vectors exist
    "union phash|tfidf": dict(concat=["tfidf"], union_phash=True),
    "concat": dict(concat=["tfidf", "title", "image", "phash"]),
    "concat|phash+min2": dict(concat=["tfidf", "title", "image", "phash"], union_phash=True, min2=True),
    "+unit filter": dict(concat=["tfidf", "title", "image", "phash"], union_phash=True, min2=True, unit_filter=True),
    "blend": dict(concat=["tfidf", "title", "image", "phash"], union_phash=True, min2=True, blend=True),
    "+pair classifier": dict(concat=["tfidf", "title", "image", "phash"], union_phash=True, min2=True,
                             unit_filter=True, pair_classifier=True),
    "best": dict(concat=["tfidf", "title", "image", "phash"], union_phash=True, min2=True, unit_filter=None,
                 blend=True, pair_classifier=None),
}


def ablation(train_df: pd.DataFrame, val_df: pd.DataFrame, *, train_images=None, val_images=None,
             title_model: TitleModelConfig | None = TitleModelConfig(), tfidf_config: TfidfConfig = TfidfConfig(),
             tune_fraction: float = 0.4, seed: int = 0, cache_dir: str | None = None, progress: bool = True
             ) -> tuple[pd.DataFrame, dict[str, Recipe], dict[str, list[np.ndarray]]]:
    """Each fusion step tuned on train, scored on the val pool (searched within itself).

    Returns the table (method | mean_f1 | mean_precision | mean_recall | fold_f1_std: the std of mean F1
    over 5 folds of the val pool's groups), the
    recipe of each row (the "best" row's thresholds go to metrics.json) and each
    row's match sets on the val pool (for error analysis).
    """
    tuning = _TuningPool.build(train_df, train_images, tune_fraction, seed, title_model, tfidf_config, progress,
                               cache_dir)
    rows, recipes, predictions = [], {}, {}
    for method, options in tqdm(ABLATION.items(), desc="ablation", disable=not progress):
        concat = [s for s in options["concat"] if s in tuning.signal_names]
        if not concat:
            continue
        options = {**options, "concat": concat}
        wanted = options.pop("pair_classifier", False)
        recipe, classifier = tuning.add_pair_classifier(tuning.tune(**options), wanted)
        matches = Matcher(recipe, tuning.encoder, tfidf_config, pair_classifier=classifier).predict(
            val_df, image_embeddings=val_images, progress=False)
        s = score_matches(matches, val_df["label_group"].to_numpy())
        rows.append({"method": method, **s.as_dict(),
                     "fold_f1_std": round(float(np.std(s.fold_f1(val_df["label_group"].to_numpy()))), 4)})
        recipes[method], predictions[method] = recipe, matches
    return pd.DataFrame(rows), recipes, predictions


def _subset_images(image_embeddings, rows: np.ndarray):
    if image_embeddings is None:
        return None
    vectors, ok = image_embeddings
    return np.asarray(vectors)[rows], np.asarray(ok, dtype=bool)[rows]
