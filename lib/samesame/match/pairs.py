"""Second stage: a gradient-boosted classifier that scores every candidate pair (i, j).

A single fused-similarity threshold treats every pair alike, but whether 0.5
cosine means "same product" depends on context: how close i's *best* other
listing is, where j ranks in i's list (and i in j's), how crowded i's
neighbourhood is, whether both titles state different sizes. Those features are
relative to each listing's own neighbours, so they move much less than raw
similarities when the searched pool grows from thousands to 70,000 listings.
The top Kaggle solutions scored candidate pairs this way; here the classifier
is sklearn's HistGradientBoostingClassifier (fast on 2 cores, handles a missing
image similarity as NaN), kept, saved and evaluated as plain arrays
(:class:`samesame.match.trees.BoostedTrees`).

Pairs are directed (both directions present, as in :class:`samesame.match.candidates.Candidates`);
:func:`symmetric_probability` averages p(i, j) and p(j, i), so the match relation stays symmetric.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.model_selection import GroupKFold
from tqdm.auto import tqdm

from samesame.match.trees import REFIT, BoostedTrees
from samesame.text.titles import char_tfidf

DENSITY_LEVELS = (0.4, 0.6, 0.8)   # fused-score levels whose neighbour counts describe a listing's crowd
NEIGHBOURHOOD_TOP = 16             # neighbours per listing in its neighbourhood profile
DENSE_CHUNK_BYTES = 1 << 20        # pair_dot: dense rows gathered per side and chunk
SETTINGS_FILE, TREES_FILE = "pair_classifier.json", "models.npz"
OLD_PICKLE = "models.joblib"       # what samesame saved before the trees were arrays: never read


def pair_dot(emb, rows: np.ndarray, cols: np.ndarray, chunk: int | None = None) -> np.ndarray:
    """Row-wise dot products emb[rows] . emb[cols] (sparse or dense), in chunks of pairs.

    Dense rows are gathered about 1 MB a side at a time, so they stay in cache: 1M pairs of 384-d
    float32 took 0.6-0.8 s in chunks of 512 pairs against 2.1 s in chunks of 65,536 (and the
    fit computes hundreds of such sums). Sparse rows go 65,536 pairs at a time (scipy's
    per-call cost dominates smaller chunks). The sums are the same whatever the chunk.

    Candidate pairs (sorted, both directions present) are summed one direction only and mirrored: the
    product is symmetric, and the fit takes such sums ~200 times on pools of millions of pairs."""
    mirror = _mirror(rows, cols, emb.shape[0])
    if mirror is not None:
        out = np.empty(len(rows), dtype=np.float32)
        half = np.flatnonzero(rows <= cols)
        out[half] = pair_dot(emb, rows[half], cols[half], chunk)
        out[mirror[half]] = out[half]
        return out
    if chunk is None:
        chunk = 1 << 16 if sp.issparse(emb) else max(1, DENSE_CHUNK_BYTES // (emb.shape[1] * emb.itemsize))
    out = np.empty(len(rows), dtype=np.float32)
    for s in range(0, len(rows), chunk):
        a, b = emb[rows[s:s + chunk]], emb[cols[s:s + chunk]]
        out[s:s + chunk] = np.asarray(a.multiply(b).sum(1)).ravel() if sp.issparse(emb) else np.einsum("ij,ij->i", a, b)
    return out


def reverse_index(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """Position of pair (j, i) for every pair (i, j); candidates always hold both directions.

    Candidate pairs come sorted by (row, col) and unique: there, the positions are read off the transpose of
    the sparse matrix of positions (a counting sort, O(pairs)), ~10x faster than searching every reverse key."""
    keys = rows.astype(np.int64) * n + cols
    if _sorted_unique(keys):
        mirror = _mirror(rows, cols, n)
        if mirror is None:
            raise ValueError("candidate pairs are not symmetric: every (i, j) needs its (j, i)")
        return mirror
    order = np.argsort(keys, kind="stable")
    pos = np.searchsorted(keys[order], cols.astype(np.int64) * n + rows)
    if len(keys) and (pos.max() >= len(keys) or not np.array_equal(keys[order][pos], cols.astype(np.int64) * n + rows)):
        raise ValueError("candidate pairs are not symmetric: every (i, j) needs its (j, i)")
    return order[pos]


def row_order(rows: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Pair positions sorted by row, then by decreasing score (NaN last, ties in input order):
    ``np.lexsort((-score, rows))`` as one stable sort of a 64-bit key (row in the top bits, the score's
    order-preserving bits below), 2-3x faster on the millions of candidate pairs the fit ranks hundreds of times.

    Exact for float32 scores; a float64 score keeps its top 64 - bits(n) bits (relative 1e-11 at 70,000
    listings), so two float64 scores closer than that keep their input order."""
    rows = np.asarray(rows)
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64)
    shift = max(int(rows.max()).bit_length(), 1)
    if shift > 32 or rows.min() < 0:
        return np.lexsort((-np.nan_to_num(score, nan=-np.inf), rows))
    value = np.nan_to_num(np.asarray(score, dtype=np.float64), nan=-np.inf) + 0.0      # -0.0 -> +0.0, as lexsort
    bits = value.view(np.uint64)
    ascending = np.where(bits >> np.uint64(63), ~bits, bits | np.uint64(1 << 63))
    key = (~ascending >> np.uint64(shift)) | (rows.astype(np.uint64) << np.uint64(64 - shift))
    return np.argsort(key, kind="stable")


def _sorted_unique(keys: np.ndarray) -> bool:
    return len(keys) > 1 and bool(np.all(keys[1:] > keys[:-1]))


def _mirror(rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray | None:
    """Position of (j, i) for every pair (i, j) of pairs sorted by (row, col), unique and symmetric, read off the
    transpose of the sparse matrix of positions (a counting sort, O(pairs)); None for any other pairs."""
    if not _sorted_unique(rows.astype(np.int64) * n + cols):
        return None
    indptr = np.r_[0, np.cumsum(np.bincount(rows, minlength=n))]
    flipped = sp.csr_matrix((np.arange(1, len(rows) + 1), cols, indptr), shape=(n, n)).T.tocsr()
    if not (np.array_equal(flipped.indptr, indptr) and np.array_equal(flipped.indices, cols)):
        return None
    return flipped.data - 1


def rank_in_row(rows: np.ndarray, sim: np.ndarray) -> np.ndarray:
    """0 for each row's most similar candidate, 1 for the next... (NaN similarity ranks last)."""
    order = row_order(rows, sim)
    counts = np.bincount(rows)
    first = np.cumsum(counts) - counts                   # position of each row's first pair in ``order``
    rank = np.empty(len(rows), dtype=np.float32)
    rank[order] = np.arange(len(rows)) - first[rows[order]]
    return rank


def row_best(rows: np.ndarray, sim: np.ndarray, n: int) -> np.ndarray:
    """Each listing's best non-self candidate similarity (NaN when it has none)."""
    best = np.full(n, -np.inf, dtype=np.float32)
    np.maximum.at(best, rows, np.nan_to_num(sim, nan=-np.inf))
    best[np.isinf(best)] = np.nan
    return best


@dataclass
class TitleTokens:
    """Per-listing token matrices of normalised titles, for set overlaps computed as sparse dot products."""

    words: sp.csr_matrix     # binary word presence
    numbers: sp.csr_matrix   # binary presence of numeric tokens (sizes, model numbers)
    chars: sp.csr_matrix     # unit-length char 2-4-gram TF-IDF (robust to typos and glued words)
    title_id: np.ndarray     # equal ids <=> identical normalised titles

    @classmethod
    def from_titles(cls, normalized: Sequence[str]) -> "TitleTokens":
        docs = [t if t else "_" for t in normalized]      # empty titles still get a row
        chars = char_tfidf(docs)
        _, title_id = np.unique(np.asarray(docs, dtype=object), return_inverse=True)
        return cls(_token_presence(docs, r"\S+"), _token_presence(docs, r"(?<!\S)\d+(?:\.\d+)?(?!\S)"),
                   sp.csr_matrix(chars), title_id.ravel())


def _token_presence(docs: Sequence[str], pattern: str) -> sp.csr_matrix:
    """Binary doc x token matrix; a pool with no such token (no numbers at all) gets one empty column."""
    try:
        return sp.csr_matrix(CountVectorizer(token_pattern=pattern, binary=True, dtype=np.float32).fit_transform(docs))
    except ValueError:      # sklearn: "empty vocabulary"
        return sp.csr_matrix((len(docs), 1), dtype=np.float32)


def pair_features(rows: np.ndarray, cols: np.ndarray, n: int, sims: dict[str, np.ndarray], conflict: np.ndarray,
                  tokens: TitleTokens, subset: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """Feature matrix (pairs, features) float32 and the feature names.

    ``sims`` holds every signal's similarity per pair, including the fused score
    under the key "fused" (density is counted on it). Per signal: the similarity,
    j's rank in i's list and i's in j's, and the similarity minus i's and j's best
    candidate similarity (pool-relative). Per pair: title overlaps and the unit conflict.
    ``subset`` (positions): features of those pairs only; ranks, bests and densities still
    count every candidate, so a pair's features do not depend on the subset.
    """
    sub = np.arange(len(rows)) if subset is None else np.asarray(subset)
    r, c = rows[sub], cols[sub]
    rev = reverse_index(rows, cols, n)[sub]
    char = pair_dot(tokens.chars, rows, cols)
    cols_out: dict[str, np.ndarray] = {}
    for name, sim in {**sims, "char": char}.items():
        rank = rank_in_row(rows, sim)
        best = row_best(rows, sim, n)
        s = sim[sub]
        cols_out.update({name: s, f"{name}_rank_ij": rank[sub], f"{name}_rank_ji": rank[rev],
                         f"{name}_rel_i": s - best[r], f"{name}_rel_j": s - best[c]})
    fused = np.nan_to_num(sims["fused"], nan=-np.inf)
    for level in DENSITY_LEVELS:
        linked = fused >= level
        count = np.bincount(rows[linked], minlength=n).astype(np.float32)
        cols_out.update({f"density{level}_i": count[r], f"density{level}_j": count[c],
                         f"common{level}": pair_dot(_adjacency(rows[linked], cols[linked], np.ones(linked.sum()), n),
                                                    r, c)})
    cols_out["neighbourhood_cos"] = pair_dot(_neighbourhood_profiles(rows, fused, cols, n), r, c)
    cols_out.update(_title_overlaps(r, c, tokens))
    cols_out["unit_conflict"] = conflict[sub].astype(np.float32)
    names = list(cols_out)
    x = np.empty((len(sub), len(names)), dtype=np.float32)
    for j, k in enumerate(names):
        x[:, j] = cols_out[k]
    return x, names


def _adjacency(rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n: int) -> sp.csr_matrix:
    """Sparse n x n matrix of the given pairs plus self loops (value 1)."""
    return sp.csr_matrix((np.r_[values, np.ones(n)].astype(np.float32), (np.r_[rows, np.arange(n)],
                                                                         np.r_[cols, np.arange(n)])), shape=(n, n))


def _neighbourhood_profiles(rows: np.ndarray, fused: np.ndarray, cols: np.ndarray, n: int) -> sp.csr_matrix:
    """Unit rows of each listing's top fused scores: two listings of one product share neighbours,
    so the cosine of their profiles ("second-order similarity") confirms a weak direct link."""
    top = rank_in_row(rows, fused) < NEIGHBOURHOOD_TOP
    prof = _adjacency(rows[top], cols[top], np.clip(fused[top], 0.0, None), n)
    norms = np.sqrt(np.asarray(prof.multiply(prof).sum(1)).ravel())
    return sp.csr_matrix(sp.diags(1.0 / norms) @ prof)


def _title_overlaps(rows: np.ndarray, cols: np.ndarray, tokens: TitleTokens) -> dict[str, np.ndarray]:
    """Word Jaccard, length ratio, identical titles, shared numbers and a "numbers disagree" flag."""
    n_words = np.asarray(tokens.words.sum(1)).ravel().astype(np.float32)
    n_nums = np.asarray(tokens.numbers.sum(1)).ravel().astype(np.float32)
    shared_words = pair_dot(tokens.words, rows, cols)
    shared_nums = pair_dot(tokens.numbers, rows, cols)
    a, b = n_words[rows], n_words[cols]
    return {
        "word_jaccard": shared_words / np.maximum(a + b - shared_words, 1.0),
        "length_ratio": np.minimum(a, b) / np.maximum(np.maximum(a, b), 1.0),
        "same_title": (tokens.title_id[rows] == tokens.title_id[cols]).astype(np.float32),
        "shared_numbers": shared_nums,
        "numbers_mismatch": ((n_nums[rows] > 0) & (n_nums[cols] > 0) & (shared_nums == 0)).astype(np.float32),
    }


def _stopping_pairs(same: np.ndarray, groups: np.ndarray, seed: int, share: float = 0.1) -> np.ndarray | None:
    """Mask of the pairs of a random ``share`` of the label groups (the early-stopping set), or None when those
    pairs or the rest would lack a matching or a non-matching pair (a tiny pool: no early stopping)."""
    unique = np.unique(groups)
    held = np.random.default_rng(seed).permutation(unique)[:max(1, int(round(share * len(unique))))]
    stop = np.isin(groups, held)
    if any(len(np.unique(same[part])) < 2 for part in (stop, ~stop)):
        return None
    return stop


def _setting_names() -> list[str]:
    """PairClassifier's fields that pair_classifier.json holds (all but the trees)."""
    return [f.name for f in fields(PairClassifier) if f.name != "trees"]


def symmetric_probability(p: np.ndarray, rows: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """Mean of p(i, j) and p(j, i): the directed features differ, the decision must not."""
    return 0.5 * (p + p[reverse_index(rows, cols, n)])


@dataclass
class PairClassifier:
    """Gradient-boosted trees on :func:`pair_features`; remembers the feature names it was trained on.

    The fold models train with scikit-learn and are kept as :class:`BoostedTrees` (plain arrays), which predict
    with numpy, equal to sklearn's ``predict_proba`` bit for bit: a saved classifier loads and predicts without
    scikit-learn and without unpickling anything."""

    max_iter: int = 300
    learning_rate: float = 0.1
    max_leaf_nodes: int = 63
    seed: int = 0
    patience: int = 0          # > 0: stop a fold model once this many trees in a row fail to lower the loss on
                               # label groups held out of its training pairs (0: always grow max_iter trees)
    feature_names: list[str] = field(default_factory=list)
    trees: BoostedTrees | None = None     # the fold models; predictions average them

    def _new_model(self, early_stopping: bool = False) -> HistGradientBoostingClassifier:
        return HistGradientBoostingClassifier(max_iter=self.max_iter, learning_rate=self.learning_rate,
                                              max_leaf_nodes=self.max_leaf_nodes, early_stopping=early_stopping,
                                              n_iter_no_change=max(self.patience, 1), random_state=self.seed)

    def _fitted(self, x: np.ndarray, same: np.ndarray, groups: np.ndarray) -> HistGradientBoostingClassifier:
        """A new model trained on these pairs; a feature with fewer than two distinct finite values (e.g. image
        similarity when almost no pair has two usable images) becomes a constant, which sklearn can bin.

        With ``patience``, a tenth of the label groups is held out as the stopping set: a random tenth of the
        pairs would share groups with the trees' own pairs and stop too late (it reads memorised groups as
        learned). The trees stop where the loss on unseen groups stops falling: the fit's pair-classifier stage
        on the 24k shopee-dev table went from 13.9 to 9.4 min, same recipe and estimate."""
        x = np.where(np.isfinite(x), x, np.nan)
        degenerate = ~(np.fmin.reduce(x, axis=0) < np.fmax.reduce(x, axis=0))   # NaN-skipping; all-NaN -> NaN
        x = np.where(degenerate, 0.0, x)
        stop = _stopping_pairs(same, groups, self.seed) if self.patience > 0 else None
        if stop is None:
            return self._new_model().fit(x, same)
        return self._new_model(early_stopping=True).fit(x[~stop], same[~stop], X_val=x[stop], y_val=same[stop])

    def predict_each(self, x: np.ndarray, feature_names: list[str]) -> list[np.ndarray]:
        """p(same product) per pair from each fold model; the features must be the trained ones, in order."""
        if self.trees is None:
            raise RuntimeError("PairClassifier used before out_of_fold() trained it: train it on train pairs first")
        if list(feature_names) != self.feature_names or np.ndim(x) != 2 or np.shape(x)[1] != len(feature_names):
            raise ValueError(f"pair features {feature_names} (x of shape {np.shape(x)}) differ from the trained ones "
                             f"{self.feature_names}; predict with the same signals (images, learned title) the "
                             "matcher was fit with")
        return [p.astype(np.float32) for p in self.trees.predict_proba(x)]

    def predict_proba(self, x: np.ndarray, feature_names: list[str]) -> np.ndarray:
        """The fold models' mean p(same product) per pair."""
        return np.mean(self.predict_each(x, feature_names), axis=0)

    def save(self, folder: str | Path) -> Path:
        """``pair_classifier.json`` (settings, feature names) + ``models.npz`` (the fold models' trees)."""
        if self.trees is None:
            raise RuntimeError("PairClassifier.save called before out_of_fold() trained it")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / SETTINGS_FILE).write_text(json.dumps({k: getattr(self, k) for k in _setting_names()}, indent=2))
        self.trees.save(folder / TREES_FILE)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "PairClassifier":
        """What :meth:`save` wrote, read as JSON and plain arrays (nothing in the files runs); a missing, damaged
        or edited file raises an error naming it and the fix. A folder of an older samesame, whose fold models
        are a pickle (``models.joblib``), is refused unread."""
        folder = Path(folder)
        settings_file, trees_file = folder / SETTINGS_FILE, folder / TREES_FILE
        if not trees_file.exists() and (folder / OLD_PICKLE).exists():
            raise ValueError(f"{folder / OLD_PICKLE} was saved by an older version in a format that can run code "
                             f"(a pickle), so it is not loaded; {REFIT}")
        for path in (settings_file, trees_file):
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found: the saved pair classifier is incomplete; {REFIT}")
        try:
            settings = json.loads(settings_file.read_text())
            classifier = cls(**{name: settings[name] for name in _setting_names()})
            names = classifier.feature_names
            if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
                raise ValueError(f"feature_names = {names!r}, expected a list of names")
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{settings_file} is not what PairClassifier.save writes ({type(err).__name__}: {err}); "
                             f"{REFIT}") from None
        classifier.trees = BoostedTrees.load(trees_file, len(names))
        return classifier

    def out_of_fold(self, x: np.ndarray, same: np.ndarray, pair_groups: np.ndarray, feature_names: list[str],
                    folds: int = 3, progress: bool = False) -> np.ndarray:
        """Train one model per group fold; return each pair's probability from the model that never saw its
        label group.

        The decision threshold is tuned on these, so it is set on pairs scored the way
        unseen test pairs will be, not on pairs the trees memorised. The fold models are
        what the classifier predicts with (their mean), so unseen pairs get probabilities
        calibrated like the tuned ones: one model refit on all pairs was more confident and
        its tuned threshold let in false matches (dev val pool 0.840 vs 0.861 mean F1).
        """
        if len(np.unique(same)) < 2:
            raise ValueError("pair classifier needs both matching and non-matching candidate pairs to train; "
                             "use more train groups")
        folds = min(folds, len(np.unique(pair_groups)))        # a small pool: as many folds as it has groups
        if folds < 2:
            raise ValueError("pair classifier needs candidate pairs of at least 2 label groups to cross-fit; "
                             "use more train groups")
        p = np.empty(len(same), dtype=np.float32)
        models = []
        for fit_idx, held in tqdm(GroupKFold(folds).split(x, same, pair_groups), total=folds, desc="pair folds",
                                  disable=not progress):
            models.append(self._fitted(x[fit_idx], same[fit_idx], pair_groups[fit_idx]))
            p[held] = models[-1].predict_proba(x[held])[:, 1]
        self.feature_names, self.trees = list(feature_names), BoostedTrees.from_sklearn(models)
        return p
