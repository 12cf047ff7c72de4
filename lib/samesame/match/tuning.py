"""Tuning on labelled listings: the steps chosen by winning across group folds (unit filter, blending) and the
pair classifier; the threshold rule's own grids are :func:`samesame.match.recipe.tune_recipe`.

A :class:`TuningPool` is one pool of train listings (searched within itself, as a test set is)
whose signals and candidate pairs are computed once; every grid is scored on it.
:mod:`samesame.match.selection` decides which optional steps ship and fits the matcher.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from samesame.core.metrics import Scores
from samesame.core.neighbors import MAX_MATCHES
from samesame.core.splits import label_codes
from samesame.match.candidates import Candidates, Signals, candidate_pairs, compute_signals
from samesame.match.matching import (blended, classified_pairs, forget_blend, pair_classifier_features, pair_probability,
                                    pool_candidates)
from samesame.match.options import TuningGrid
from samesame.match.pairs import PairClassifier
from samesame.match.recipe import Blend, PairStep, Recipe, keep_pairs, pair_scores, tune_recipe
from samesame.text.title_model import TitleEncoder
from samesame.text.titles import TfidfConfig


def tune_pair_step(cands: Candidates, p: np.ndarray, labels: Sequence, grid: TuningGrid) -> PairStep:
    """The pair classifier's decision on labelled candidates: probability threshold, then min2's looser one."""
    def f1(step: PairStep):
        return pair_scores(cands, keep_pairs(cands, step.rule(), p), labels).mean_f1

    best = max((PairStep(float(t)) for t in grid.probability_values), key=f1)
    loose = [PairStep(best.threshold, float(m)) for m in grid.below(grid.pair_min2_grid, best.threshold)]
    return max([best] + loose, key=f1)



@dataclass
class TuningPool:
    """The train listings the recipe is tuned on, their signals and candidate pairs (computed once)."""

    encoder: TitleEncoder | None
    signals: Signals
    cands: Candidates
    labels: np.ndarray
    grid: TuningGrid
    seed: int
    tuned: dict = field(default_factory=dict, repr=False)   # tune()'s arguments -> its recipe (configurations share)

    @classmethod
    def of(cls, pool: pd.DataFrame, encoder: TitleEncoder | None, images, tfidf_config: TfidfConfig,
           grid: TuningGrid, seed: int, progress: bool = False, scored: np.ndarray | None = None) -> "TuningPool":
        """These labelled listings as a tuning pool (signals and candidates computed once, searched within the pool).
        ``scored``: the listings the recipe is tuned for; the others only pad the pool to the size it will face."""
        signals = compute_signals(pool, encoder, tfidf_config, images)
        signals.scored = scored
        return cls(encoder, signals, candidate_pairs(signals, MAX_MATCHES, progress), pool["label_group"].to_numpy(),
                   grid, seed)

    @property
    def signal_names(self) -> list[str]:
        return [s for s in ("tfidf", "title", "image", "phash") if s in self.cands.sims]

    def f1(self, cands: Candidates, recipe: Recipe) -> float:
        return self.scores(cands, recipe).mean_f1

    def scores(self, cands: Candidates, recipe: Recipe, score: np.ndarray | None = None) -> Scores:
        return pair_scores(cands, keep_pairs(cands, recipe, score), self.labels)

    @property
    def scored_labels(self) -> np.ndarray:
        """The labels of the listings whose F1 counts (a padded pool's padding left out)."""
        scored = None if self.signals is None else self.signals.scored
        return self.labels if scored is None else self.labels[scored]

    def wins(self, new: Scores, old: Scores) -> bool:
        """Keep an optional step only when it beats going without on the mean **and** in most of
        ``grid.step_folds`` folds of the pool's label groups: a step that wins on one lucky subset of
        groups is noise, and it costs on an unseen pool."""
        k, labels = self.grid.step_folds, self.scored_labels
        gains = new.fold_f1(labels, k, self.seed) - old.fold_f1(labels, k, self.seed)
        return new.mean_f1 > old.mean_f1 and int(np.sum(gains > 0)) > len(gains) // 2

    def tune(self, *, concat: Sequence[str], union_phash: bool = False, min2: bool = False,
             unit_filter: bool | None = False, blend: bool | None = False, local_scale: bool = False) -> Recipe:
        """Best recipe for one family of rules. ``unit_filter`` / ``blend``: True always, False never, None only
        where the step wins on this pool (:meth:`wins`); ``local_scale``: on, its strength tuned, or off.
        Each distinct call is tuned once per pool: the step configurations the selection compares share their
        rule (blending starts from the rule without it)."""
        key = (tuple(concat), union_phash, min2, unit_filter, blend, local_scale)
        if key not in self.tuned:
            self.tuned[key] = self._tune(concat, union_phash, min2, unit_filter, blend, local_scale)
        return self.tuned[key]

    def _tune(self, concat: Sequence[str], union_phash: bool, min2: bool, unit_filter: bool | None,
              blend: bool | None, local_scale: bool) -> Recipe:
        filters = (False, True) if unit_filter is None else (bool(unit_filter),)

        def _tuned(cands):
            options = [tune_recipe(cands, self.labels, concat=concat, union_phash=union_phash, min2=min2,
                                   unit_filter=u, local_scale=local_scale, grid=self.grid) for u in filters]
            chosen = options[0]
            for other in options[1:]:        # the unit filter, when optional, must win across group folds
                if self.wins(self.scores(cands, other), self.scores(cands, chosen)):
                    chosen = other
            return chosen

        if blend is False:
            return _tuned(self.cands)
        recipe = self.tune(concat=concat, union_phash=union_phash, min2=min2, unit_filter=unit_filter, blend=False,
                           local_scale=local_scale)
        best, best_scores = (None, None) if blend else (recipe, self.scores(self.cands, recipe))
        for mutual, t in ((m, recipe.threshold + offset) for m in self.grid.blend_mutual
                          for offset in self.grid.blend_offsets):
            step = Blend(dict(recipe.weights), float(t), self.grid.blend_top, bool(mutual))
            _, b_cands = blended(self.signals, self.cands, step)
            r = _tuned(b_cands).replace(blend=step)
            r_scores = self.scores(b_cands, r)
            if best is None or (r_scores.mean_f1 > best_scores.mean_f1 if blend else self.wins(r_scores, best_scores)):
                if best is not None and best.blend:
                    forget_blend(self.signals, best.blend)
                best, best_scores = r, r_scores
            else:
                forget_blend(self.signals, step)
        return best

    def add_pair_classifier(self, recipe: Recipe, wanted: bool | None,
                            progress: bool = False) -> tuple[Recipe, PairClassifier | None]:
        """Add the pair classifier step to ``recipe`` (``wanted`` True: always, None: if it wins, False: never).

        Its decision thresholds are tuned on out-of-fold probabilities (group K-fold
        inside this pool), and it keeps those fold models to predict with
        (:meth:`samesame.match.pairs.PairClassifier.out_of_fold`).
        """
        if wanted is False:
            return recipe, None
        signals, cands, score = pool_candidates(self.signals, recipe)
        codes, _ = label_codes(self.labels)
        same = codes[cands.rows] == codes[cands.cols]
        # a padded pool: the pairs of its scored listings (both directions), the padding's look-alikes included
        touch = np.ones(len(same), bool) if cands.scored is None else cands.scored[cands.rows] | cands.scored[cands.cols]
        # pairs far below every matching pair's fused score are left out (p = 0): most candidates, few matches
        floor = float(np.quantile(score[same & touch], self.grid.pair_floor_quantile)) if (same & touch).any() else None
        sub = np.intersect1d(classified_pairs(score, floor), np.flatnonzero(touch))
        if len(np.unique(same[sub])) < 2:      # a small pool where every pair above the floor matches
            floor, sub = None, np.flatnonzero(touch)
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
