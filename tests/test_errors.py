import numpy as np
import pandas as pd

from samesame.study import viz
from samesame.study.errors import blame_signals, error_metrics, errors_by_group_size, listing_errors, worst_listings

LABELS = [1, 1, 1, 2, 2]
MATCHES = [np.array([0, 1, 3]), np.array([1, 0]), np.array([2]), np.array([3, 4]), np.array([4, 3])]


def test_listing_errors_counts():
    e = listing_errors(MATCHES, LABELS)
    assert e["n_fp"].tolist() == [1, 0, 0, 0, 0]
    assert e["n_fn"].tolist() == [1, 1, 2, 0, 0]
    assert e["group_size"].astype(str).tolist() == ["3", "3", "3", "2", "2"]
    table = errors_by_group_size(e)
    assert table.loc["2", "mean_f1"] == 1.0 and table.loc["3", "share_of_f1_lost"] == 1.0
    assert worst_listings(e, kind="fp") == [0] and worst_listings(e, n=1, kind="fn") == [2]


def test_blame_signals():
    signals = {"title": [np.array([0, 3]), np.array([1]), np.array([2, 0]), np.array([3]), np.array([4])],
               "phash": [np.array([0, 1]), np.array([1, 0]), np.array([2]), np.array([3, 4]), np.array([4, 3])]}
    b = blame_signals(MATCHES, LABELS, signals)
    assert b.loc["title", "false_positives"] == 1 and b.loc["phash", "false_positives"] == 0
    # missed true pairs: (0,2) (1,2) (2,0) (2,1); title found (2,0) only; the rest nobody found
    assert b.loc["title", "false_negatives_found"] == 1 and b.loc["none", "false_negatives_found"] == 3


def test_query_gallery_colours():
    df = pd.DataFrame({"posting_id": list("abcde"), "label_group": LABELS, "image_path": [None] * 5,
                       "title": list("abcde")})
    fig = viz.show_query(df, 0, MATCHES[0])
    colours = [ax.title.get_color() for ax in fig.axes if ax.get_title()]
    assert colours == ["green", "green", "darkorange", "green", "green", "red"]


def test_error_metrics_are_json_ready():
    e = listing_errors(MATCHES, LABELS)
    m = error_metrics(errors_by_group_size(e), blame_signals(MATCHES, LABELS, {"x": MATCHES}))
    assert m["by_group_size"]["2"]["mean_f1"] == 1.0 and m["blame"]["x"]["false_positives"] == 1
