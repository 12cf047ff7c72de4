"""The pair classifier's gradient-boosted trees as plain arrays, so a saved matcher loads and predicts with numpy.

A pickled scikit-learn model runs whatever code its file names when it is loaded, and loads only under the
scikit-learn that wrote it. :class:`BoostedTrees` holds what prediction needs of fitted binary
``HistGradientBoostingClassifier`` models (their numeric splits, leaf values and baselines) as arrays of numbers:
saved in an ``.npz`` read with ``allow_pickle=False`` and checked before use (every child index past its parent's
and inside its tree, every feature index inside the feature count), so loading a file runs no code of it and a
damaged one is refused rather than looping or indexing out of bounds.

:meth:`BoostedTrees.predict_proba` follows scikit-learn 1.9.1's ``_predict_one_from_raw_data``: NaN goes where
``missing_go_to_left`` says, any other value left when ``x <= num_threshold`` (compared in float64, as sklearn
converts X), the raw score is the baseline plus each tree's leaf value added in tree order (float64), and the
probability its ``scipy.special.expit``. The result equals sklearn's ``predict_proba`` bit for bit
(``tests/test_pairs.py`` checks it on random data with NaNs and infinities).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from scipy.special import expit

REFIT = "refit the matcher (make fit)"


@dataclass(frozen=True, eq=False)
class BoostedTrees:
    """Fold models' trees, node arrays concatenated: model m's trees are ``model_start[m]:model_start[m + 1]``,
    tree t's nodes ``tree_start[t]:tree_start[t + 1]`` (its root first); ``left``/``right`` are node positions."""

    baseline: np.ndarray       # float64 (models,): each model's raw score before any tree
    model_start: np.ndarray    # int64 (models + 1,)
    tree_start: np.ndarray     # int64 (trees + 1,)
    feature: np.ndarray        # int64 (nodes,): the split's feature column (0 on leaves)
    threshold: np.ndarray      # float64 (nodes,): go left when x <= threshold
    missing_left: np.ndarray   # bool (nodes,): NaN goes left
    left: np.ndarray           # int64 (nodes,)
    right: np.ndarray          # int64 (nodes,)
    value: np.ndarray          # float64 (nodes,): a leaf's addition to the raw score
    is_leaf: np.ndarray        # bool (nodes,)

    @property
    def n_models(self) -> int:
        return len(self.baseline)

    @classmethod
    def from_sklearn(cls, models) -> "BoostedTrees":
        """The trees of fitted binary HistGradientBoostingClassifier models (read from their ``_predictors``,
        scikit-learn 1.9.1's layout); a categorical split has no place here and is refused."""
        nodes, tree_sizes, trees_per_model, baseline = [], [], [], []
        for model in models:
            if model.n_trees_per_iteration_ != 1:
                raise ValueError(f"{type(model).__name__} has {model.n_trees_per_iteration_} trees per iteration; "
                                 "BoostedTrees holds binary classifiers only")
            trees = [predictor.nodes for (predictor,) in model._predictors]
            if any(tree["is_categorical"][~tree["is_leaf"].astype(bool)].any() for tree in trees):
                raise ValueError("a pair classifier tree splits on a categorical feature; BoostedTrees saves numeric "
                                 "splits only: fit the pair classifier on numeric features")
            nodes += trees
            tree_sizes += [len(tree) for tree in trees]
            trees_per_model.append(len(trees))
            baseline.append(float(np.ravel(model._baseline_prediction)[0]))
        tree_start = np.r_[0, np.cumsum(tree_sizes)].astype(np.int64)
        first = np.repeat(tree_start[:-1], tree_sizes)                 # each node's tree offset: children go global
        record = np.concatenate(nodes)
        leaf = record["is_leaf"].astype(bool)
        return cls(baseline=np.asarray(baseline, dtype=np.float64),
                   model_start=np.r_[0, np.cumsum(trees_per_model)].astype(np.int64), tree_start=tree_start,
                   feature=np.where(leaf, 0, record["feature_idx"]).astype(np.int64),
                   threshold=record["num_threshold"].astype(np.float64),
                   missing_left=record["missing_go_to_left"].astype(bool),
                   left=np.where(leaf, 0, record["left"].astype(np.int64) + first),
                   right=np.where(leaf, 0, record["right"].astype(np.int64) + first),
                   value=record["value"].astype(np.float64), is_leaf=leaf)

    # ------------------------------------------------------------ prediction

    def predict_proba(self, x: np.ndarray) -> list[np.ndarray]:
        """p(positive class) per row from each model (float64), as sklearn's ``predict_proba(x)[:, 1]``."""
        columns = [np.ascontiguousarray(x[:, f]) for f in range(x.shape[1])]
        out = []
        for m in range(self.n_models):
            raw = np.full(len(x), self.baseline[m])
            for t in range(self.model_start[m], self.model_start[m + 1]):
                self._add_tree(int(self.tree_start[t]), columns, raw)
            out.append(expit(raw))
        return out

    def _add_tree(self, root: int, columns: list[np.ndarray], raw: np.ndarray) -> None:
        """Add the tree's leaf values to ``raw``: each node splits its rows in two (children lie after their
        parent, so the walk ends) and each row lands in one leaf."""
        values = np.empty_like(raw)
        stack = [(root, None)]                  # None: every row (the root reads whole columns, no gather)
        while stack:
            node, rows = stack.pop()
            if self.is_leaf[node]:
                values[slice(None) if rows is None else rows] = self.value[node]
                continue
            column = columns[self.feature[node]]
            x = column if rows is None else column.take(rows)
            go_left = x <= self.threshold[node]
            if self.missing_left[node]:
                go_left |= np.isnan(x)
            if rows is None:
                left, right = np.flatnonzero(go_left), np.flatnonzero(~go_left)
            else:                               # np.compress: 5x faster than rows[go_left] on a random mask
                left, right = np.compress(go_left, rows), np.compress(~go_left, rows)
            if len(right):
                stack.append((int(self.right[node]), right))
            if len(left):
                stack.append((int(self.left[node]), left))
        raw += values

    # ------------------------------------------------------------ files

    def save(self, path: str | Path) -> Path:
        """One ``.npz`` of the node arrays (numbers only, so :meth:`load` needs no pickle)."""
        path = Path(path)
        np.savez_compressed(path, **{f.name: getattr(self, f.name) for f in fields(self)})
        return path

    @classmethod
    def load(cls, path: str | Path, n_features: int) -> "BoostedTrees":
        """What :meth:`save` wrote, for ``n_features`` input columns; refused with one line naming the file and
        the fix when it is not an .npz of plain arrays (a pickle, an object array: nothing of it runs), lacks an
        array, holds another dtype or shape, or describes trees that would not end or read a missing column."""
        path = Path(path)
        try:
            stored = np.load(path, allow_pickle=False)
            if not isinstance(stored, np.lib.npyio.NpzFile):
                raise ValueError("one array, not an .npz archive")
            with stored:
                arrays = {key: stored[key] for key in stored.files}
        except Exception as err:     # only parses bytes (no pickles): any failure is a damaged or foreign file
            raise ValueError(f"{path} is not an .npz of plain arrays ({type(err).__name__}: {err}); {REFIT}") from None
        problem = _layout_problem(arrays) or _tree_problem(cls(**arrays), n_features)
        if problem:
            raise ValueError(f"{path}: {problem}; {REFIT}")
        return cls(**arrays)


DTYPES = {"baseline": np.float64, "model_start": np.int64, "tree_start": np.int64, "feature": np.int64,
          "threshold": np.float64, "missing_left": np.bool_, "left": np.int64, "right": np.int64,
          "value": np.float64, "is_leaf": np.bool_}
NODE_ARRAYS = ("feature", "threshold", "missing_left", "left", "right", "value", "is_leaf")


def _layout_problem(arrays: dict[str, np.ndarray]) -> str | None:
    """What makes these arrays other than BoostedTrees' fields (names, dtypes, 1-d lengths), or None."""
    if set(arrays) != set(DTYPES):
        missing, unknown = sorted(set(DTYPES) - set(arrays)), sorted(set(arrays) - set(DTYPES))
        return f"missing arrays {missing}, unknown arrays {unknown} (expected {sorted(DTYPES)})"
    for key, dtype in DTYPES.items():
        if arrays[key].dtype != np.dtype(dtype) or arrays[key].ndim != 1:
            return f"array {key!r} is {arrays[key].dtype} of shape {arrays[key].shape}, expected 1-d {np.dtype(dtype)}"
    lengths = {"model_start": len(arrays["baseline"]) + 1, **{key: len(arrays["feature"]) for key in NODE_ARRAYS}}
    wrong = {key: (len(arrays[key]), n) for key, n in lengths.items() if len(arrays[key]) != n}
    return f"array lengths (found, expected) {wrong} disagree" if wrong else None


def _tree_problem(trees: BoostedTrees, n_features: int) -> str | None:
    """What would make prediction fail or loop: offsets out of order, a child at or before its parent or outside
    its tree, a feature column outside ``n_features``, a NaN threshold or a non-finite value; None when sound."""
    n_nodes = len(trees.feature)
    for name, starts, end in (("model_start", trees.model_start, len(trees.tree_start) - 1),
                              ("tree_start", trees.tree_start, n_nodes)):
        if len(starts) < 2 or starts[0] != 0 or starts[-1] != end or np.any(np.diff(starts) <= 0):
            return f"{name} is not increasing from 0 to {end}"
    sizes = np.diff(trees.tree_start)
    tree_end = np.repeat(trees.tree_start[1:], sizes)
    node = np.arange(n_nodes)
    split = ~trees.is_leaf
    for name, child in (("left", trees.left), ("right", trees.right)):
        bad = split & ((child <= node) | (child >= tree_end))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            return (f"node {i}'s {name} child {child[i]} is not after it inside its tree "
                    f"(nodes {i + 1} to {tree_end[i] - 1})")
    bad = split & ((trees.feature < 0) | (trees.feature >= n_features))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        return f"node {i} splits on feature {trees.feature[i]}, but the classifier has {n_features} features"
    if np.isnan(trees.threshold[split]).any():
        return "a split has a NaN threshold"
    if not (np.isfinite(trees.value[trees.is_leaf]).all() and np.isfinite(trees.baseline).all()):
        return "a leaf value or a baseline is not finite"
    return None
