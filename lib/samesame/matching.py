"""Applying a recipe: fused score, kept pairs, match sets, and the fitted :class:`Matcher` (save / load).

A :class:`samesame.recipe.Recipe` keeps a candidate pair when the weighted mean of its signals'
similarities reaches the threshold (or one signal alone reaches its union threshold), drops
title-driven pairs whose units conflict, gives lonely listings their best candidate (min2), and
optionally lets the :class:`samesame.pairs.PairClassifier` decide instead. Every score here is
"larger = closer".
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .candidates import Candidates, Signals, blend_signals, candidate_pairs, compute_signals, embedding_sims
from .files import replaced_folder
from .metrics import scores_from_counts
from .neighbors import MAX_MATCHES
from .pairs import PairClassifier, TitleTokens, pair_features, symmetric_probability
from .recipe import Recipe
from .text import TfidfConfig
from .title_model import TitleEncoder

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
    first = _best_per_row(cands.rows, score)
    add = np.zeros(len(score), dtype=bool)
    chosen = first[alone[cands.rows[first]] & (score[first] >= loose)]
    add[chosen] = True
    return add


def _best_per_row(rows: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Position of each row's best-scoring pair (the first one on ties), one per row that has pairs.

    Candidate pairs come sorted by row, so this is two O(pairs) reductions; the tuning grids call it
    hundreds of times (a lexsort per call took most of fit_matcher's time)."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    if np.any(rows[1:] < rows[:-1]):                          # unsorted (hand-made pairs): the general way
        order = np.lexsort((-score, rows))
        return order[np.r_[True, rows[order][1:] != rows[order][:-1]]]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    best = np.maximum.reduceat(score, starts)
    pos = np.where(score == np.repeat(best, np.diff(np.r_[starts, len(rows)])), np.arange(len(rows)), len(rows))
    return np.minimum.reduceat(pos, starts)


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
    sizes, same = _label_pairs(cands, labels)
    n_pred = 1 + np.bincount(cands.rows[keep], minlength=cands.n)
    n_hit = 1 + np.bincount(cands.rows[keep & same], minlength=cands.n)
    return scores_from_counts(n_pred, sizes, n_hit)


def _label_pairs(cands: Candidates, labels: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """(group size per listing, same-group flag per pair), cached on ``cands`` for the same labels
    (the tuning grids score thousands of masks on one candidate set)."""
    labels = np.asarray(labels)
    cache = cands.__dict__.setdefault("_label_cache", {})
    hit = cache.get("labels")
    if hit is None or hit[0] is not labels and not np.array_equal(hit[0], labels):
        _, codes, counts = np.unique(labels, return_inverse=True, return_counts=True)
        codes = codes.ravel()
        cache["labels"] = (labels, counts[codes], codes[cands.rows] == codes[cands.cols])
    return cache["labels"][1], cache["labels"][2]



# ---------------------------------------------------------------- candidates of a recipe, pair classifier inputs


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


def pair_probability(cands: Candidates, sub: np.ndarray, p_sub: np.ndarray) -> np.ndarray:
    """Symmetric p(same product) of every candidate pair: ``p_sub`` on the classified pairs ``sub``, 0 elsewhere."""
    p = np.zeros(len(cands.rows), dtype=np.float32)
    p[sub] = p_sub
    return symmetric_probability(p, cands.rows, cands.cols, cands.n)


def classified_pairs(score: np.ndarray, floor: float | None) -> np.ndarray:
    """Positions of the candidate pairs the pair classifier scores (fused score >= floor; symmetric)."""
    return np.arange(len(score)) if floor is None else np.flatnonzero(score >= floor)


# ---------------------------------------------------------------- the matcher

MATCHER_FORMAT = 2      # 2: the pair classifier keeps its fold models (models.joblib)


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
        """Match sets (row positions, self first, at most 50) for every row of ``df``.

        Any pool size works: 0 listings give no sets, 1 listing matches only itself, and a pool where
        no candidate pair reaches the pair classifier's floor leaves every listing with itself."""
        self._check_pool(df, image_embeddings)
        if len(df) < 2:
            return [np.arange(len(df))[i:i + 1] for i in range(len(df))]
        signals = compute_signals(df, self.encoder if self._needs_title() else None, self.tfidf_config,
                                  image_embeddings)
        signals, cands, score = pool_candidates(signals, self.recipe, self.k, progress)
        if self.pair_classifier is None:
            return matches_from_pairs(cands, keep_pairs(cands, self.recipe, score), score)
        step = self.recipe.pair_classifier
        sub = classified_pairs(score, step.floor)
        p_sub = np.zeros(0, dtype=np.float32)
        if len(sub):        # no pair reaches the floor (a tiny or unrelated pool): nothing to classify
            x, names = pair_classifier_features(signals, cands, score, sub)
            p_sub = self.pair_classifier.predict_proba(x, names)
        p = pair_probability(cands, sub, p_sub)
        return matches_from_pairs(cands, keep_pairs(cands, step.rule(), p), p)

    def uses_images(self) -> bool:
        """Whether the recipe or the pair classifier reads image similarities (predict then needs image vectors)."""
        return "image" in self.recipe.searched_signals() or (
            self.pair_classifier is not None and "image" in self.pair_classifier.feature_names)

    def _check_pool(self, df: pd.DataFrame, image_embeddings) -> None:
        """Refuse, with the fix, a pool this matcher cannot match as it was fitted."""
        missing = [c for c in ("title", "image_phash") if c not in df.columns]
        if missing:
            raise ValueError(f"Matcher.predict: the listings have no {missing} column(s) (have {list(df.columns)}); "
                             "pass the frame samesame.data.load_dataset reads from test.csv "
                             "(posting_id, image, image_phash, title)")
        if image_embeddings is None and self.uses_images():
            raise ValueError(f"this matcher ({self.name}) was fitted with image similarities, but predict got no "
                             "image_embeddings; pass artefacts.embed_for_matcher(matcher, folder, df) (rows without "
                             "an image: ok=False), or refit the matcher without images (use_images: false)")

    def _needs_title(self) -> bool:
        """Embed titles only when the recipe or the pair classifier reads the learned title (it is slow)."""
        return "title" in self.recipe.searched_signals() or (
            self.pair_classifier is not None and "title" in self.pair_classifier.feature_names)

    # ------------------------------------------------------------ persistence

    def save(self, folder: str | Path) -> Path:
        """Write ``recipe.json``, ``matcher.json`` (settings, versions, info), ``title_encoder/`` and
        ``pair_classifier.*`` into ``folder`` (replaced as a whole, so no stale file survives)."""
        with replaced_folder(folder) as tmp:
            self.recipe.save(tmp / "recipe.json")
            if self.encoder is not None:
                self.encoder.save(tmp / "title_encoder")
            if self.pair_classifier is not None:
                self.pair_classifier.save(tmp / "pair_classifier")
            meta = {"format": MATCHER_FORMAT, "name": self.name, "tfidf_config": dataclasses.asdict(self.tfidf_config),
                    "k": self.k, "title_encoder": self.encoder is not None,
                    "pair_classifier": self.pair_classifier is not None, "info": self.info}
            (tmp / "matcher.json").write_text(json.dumps(meta, indent=2, default=str))
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> "Matcher":
        """The matcher :meth:`save` wrote. A missing, damaged, edited or too-new file raises an error naming
        that file and the fix (FileNotFoundError when absent, else ValueError; see also Recipe.load,
        TitleEncoder.load and PairClassifier.load), checked before the slow parts are loaded."""
        folder = Path(folder)
        meta_file, recipe_file = folder / "matcher.json", folder / "recipe.json"
        refit = "refit and save the matcher (make fit)"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{meta_file} not found: fit and save a matcher first (make fit)")
        try:
            meta = json.loads(meta_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{meta_file} is not valid JSON ({err}); {refit}") from None
        found = meta.get("format") if isinstance(meta, dict) else meta
        if found != MATCHER_FORMAT:
            raise ValueError(f"{meta_file}: matcher format {found!r}, this samesame reads {MATCHER_FORMAT}; {refit}")
        try:
            tc, k, info = meta["tfidf_config"], meta["k"], meta.get("info", {})
            flags = {name: meta[name] for name in ("title_encoder", "pair_classifier")}
            tfidf_config = TfidfConfig(**{**tc, "char_ngrams": tuple(tc["char_ngrams"])})
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ValueError(f"k = {k!r}, expected an integer >= 1")
            if not all(isinstance(v, bool) for v in flags.values()) or not isinstance(info, dict):
                raise ValueError(f"{flags} and info = {type(info).__name__}: expected true/false flags and an object")
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{meta_file} is not what Matcher.save writes ({type(err).__name__}: {err}); "
                             f"{refit}") from None
        recipe = Recipe.load(recipe_file)
        if flags["pair_classifier"] != (recipe.pair_classifier is not None):
            raise ValueError(f"{meta_file} says pair_classifier: {str(flags['pair_classifier']).lower()}, but "
                             f"{recipe_file} has {'a' if recipe.pair_classifier else 'no'} pair_classifier step: the "
                             f"files come from different fits; {refit}")
        encoder = TitleEncoder.load(folder / "title_encoder") if flags["title_encoder"] else None
        pair_classifier = PairClassifier.load(folder / "pair_classifier") if flags["pair_classifier"] else None
        return cls(recipe, encoder, tfidf_config, k, pair_classifier, info)
