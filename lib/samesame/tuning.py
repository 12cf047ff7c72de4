"""Tuning a recipe on labelled listings: grids over weights and thresholds, blending, the pair classifier.

A :class:`TuningPool` is one pool of train listings (searched within itself, as a test set is)
whose signals and candidate pairs are computed once; every grid is scored on it.
:mod:`samesame.selection` decides which optional steps ship and fits the matcher.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd

from .candidates import Candidates, Signals, blend_signals, candidate_pairs, compute_signals
from .data import split_by_group
from .matching import (Matcher, classified_pairs, fused_score, keep_pairs, pair_classifier_features,
                       pair_probability, pair_scores, pool_candidates)
from .metrics import Scores
from .neighbors import MAX_MATCHES
from .pairs import PairClassifier
from .recipe import Blend, PairStep, Recipe
from .text import TfidfConfig
from .title_model import TitleEncoder, TitleModelConfig, fitted_encoder


@dataclass(frozen=True)
class TuningGrid:
    """The search space :func:`samesame.selection.fit_matcher` explores on train, and the pair classifier's settings.

    It lives in the run config (``fusion_grid``) so an experiment changes it in one place.
    """

    thresholds: tuple[float, float, float] = (0.20, 0.95, 0.01)   # fused-similarity (start, stop, step)
    weights: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0)           # coordinate-search grid of concat weights
    phash_max_bits: int = 16                                      # phash union: Hamming distances 0..max
    probabilities: tuple[float, float, float] = (0.05, 0.95, 0.01)  # pair-classifier decision thresholds
    blend_top: int = 8                                            # neighbours averaged by blending
    step_folds: int = 5       # group folds an optional step (unit filter, blending, pair classifier) must win
    pair_trees: int = 300
    pair_learning_rate: float = 0.1
    pair_max_leaf_nodes: int = 63
    pair_floor_quantile: float = 0.002   # share of matching tuning pairs allowed below the classifier's score floor

    @staticmethod
    def _range(spec: Sequence[float]) -> np.ndarray:
        start, stop, step = spec
        return np.round(np.arange(start, stop + step / 2, step), 3)

    @property
    def threshold_values(self) -> np.ndarray:
        return self._range(self.thresholds)

    @property
    def probability_values(self) -> np.ndarray:
        return self._range(self.probabilities)

    def pair_classifier(self, seed: int = 0) -> PairClassifier:
        return PairClassifier(max_iter=self.pair_trees, learning_rate=self.pair_learning_rate,
                              max_leaf_nodes=self.pair_max_leaf_nodes, seed=seed)


def tune_pair_step(cands: Candidates, p: np.ndarray, labels: Sequence, grid: TuningGrid = TuningGrid()) -> PairStep:
    """The pair classifier's decision on labelled candidates: probability threshold, then min2's looser one."""
    def f1(step: PairStep):
        return pair_scores(cands, keep_pairs(cands, step.rule(), p), labels).mean_f1

    best = max((PairStep(float(t)) for t in grid.probability_values), key=f1)
    loose = [PairStep(best.threshold, float(m)) for m in np.round(np.arange(0.01, best.threshold, 0.02), 3)]
    return max([best] + loose, key=f1)



# ---------------------------------------------------------------- tuning on train


def tune_recipe(cands: Candidates, labels: Sequence, *, concat: Sequence[str], union_phash: bool = False,
                min2: bool = False, unit_filter: bool = False, grid: TuningGrid = TuningGrid()) -> Recipe:
    """Grid-search weights and thresholds of one fusion rule on labelled (train) candidates.

    Weights of the ``concat`` signals: coordinate search over a coarse grid (first
    one fixed at 1), the fused threshold over a fine grid for each; then the phash
    union threshold and the min2 looser threshold, each given the previous choices.
    """
    concat = [s for s in concat if s in cands.sims]
    weights = {s: (1.0 if i == 0 else 0.0) for i, s in enumerate(concat)}
    best_f1, recipe = -1.0, None
    for name in concat[1:] * 2:                      # coordinate search, two passes over the extra signals
        for w in grid.weights:
            trial = {**weights, name: w}
            score = fused_score(cands, trial)
            for t in grid.threshold_values:
                r = Recipe(weights=trial, threshold=float(t), unit_filter=unit_filter)
                f1 = pair_scores(cands, keep_pairs(cands, r, score), labels).mean_f1
                if f1 > best_f1:
                    best_f1, recipe = f1, r
        weights = dict(recipe.weights)
    if recipe is None:                               # a single signal: only its threshold to tune
        score = fused_score(cands, weights)
        recipe = max((Recipe(weights=weights, threshold=float(t), unit_filter=unit_filter)
                      for t in grid.threshold_values),
                     key=lambda r: pair_scores(cands, keep_pairs(cands, r, score), labels).mean_f1)
    score = fused_score(cands, recipe.weights)

    def _try(variants):
        nonlocal recipe
        scored = [(pair_scores(cands, keep_pairs(cands, v, score), labels).mean_f1, i) for i, v in enumerate(variants)]
        recipe = variants[max(scored)[1]]

    if union_phash:
        _try([recipe.replace(union={"phash": 1.0 - b / 32.0}) for b in range(grid.phash_max_bits + 1)] + [recipe])
        # re-tune the fused threshold now that phash catches some pairs
        _try([recipe.replace(threshold=float(t)) for t in grid.threshold_values])
    if min2:
        _try([recipe.replace(min2=float(t)) for t in np.round(np.arange(0.0, recipe.threshold, 0.02), 3)])
    return recipe


@dataclass
class TuningPool:
    """The train listings the recipe is tuned on, their signals and candidate pairs (computed once)."""

    encoder: TitleEncoder | None
    signals: Signals
    cands: Candidates
    labels: np.ndarray
    grid: TuningGrid = TuningGrid()
    seed: int = 0

    @classmethod
    def build(cls, train_df, image_embeddings, tune_fraction, seed, title_model, tfidf_config, progress, cache_dir=None,
              grid: TuningGrid = TuningGrid()):
        # seed + 1: the outer train/val split may have used ``seed`` itself, which would put no group in tune_part
        fit_part, tune_part = split_by_group(train_df, test_fraction=tune_fraction, seed=seed + 1)
        if tune_part.empty or fit_part.empty:
            raise ValueError(f"splitting {len(train_df)} train listings left an empty part; "
                             f"use more train groups or another tune_fraction (got {tune_fraction})")
        tune_rows = train_df["label_group"].isin(set(tune_part["label_group"])).to_numpy()
        encoder = (fitted_encoder(fit_part["title"], fit_part["label_group"], title_model, cache_dir, progress)
                   if title_model and has_titles(fit_part) else None)
        return cls.of(tune_part, encoder, subset_images(image_embeddings, tune_rows), tfidf_config, grid, seed,
                      progress)

    @classmethod
    def of(cls, pool: pd.DataFrame, encoder: TitleEncoder | None, images, tfidf_config: TfidfConfig = TfidfConfig(),
           grid: TuningGrid = TuningGrid(), seed: int = 0, progress: bool = False) -> "TuningPool":
        """These labelled listings as a tuning pool (signals and candidates computed once, searched within the pool)."""
        signals = compute_signals(pool, encoder, tfidf_config, images)
        return cls(encoder, signals, candidate_pairs(signals, MAX_MATCHES, progress), pool["label_group"].to_numpy(),
                   grid, seed)

    @property
    def signal_names(self) -> list[str]:
        return [s for s in ("tfidf", "title", "image", "phash") if s in self.cands.sims]

    def f1(self, cands: Candidates, recipe: Recipe) -> float:
        return self.scores(cands, recipe).mean_f1

    def scores(self, cands: Candidates, recipe: Recipe, score: np.ndarray | None = None) -> Scores:
        return pair_scores(cands, keep_pairs(cands, recipe, score), self.labels)

    def wins(self, new: Scores, old: Scores) -> bool:
        """Keep an optional step only when it beats going without on the mean **and** in most of
        ``grid.step_folds`` folds of the pool's label groups: a step that wins on one lucky subset of
        groups is noise, and it costs on an unseen pool."""
        k = self.grid.step_folds
        gains = new.fold_f1(self.labels, k, self.seed) - old.fold_f1(self.labels, k, self.seed)
        return new.mean_f1 > old.mean_f1 and int(np.sum(gains > 0)) > len(gains) // 2

    def tune(self, *, concat: Sequence[str], union_phash: bool = False, min2: bool = False,
             unit_filter: bool | None = False, blend: bool | None = False) -> Recipe:
        """Best recipe for one family of rules. ``unit_filter`` / ``blend``: True always, False never, None only
        where the step wins on this pool (:meth:`wins`)."""
        filters = (False, True) if unit_filter is None else (bool(unit_filter),)

        def _tuned(cands):
            options = [tune_recipe(cands, self.labels, concat=concat, union_phash=union_phash, min2=min2,
                                   unit_filter=u, grid=self.grid) for u in filters]
            chosen = options[0]
            for other in options[1:]:        # the unit filter, when optional, must win across group folds
                if self.wins(self.scores(cands, other), self.scores(cands, chosen)):
                    chosen = other
            return chosen

        recipe = _tuned(self.cands)
        if blend is False:
            return recipe
        score = fused_score(self.cands, recipe.weights)
        best, best_scores = (None, None) if blend else (recipe, self.scores(self.cands, recipe))
        for t in (recipe.threshold, recipe.threshold + 0.1):
            step = Blend(dict(recipe.weights), float(t), self.grid.blend_top)
            b_cands = candidate_pairs(blend_signals(self.signals, self.cands, score, t, step.top))
            r = _tuned(b_cands).replace(blend=step)
            r_scores = self.scores(b_cands, r)
            if best is None or (r_scores.mean_f1 > best_scores.mean_f1 if blend else self.wins(r_scores, best_scores)):
                best, best_scores = r, r_scores
        return best

    def add_pair_classifier(self, recipe: Recipe, wanted: bool | None,
                            progress: bool = False) -> tuple[Recipe, PairClassifier | None]:
        """Add the pair classifier step to ``recipe`` (``wanted`` True: always, None: if it wins, False: never).

        Its decision thresholds are tuned on out-of-fold probabilities (group K-fold
        inside this pool), and it keeps those fold models to predict with
        (:meth:`samesame.pairs.PairClassifier.out_of_fold`).
        """
        if wanted is False:
            return recipe, None
        signals, cands, score = pool_candidates(self.signals, recipe)
        _, codes = np.unique(self.labels, return_inverse=True)
        codes = codes.ravel()
        same = codes[cands.rows] == codes[cands.cols]
        # pairs far below every matching pair's fused score are left out (p = 0): most candidates, few matches
        floor = float(np.quantile(score[same], self.grid.pair_floor_quantile)) if same.any() else None
        sub = classified_pairs(score, floor)
        if len(np.unique(same[sub])) < 2:      # a small pool where every pair above the floor matches
            floor, sub = None, classified_pairs(score, None)
        x, names = pair_classifier_features(signals, cands, score, sub)
        clf = self.grid.pair_classifier(self.seed)
        folds = np.minimum(codes[cands.rows], codes[cands.cols])[sub]       # (i, j) and (j, i) share a fold
        p = pair_probability(cands, sub, clf.out_of_fold(x, same[sub], folds, names, progress=progress))
        step = tune_pair_step(cands, p, self.labels, self.grid).replace(floor=floor)
        if wanted is None and not self.wins(self.scores(cands, step.rule(), p), self.scores(cands, recipe, score)):
            return recipe, None
        return recipe.replace(pair_classifier=step), clf



def has_titles(df: pd.DataFrame) -> bool:
    """Whether any listing has a title (image-only data has none: no title signal, no title encoder)."""
    return bool(df["title"].fillna("").astype(str).str.strip().ne("").any())


def subset_images(image_embeddings, rows: np.ndarray):
    """``image_embeddings`` (vectors, ok) restricted to ``rows`` (a boolean mask or positions); None stays None."""
    if image_embeddings is None:
        return None
    vectors, ok = image_embeddings
    return np.asarray(vectors)[rows], np.asarray(ok, dtype=bool)[rows]
