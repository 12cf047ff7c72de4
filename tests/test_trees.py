"""The pair classifier's trees as arrays: sklearn's predictions bit for bit, and a saved file that is checked
before use and never runs code of its own."""

import pickle
import re

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from samesame.match.pairs import PairClassifier
from samesame.match.trees import BoostedTrees

N_FEATURES = 4


def _data(n, seed):
    """Random features with NaNs and infinities, and a label that needs several of them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    x[rng.random(x.shape) < 0.15] = np.nan
    x[rng.random(x.shape) < 0.01] = np.inf
    x[rng.random(x.shape) < 0.01] = -np.inf
    filled = np.nan_to_num(x, nan=0.0, posinf=3.0, neginf=-3.0)
    y = (filled[:, 0] + filled[:, 1] * filled[:, 2] + np.isnan(x[:, 3]) + rng.normal(size=n) > 0.5).astype(int)
    return x, y


@pytest.fixture(scope="module")
def models():
    """Fold-like models: plain, early-stopped and with a leaf budget of 63 (the pair classifier's settings)."""
    x, y = _data(1500, 0)
    x = np.where(np.isfinite(x), x, np.nan)             # as PairClassifier._fitted trains
    return [HistGradientBoostingClassifier(max_iter=40, max_leaf_nodes=63, random_state=0).fit(x, y),
            HistGradientBoostingClassifier(max_iter=60, early_stopping=True, n_iter_no_change=3,
                                           random_state=1).fit(x, y),
            HistGradientBoostingClassifier(max_iter=15, max_leaf_nodes=7, learning_rate=0.3).fit(x[::2], y[::2])]


@pytest.fixture
def saved(models, tmp_path):
    return BoostedTrees.from_sklearn(models).save(tmp_path / "models.npz")


def test_probabilities_equal_sklearns_bit_for_bit_on_nans_and_infinities(models):
    """Known answer: sklearn's own predict_proba. The numpy walk gives identical float64 values (max abs diff 0),
    for float32 and float64 input."""
    x, _ = _data(5000, 1)
    trees = BoostedTrees.from_sklearn(models)
    for features in (x, x.astype(np.float64)):
        for ours, model in zip(trees.predict_proba(features), models):
            np.testing.assert_array_equal(ours, model.predict_proba(features)[:, 1])


def test_saved_trees_load_as_plain_arrays_and_predict_the_same(models, saved):
    x, _ = _data(500, 2)
    with np.load(saved, allow_pickle=False) as stored:
        assert all(stored[key].dtype != object for key in stored.files)
    loaded, original = BoostedTrees.load(saved, N_FEATURES), BoostedTrees.from_sklearn(models)
    np.testing.assert_array_equal(np.stack(loaded.predict_proba(x)), np.stack(original.predict_proba(x)))


def test_a_categorical_split_is_refused_when_saving():
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.integers(0, 5, 400), rng.normal(size=400)])
    model = HistGradientBoostingClassifier(max_iter=5, categorical_features=[0]).fit(x, x[:, 0] % 2)
    with pytest.raises(ValueError, match="categorical feature; BoostedTrees saves numeric splits only"):
        BoostedTrees.from_sklearn([model])


def _edited(path, change):
    """Rewrite the .npz at ``path`` with ``change(arrays)`` applied."""
    with np.load(path) as stored:
        arrays = {key: stored[key] for key in stored.files}
    change(arrays)
    np.savez(path, **arrays)


def _first_split(arrays):
    return int(np.flatnonzero(~arrays["is_leaf"])[0])


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("threshold"), r"missing arrays \['threshold'\]"),
    (lambda a: a.update(extra=np.zeros(1)), r"missing arrays \[\], unknown arrays \['extra'\]"),
    (lambda a: a.update(left=a["left"].astype(np.int32)), "array 'left' is int32 .* expected 1-d int64"),
    (lambda a: a.update(value=a["value"].astype(np.float32)), "array 'value' is float32"),
    (lambda a: a.update(feature=a["feature"][:, None]), r"'feature' is int64 of shape \(\d+, 1\), expected 1-d"),
    (lambda a: a.update(value=a["value"][:-1]), r"lengths \(found, expected\) \{'value': \(\d+, \d+\)\} disagree"),
    (lambda a: a.update(baseline=np.r_[a["baseline"], 0.0]), r"array lengths .*'model_start'"),
    (lambda a: a["left"].__setitem__(_first_split(a), 10 ** 9), "left child 1000000000 is not after it inside"),
    (lambda a: a["right"].__setitem__(_first_split(a), -1), "right child -1 is not after it"),
    (lambda a: a["left"].__setitem__(_first_split(a), _first_split(a)), "left child .* is not after it"),   # a loop
    (lambda a: a["feature"].__setitem__(_first_split(a), N_FEATURES), f"splits on feature {N_FEATURES}, but the "
                                                                       f"classifier has {N_FEATURES} features"),
    (lambda a: a["tree_start"].__setitem__(1, a["tree_start"][2]), "tree_start is not increasing"),
    (lambda a: a["model_start"].__setitem__(-1, 10 ** 6), "model_start is not increasing from 0 to"),
    (lambda a: a["threshold"].__setitem__(_first_split(a), np.nan), "NaN threshold"),
    (lambda a: a["value"].__setitem__(np.flatnonzero(a["is_leaf"])[0], np.inf), "leaf value .* not finite"),
], ids=["no-key", "extra-key", "int32", "float32", "2-d", "short", "baseline", "child-outside", "child-negative",
        "child-itself", "feature", "tree-offsets", "model-offsets", "nan-threshold", "inf-value"])
def test_an_edited_file_is_refused_with_its_name_and_the_fix(saved, change, message):
    _edited(saved, change)
    with pytest.raises(ValueError, match=f"^{re.escape(str(saved))}: .*{message}.*; refit the matcher \\(make fit\\)$"):
        BoostedTrees.load(saved, N_FEATURES)


class _Marker:
    """A pickle that, when loaded, creates the file ``path``."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


def test_the_marker_pickle_runs_when_unpickled(tmp_path):
    """The control: the files below would create the marker if anything unpickled them."""
    pickle.loads(pickle.dumps(_Marker(tmp_path / "ran"))).close()
    assert (tmp_path / "ran").exists()


@pytest.mark.parametrize("write", [
    lambda path, marker: path.write_bytes(pickle.dumps(_Marker(marker))),                       # a pickle renamed
    lambda path, marker: np.save(open(path, "wb"), np.array([_Marker(marker)], dtype=object)),  # object .npy
    lambda path, marker: np.savez(path, **{"threshold": np.array([_Marker(marker)], dtype=object)}),
], ids=["pickle", "object-npy", "object-npz"])
def test_a_file_that_would_run_code_is_refused_unrun(tmp_path, write):
    path, marker = tmp_path / "models.npz", tmp_path / "ran"
    write(path, marker)
    assert not marker.exists()
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))} is not an .npz of plain arrays .*; refit"):
        BoostedTrees.load(path, N_FEATURES)
    assert not marker.exists()


def test_a_damaged_file_is_refused(saved):
    saved.write_bytes(saved.read_bytes()[:200])
    with pytest.raises(ValueError, match=f"^{re.escape(str(saved))} is not an .npz of plain arrays"):
        BoostedTrees.load(saved, N_FEATURES)


def test_an_old_folder_with_a_pickle_is_refused_unread(models, tmp_path):
    """samesame before the arrays saved models.joblib: the folder says to refit, and the pickle never loads."""
    folder = PairClassifier(feature_names=[f"f{i}" for i in range(N_FEATURES)],
                            trees=BoostedTrees.from_sklearn(models)).save(tmp_path / "pc")
    (folder / "models.npz").unlink()
    (folder / "models.joblib").write_bytes(pickle.dumps(_Marker(tmp_path / "ran")))
    with pytest.raises(ValueError, match=r"models.joblib was saved by an older version in a format that can run code "
                                         r"\(a pickle\), so it is not loaded; refit the matcher \(make fit\)"):
        PairClassifier.load(folder)
    assert not (tmp_path / "ran").exists()
