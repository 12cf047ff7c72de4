"""The fusion recipe as a typed, serialisable value: what :class:`samesame.match.matching.Matcher` applies.

A recipe says which candidate pairs become matches. Every similarity it reads is
"larger = closer" (cosine for embeddings, ``1 - bits/32`` for phash, a probability
for the pair classifier):

* ``weights`` / ``threshold``: keep a pair when the weighted mean of its signals' similarities is >= threshold;
* ``union``: also keep it when one signal alone is >= its own threshold (e.g. phash);
* ``unit_filter``: drop a title-driven pair whose titles state different amounts of one unit;
* ``min2``: a listing left alone keeps its best candidate when that one is >= this looser threshold;
* ``blend``: first replace each embedding by the score-weighted mean of its close neighbours, then search again;
* ``local_scale``: subtract each pair's local crowding from the fused score (CSLS-like: the mean of both listings'
  k-th best candidate score, relative to the tuning pool's), so that a threshold tuned on one pool size holds as the
  pool grows and look-alikes crowd every listing;
* ``pair_classifier``: a trained :class:`samesame.match.pairs.PairClassifier` scores every candidate pair; its
  probability replaces the fused score and :class:`PairStep` holds that decision's thresholds.

Saved as JSON (:meth:`Recipe.to_dict` / :meth:`Recipe.from_dict`). The threshold rule's steps live here whole:
the field, its rule (:func:`keep_pairs`) and its tuning grid (:func:`tune_recipe`); blending and the pair
classifier are tuned in :mod:`samesame.match.tuning`, which picks steps by winning across group folds.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from samesame.core.metrics import scores_from_counts
from samesame.core.splits import label_codes
from samesame.image.phash import phash_similarity
from samesame.match.candidates import SIGNALS, Candidates
from samesame.match.pairs import row_order
from samesame.match.options import TuningGrid

SIMILARITY = (-1.0, 1.0)   # bounds of a similarity threshold (cosine, 1 - bits/32)
PROBABILITY = (0.0, 1.0)   # bounds of a pair-classifier threshold


@dataclass(frozen=True)
class Blend:
    """Neighbourhood blending before the final search: fused ``weights``, neighbours >= ``threshold``, at most ``top``.
    ``mutual``: only neighbours that also count this listing among their ``top`` (a crowd of look-alikes in a large
    pool then cannot pull a listing towards it unless the listing is one of theirs too)."""

    weights: dict[str, float]
    threshold: float
    top: int = 8
    mutual: bool = False


@dataclass(frozen=True)
class LocalScale:
    """Pool-adaptive score: ``fused - alpha * (mean of i's and j's k-th best candidate score - offset)``.

    A listing's k-th best candidate (k above most group sizes) is a look-alike of another product, so its
    score measures how crowded the listing's neighbourhood is; it rises as the pool grows, and the threshold
    with it. ``offset``: the tuning pool's mean crowding, so the threshold keeps the fused score's scale there.
    """

    k: int
    alpha: float
    offset: float


@dataclass(frozen=True)
class PairStep:
    """The pair classifier's decision: probability >= ``threshold``; lonely listings keep their best pair >= ``min2``.

    ``floor``: pairs whose fused score is below it are not classified (probability 0); set at fit time
    so that almost no matching train pair lies below it (None: every candidate pair is classified).
    """

    threshold: float
    min2: float | None = None
    floor: float | None = None

    def replace(self, **changes) -> "PairStep":
        return dataclasses.replace(self, **changes)

    def rule(self) -> "Recipe":
        """The same decision as a recipe applied to the probabilities (no union, no unit filter)."""
        return Recipe(weights={}, threshold=self.threshold, min2=self.min2)


@dataclass(frozen=True)
class Recipe:
    """Which candidate pairs match (see the module docstring); tuned on train by :mod:`samesame.match.tuning`."""

    weights: dict[str, float]
    threshold: float
    union: dict[str, float] = field(default_factory=dict)
    unit_filter: bool = False
    min2: float | None = None
    blend: Blend | None = None
    pair_classifier: PairStep | None = None
    local_scale: LocalScale | None = None

    def replace(self, **changes) -> "Recipe":
        return dataclasses.replace(self, **changes)

    @property
    def name(self) -> str:
        """Short method name for tables and metrics.json, e.g. ``blend(tfidf+phash)|phash+units+min2+pair_classifier``."""
        body = "+".join(s for s, w in self.weights.items() if w > 0)
        blend = "mutual_blend" if self.blend and self.blend.mutual else "blend"
        name = f"{blend}({body})" if self.blend else f"concat({body})"
        name += "".join(f"|{s}" for s in self.union)
        name += "+local" if self.local_scale else ""
        name += "+units" if self.unit_filter else ""
        name += "+min2" if self.min2 is not None else ""
        return name + ("+pair_classifier" if self.pair_classifier else "")

    def searched_signals(self) -> set[str]:
        """Signals whose kNN can bring a pair this recipe may keep: weighted (here or in the blend
        pass) or in the union. A weight-0 signal (often the learned title) costs no search."""
        names = {s for s, w in self.weights.items() if w > 0} | set(self.union)
        if self.blend:
            names |= {s for s, w in self.blend.weights.items() if w > 0}
        return names

    # ------------------------------------------------------------ serialisation

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (``None`` for absent steps)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: "dict | Recipe", source: str | Path | None = None) -> "Recipe":
        """From :meth:`to_dict` output (or a hand-written dict with at least ``weights`` and ``threshold``).

        Every value is checked, because a hand-edited recipe.json otherwise loads quietly wrong
        (``"false"`` is truthy, a NaN threshold keeps nothing): a ValueError names ``source``, the
        key, the value and the fix. Recipes built in code (``Recipe(...)``) are trusted as they are.
        """
        if isinstance(d, Recipe):
            return d
        check = _Checker(source)
        d = check.mapping(d, None, required=("weights", "threshold"), known=[f.name for f in dataclasses.fields(cls)])
        blend, step, local = d.get("blend"), d.get("pair_classifier"), d.get("local_scale")
        return cls(weights=check.weights(d["weights"], "weights"),
                   threshold=check.keep(d["threshold"], "threshold"),
                   union=check.thresholds(d.get("union"), "union"),
                   unit_filter=check.boolean(d.get("unit_filter", False), "unit_filter"),
                   min2=check.optional(d.get("min2"), "min2", SIMILARITY),
                   blend=None if blend is None else check.blend(blend),
                   pair_classifier=None if step is None else check.pair_step(step),
                   local_scale=None if local is None else check.local_scale(local))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        """A saved recipe, checked (see :meth:`from_dict`); unreadable JSON names the file, the line and the fix."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: refit with make fit")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}): "
                             f"{_fix('the JSON', path)}") from None
        except UnicodeDecodeError as err:
            raise ValueError(f"{path} is not UTF-8 text (byte {err.start}): {_fix('the file', path)}") from None
        return cls.from_dict(d, source=path)


def _fix(key: str, source: str | Path | None) -> str:
    return f"refit with make fit, or correct {key} in {source or 'the recipe'}"


class _Checker:
    """Reads one recipe dict value by value; each check raises a ValueError naming the source, the key,
    the value, what was expected and the fix."""

    def __init__(self, source: str | Path | None):
        self.source = source

    def _say(self, key: str | None, problem: str):
        """Raise for ``key`` (None: the whole recipe)."""
        where = f"{self.source}: " if self.source else ""
        what = "the recipe" if key is None else f"recipe key {key!r}"
        raise ValueError(f"{where}{what} {problem}; {_fix(key or 'the recipe', self.source)}")

    def fail(self, key: str | None, value, expected: str):
        self._say(key, f"= {json.dumps(value, default=repr)} is not valid: expected {expected}")

    def mapping(self, d, key: str | None, required: tuple[str, ...] = (), known: list[str] | None = None,
                noun: str = "recipe keys") -> dict:
        """``d`` is a JSON object holding the ``required`` keys and only ``known`` ones (when given)."""
        if not isinstance(d, dict):
            self.fail(key, d, "a JSON object" + (f" with the keys {known}" if known else ""))
        missing = [k for k in required if k not in d]
        if missing:
            self._say(key, f"lacks the keys {missing}")
        unknown = sorted(set(d) - set(known)) if known else []
        if unknown:
            self._say(key, f"has unknown {noun} {unknown} (known: {known})")
        return d

    def number(self, value, key: str, bounds: tuple[float, float] | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                bounds is not None and not bounds[0] <= value <= bounds[1]):
            self.fail(key, value, "a finite number" + (f" in [{bounds[0]:g}, {bounds[1]:g}]" if bounds else ""))
        return float(value)

    def keep(self, value, key: str) -> float:
        """A threshold that decides a match (fused, union, probability): in (0, 1], since at 0 or below every
        candidate pair would match."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:    # NaN fails too
            self.fail(key, value, "a number in (0, 1]: at 0 or below, every candidate pair would match")
        return float(value)

    def optional(self, value, key: str, bounds: tuple[float, float] | None = None) -> float | None:
        return None if value is None else self.number(value, key, bounds)

    def boolean(self, value, key: str) -> bool:
        if not isinstance(value, bool):
            self.fail(key, value, "true or false (a JSON boolean, not a string or a number)")
        return value

    def thresholds(self, d, key: str) -> dict[str, float]:
        """Per-signal similarity thresholds (the union; null or absent: none)."""
        if d is None:
            return {}
        d = self.mapping(d, key, known=list(SIGNALS), noun="signals")
        return {name: self.keep(v, f"{key}.{name}") for name, v in d.items()}

    def weights(self, d, key: str) -> dict[str, float]:
        d = self.mapping(d, key, known=list(SIGNALS), noun="signals")
        weights = {name: self.number(w, f"{key}.{name}", (0.0, math.inf)) for name, w in d.items()}
        if not any(w > 0 for w in weights.values()):
            self.fail(key, d, f"at least one weight > 0 among the signals {list(SIGNALS)}")
        return weights

    def blend(self, d) -> Blend:
        d = self.mapping(d, "blend", required=("weights", "threshold"),
                         known=[f.name for f in dataclasses.fields(Blend)])
        top = d.get("top", Blend.top)
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            self.fail("blend.top", top, "an integer >= 1 (neighbours averaged)")
        mutual = d.get("mutual", Blend.mutual)
        if not isinstance(mutual, bool):
            self.fail("blend.mutual", mutual, "true or false (only neighbours that count this listing among theirs)")
        return Blend(self.weights(d["weights"], "blend.weights"),
                     self.number(d["threshold"], "blend.threshold", SIMILARITY), top, mutual)

    def local_scale(self, d) -> LocalScale:
        d = self.mapping(d, "local_scale", required=("k", "alpha", "offset"),
                         known=[f.name for f in dataclasses.fields(LocalScale)])
        if isinstance(d["k"], bool) or not isinstance(d["k"], int) or d["k"] < 1:
            self.fail("local_scale.k", d["k"], "an integer >= 1 (which neighbour measures the crowding)")
        return LocalScale(d["k"], self.number(d["alpha"], "local_scale.alpha", (0.0, math.inf)),
                          self.number(d["offset"], "local_scale.offset", SIMILARITY))

    def pair_step(self, d) -> PairStep:
        d = self.mapping(d, "pair_classifier", required=("threshold",),
                         known=[f.name for f in dataclasses.fields(PairStep)])
        return PairStep(self.keep(d["threshold"], "pair_classifier.threshold"),
                        self.optional(d.get("min2"), "pair_classifier.min2", PROBABILITY),
                        self.optional(d.get("floor"), "pair_classifier.floor"))


# ---------------------------------------------------------------- the fusion rule


def fused_score(cands: Candidates, weights: dict[str, float]) -> np.ndarray:
    """Weighted mean of the available signals' similarities per pair (a missing image drops out)."""
    num = np.zeros(len(cands.rows), dtype=np.float64)
    den = np.zeros(len(cands.rows), dtype=np.float64)
    for name, w in weights.items():
        if w <= 0 or name not in cands.sims:
            continue
        have = ~np.isnan(cands.sims[name])     # whole-array arithmetic: masked updates were 3x slower
        num += w * np.where(have, cands.sims[name], 0.0)
        den += w * have
    return np.divide(num, den, out=np.full_like(num, -1.0), where=den > 0)


def kth_best(cands: Candidates, score: np.ndarray, k: int) -> np.ndarray:
    """Each listing's k-th best candidate score; NaN when it has fewer than k candidates (a pool of fewer than k + 1
    listings): its worst candidate would then be another product however uncrowded the listing is, and read as
    room to match everything (Kaggle's 3-row public test.csv matched three different products)."""
    order = row_order(cands.rows, score)
    counts = np.bincount(cands.rows, minlength=cands.n)
    first = np.cumsum(counts) - counts
    out = np.full(cands.n, np.nan)
    has = counts >= k
    out[has] = score[order[first[has] + k - 1]]
    return out


def crowding(cands: Candidates, score: np.ndarray, k: int) -> np.ndarray:
    """Per pair, the mean of both listings' k-th best candidate score (what :class:`LocalScale` subtracts); one
    side's where only it has k candidates, NaN where neither has."""
    kth = kth_best(cands, score, k)
    a, b = kth[cands.rows], kth[cands.cols]
    return np.where(np.isnan(a), b, np.where(np.isnan(b), a, 0.5 * (a + b)))


def recipe_score(cands: Candidates, recipe: Recipe) -> np.ndarray:
    """The score the recipe's threshold applies to: the fused score, less the local crowding when it has one."""
    score = fused_score(cands, recipe.weights)
    local = recipe.local_scale
    if local is None:
        return score
    return score - local.alpha * (np.nan_to_num(crowding(cands, score, local.k), nan=local.offset) - local.offset)


def keep_pairs(cands: Candidates, recipe: Recipe | dict, score: np.ndarray | None = None) -> np.ndarray:
    """Boolean mask of the candidate pairs the recipe matches (before the 50 cap)."""
    recipe = Recipe.from_dict(recipe)
    score = recipe_score(cands, recipe) if score is None else score
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
        order = row_order(rows, score)
        return order[np.r_[True, rows[order][1:] != rows[order][:-1]]]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    best = np.maximum.reduceat(score, starts)
    pos = np.where(score == np.repeat(best, np.diff(np.r_[starts, len(rows)])), np.arange(len(rows)), len(rows))
    return np.minimum.reduceat(pos, starts)


def pair_scores(cands: Candidates, keep: np.ndarray, labels: Sequence):
    """Mean F1/precision/recall of a pair mask (self counted), without building match lists; over the scored
    listings only when the pool is padded (``cands.scored``)."""
    sizes, same = _label_pairs(cands, labels)
    n_pred = 1 + np.bincount(cands.rows[keep], minlength=cands.n)
    n_hit = 1 + np.bincount(cands.rows[keep & same], minlength=cands.n)
    rows = scored_rows(cands)
    return scores_from_counts(n_pred[rows], sizes[rows], n_hit[rows])


def scored_rows(cands: Candidates) -> np.ndarray | slice:
    """The listings whose F1 counts: all of them, or those of a padded pool that are not padding."""
    return slice(None) if cands.scored is None else np.flatnonzero(cands.scored)


def threshold_sweep(cands: Candidates, labels: Sequence, score: np.ndarray, thresholds: np.ndarray,
                    unit_filter: bool = False, always: np.ndarray | None = None) -> np.ndarray:
    """Mean F1 of ``score >= t`` for every threshold ``t`` (ascending) at once: pairs whose units conflict
    dropped under the unit filter, pairs in ``always`` kept (a union). Equal, bit for bit, to
    :func:`pair_scores` of :func:`keep_pairs` per threshold, but the pairs are counted once per
    (listing, threshold) instead of one mask per threshold: the tuning's inner loop, ~10x faster."""
    t = np.asarray(thresholds, dtype=np.float64)
    if np.any(np.diff(t) <= 0):
        raise ValueError(f"thresholds must be strictly ascending, got {t.tolist()}")
    sizes, same = _label_pairs(cands, labels)
    levels = np.searchsorted(t, score, side="right")            # how many thresholds each pair reaches
    levels[np.isnan(score)] = 0
    if unit_filter:
        levels[cands.conflict] = 0
    if always is not None:
        levels[always] = len(t)
    width = len(t) + 1

    def reached(mask):       # (listing, threshold index) -> pairs of the listing kept at that threshold
        hist = np.bincount(cands.rows[mask] * width + levels[mask], minlength=cands.n * width).reshape(cands.n, width)
        return np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:]

    rows = scored_rows(cands)
    pred, hit, sizes = reached(slice(None))[rows], reached(same)[rows], sizes[rows]
    return np.array([scores_from_counts(1 + pred[:, j], sizes, 1 + hit[:, j]).mean_f1 for j in range(len(t))])


def _label_pairs(cands: Candidates, labels: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """(group size per listing, same-group flag per pair), cached on ``cands`` for the same labels
    (the tuning grids score thousands of masks on one candidate set)."""
    labels = np.asarray(labels)
    cache = cands.__dict__.setdefault("_label_cache", {})
    hit = cache.get("labels")
    if hit is None or hit[0] is not labels and not np.array_equal(hit[0], labels):
        codes, counts = label_codes(labels)
        cache["labels"] = (labels, counts[codes], codes[cands.rows] == codes[cands.cols])
    return cache["labels"][1], cache["labels"][2]


# ---------------------------------------------------------------- tuning the rule on train


def tune_recipe(cands: Candidates, labels: Sequence, *, concat: Sequence[str], union_phash: bool = False,
                min2: bool = False, unit_filter: bool = False, local_scale: bool = False, grid: TuningGrid) -> Recipe:
    """Grid-search weights and thresholds of one fusion rule on labelled (train) candidates.

    Weights of the ``concat`` signals: coordinate search over a coarse grid (first
    one fixed at 1), the fused threshold over a fine grid for each; then the local
    scale's strength (``local_scale``: the best strength > 0 of the grid), the phash
    union threshold and the min2 looser threshold, each given the previous choices.
    """
    concat = [s for s in concat if s in cands.sims]
    weights = {s: (1.0 if i == 0 else 0.0) for i, s in enumerate(concat)}
    best_f1, recipe = -1.0, None
    thresholds = grid.threshold_values
    for name in concat[1:] * 2:                      # coordinate search, two passes over the extra signals
        for w in grid.weights:
            trial = {**weights, name: w}
            f1 = threshold_sweep(cands, labels, fused_score(cands, trial), thresholds, unit_filter)
            if f1.max() > best_f1:                   # the first best (weights, threshold) in grid order
                best_f1, recipe = f1.max(), Recipe(weights=trial, threshold=float(thresholds[np.argmax(f1)]),
                                                   unit_filter=unit_filter)
        weights = dict(recipe.weights)
    if recipe is None:                               # a single signal: only its threshold to tune
        f1 = threshold_sweep(cands, labels, fused_score(cands, weights), thresholds, unit_filter)
        best_f1 = f1.max()
        recipe = Recipe(weights=weights, threshold=float(thresholds[np.argmax(f1)]), unit_filter=unit_filter)
    if local_scale:
        recipe = _tune_local_scale(cands, labels, recipe, grid)
    score = recipe_score(cands, recipe)

    def _try(variants):
        nonlocal recipe
        scored = [(pair_scores(cands, keep_pairs(cands, v, score), labels).mean_f1, i) for i, v in enumerate(variants)]
        recipe = variants[max(scored)[1]]

    if union_phash:
        _try([recipe.replace(union={"phash": phash_similarity(b)}) for b in range(grid.phash_max_bits + 1)] + [recipe])
        # re-tune the fused threshold now that phash catches some pairs (the last best, as _try picks)
        f1 = threshold_sweep(cands, labels, score, thresholds, recipe.unit_filter,
                             keep_pairs(cands, recipe.replace(threshold=math.inf), score))
        recipe = recipe.replace(threshold=float(thresholds[len(f1) - 1 - np.argmax(f1[::-1])]))
    if min2:
        _try([recipe.replace(min2=float(t)) for t in grid.below(grid.min2_grid, recipe.threshold)])
    return recipe


def _tune_local_scale(cands: Candidates, labels: Sequence, recipe: Recipe, grid: TuningGrid) -> Recipe:
    """``recipe`` with the :class:`LocalScale` strength > 0 (and threshold) that scores best. Whether the step
    is worth it at all is decided across held-out folds (:mod:`samesame.match.selection`), like blending."""
    score = fused_score(cands, recipe.weights)
    kth = kth_best(cands, score, grid.local_k)[scored_rows(cands)]
    offset = float(np.clip(np.nanmean(kth), *SIMILARITY)) if np.isfinite(kth).any() else 0.0
    thresholds, best_f1, best = grid.threshold_values, -1.0, recipe
    for alpha in [a for a in grid.local_alphas if a > 0] or [1.0]:
        trial = recipe.replace(local_scale=LocalScale(grid.local_k, float(alpha), offset))
        f1 = threshold_sweep(cands, labels, recipe_score(cands, trial), thresholds, recipe.unit_filter)
        if f1.max() > best_f1:
            best_f1, best = f1.max(), trial.replace(threshold=float(thresholds[np.argmax(f1)]))
    return best
