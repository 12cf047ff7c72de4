"""What the match layer is configured with: the fusion steps to use and everything a matcher fit reads.

The settings tree (:class:`samesame.run.settings.Settings`) builds these from configs/base.yaml; they hold no
defaults of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Sequence

import numpy as np

from samesame.match.candidates import SIGNALS
from samesame.match.pairs import PairClassifier
from samesame.text.title_model import TitleModelConfig
from samesame.text.titles import TfidfConfig


@dataclass(frozen=True)
class FusionOptions:
    """Which fusion steps the recipe uses (settings key ``fusion``): True always, False never, None chosen by
    cross-fitting. ``tune_fraction``: the share of train's label groups in half B. ``pool_size``: listings in
    the pool the matcher will face (the fit tunes and scores in pools padded towards it; None: as they are)."""

    tune_fraction: float
    pool_size: int | None
    union_phash: bool
    min2: bool
    unit_filter: bool | None
    local_scale: bool | None
    blend: bool | None
    pair_classifier: bool | None

    @property
    def rule(self) -> dict:
        """The always-on part of every recipe, as :meth:`samesame.match.tuning.TuningPool.tune` options."""
        return dict(concat=list(SIGNALS), union_phash=self.union_phash, min2=self.min2)


@dataclass(frozen=True)
class MatcherOptions:
    """Everything :func:`fit_matcher` is configured with (``Settings.matcher_options``); saved with the matcher
    so that one fitted with other options is refitted, not reused."""

    fusion: FusionOptions
    grid: TuningGrid
    title_model: TitleModelConfig | None     # None: no learned title signal
    title_kind: str                          # which of samesame.text.title_model.TITLE_MODELS
    tfidf: TfidfConfig
    seed: int

    def changed(self, **changes) -> "MatcherOptions":
        """These options with some changed; a :class:`FusionOptions` field (``pair_classifier=True``) changes
        the fusion options."""
        fusion = {k: changes.pop(k) for k in list(changes) if k in {f.name for f in fields(FusionOptions)}}
        return replace(self, fusion=replace(self.fusion, **fusion), **changes)


@dataclass(frozen=True)
class TuningGrid:
    """The search space :func:`samesame.match.selection.fit_matcher` explores on train, and the pair classifier's
    settings (settings key ``tuning``)."""

    thresholds: tuple[float, float, float]      # fused similarity: (start, stop, step)
    weights: tuple[float, ...]                  # coordinate-search grid of concat weights
    phash_max_bits: int                         # phash union: Hamming distances 0..max
    min2_grid: tuple[float, float]              # min2's looser threshold: (start, step) up to the fused threshold
    blend_offsets: tuple[float, ...]            # blending: neighbours within the fused threshold + each offset
    blend_top: int                              # neighbours averaged by blending
    blend_mutual: tuple[bool, ...]              # blending tried with every neighbour (false), mutual ones only (true)
    local_k: int                                # local scale: which neighbour measures a listing's crowding
    local_alphas: tuple[float, ...]             # local scale: strengths tried where the step is on
    probabilities: tuple[float, float, float]   # pair-classifier decision thresholds: (start, stop, step)
    pair_min2_grid: tuple[float, float]         # the pair classifier's min2: (start, step) up to its threshold
    step_folds: int       # group folds an optional step (unit filter, blending, pair classifier) must win
    pair_trees: int
    pair_learning_rate: float
    pair_max_leaf_nodes: int
    pair_patience: int           # trees without a better loss on held-out groups before a fold model stops (0: never)
    pair_floor_quantile: float   # share of matching tuning pairs allowed below the classifier's score floor

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

    @staticmethod
    def below(spec: Sequence[float], stop: float) -> np.ndarray:
        """(start, step) values below ``stop``: the looser thresholds of min2 under a chosen threshold."""
        start, step = spec
        return np.round(np.arange(start, stop, step), 3)

    def pair_classifier(self, seed: int = 0) -> PairClassifier:
        return PairClassifier(max_iter=self.pair_trees, learning_rate=self.pair_learning_rate,
                              max_leaf_nodes=self.pair_max_leaf_nodes, seed=seed,
                              patience=self.pair_patience)
