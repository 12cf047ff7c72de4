import numpy as np
import pandas as pd
import pytest

from samesame.data.submission import (SubmissionError, build_submission, score_submission, validate_submission,
                                       write_submission)

TEST = pd.DataFrame({"posting_id": ["t0", "t1", "t2"]})


def test_build_puts_self_first_and_caps_at_50():
    big = pd.DataFrame({"posting_id": [f"t{i}" for i in range(60)]})
    sub = build_submission(big, [np.array([5, 1, 0, 1])] + [np.arange(60)] * 59)
    assert sub["matches"].iloc[0] == "t0 t5 t1"
    assert len(sub["matches"].iloc[1].split()) == 50 and sub["matches"].iloc[1].split()[0] == "t1"
    validate_submission(sub, big)


def test_build_adds_self_to_an_empty_prediction():
    sub = build_submission(TEST, [np.array([], dtype=int), np.array([2]), np.array([2, 1])])
    assert sub["matches"].tolist() == ["t0", "t1 t2", "t2 t1"]


@pytest.mark.parametrize("rows, message", [
    ([("t0", "t0"), ("t1", "t1")], "1 test listings missing"),
    ([("t0", "t0"), ("t1", "t1"), ("t2", "t2"), ("t2", "t2")], "more than once"),
    ([("t0", "t1"), ("t1", "t1"), ("t2", "t2")], "lack themselves"),
    ([("t0", "t0 x9"), ("t1", "t1"), ("t2", "t2")], "not test listings"),
])
def test_validation_errors(rows, message):
    with pytest.raises(SubmissionError, match=message):
        validate_submission(pd.DataFrame(rows, columns=["posting_id", "matches"]), TEST)


def test_write_validates_and_scores(tmp_path):
    sub = build_submission(TEST, [np.array([0, 1]), np.array([1, 0]), np.array([2])])
    path = write_submission(sub, TEST, tmp_path / "submission.csv")
    assert pd.read_csv(path).equals(sub)
    solution = pd.DataFrame({"posting_id": ["t0", "t1", "t2"], "matches": ["t0 t1", "t0 t1", "t2"]})
    assert score_submission(sub, solution).mean_f1 == 1.0
    solution.loc[2, "matches"] = "t2 t0"
    assert score_submission(sub, solution).per_row.loc["t2", "f1"] == pytest.approx(2 / 3)


def test_a_submission_without_test_listings_says_test_csv_is_missing(tmp_path):
    """A DATA_DIR without test.csv gave an empty test set, then an AttributeError inside the check."""
    empty = pd.DataFrame({"posting_id": pd.Series([], dtype=object)})
    with pytest.raises(SubmissionError, match="no test listings to submit: DATA_DIR has no test.csv"):
        write_submission(build_submission(empty, []), empty, tmp_path / "submission.csv")
    assert not (tmp_path / "submission.csv").exists()


def test_an_empty_matches_cell_is_named_not_a_type_error():
    sub = pd.DataFrame({"posting_id": ["t0", "t1", "t2"], "matches": ["t0", np.nan, "t2"]})
    with pytest.raises(SubmissionError, match="1 listings have an empty matches cell, e.g. 't1'"):
        validate_submission(sub, TEST)


def test_a_posting_id_with_a_space_is_named_as_such():
    test = pd.DataFrame({"posting_id": ["t0", "t 1"]})
    sub = pd.DataFrame({"posting_id": ["t0", "t 1"], "matches": ["t0", "t 1"]})
    with pytest.raises(SubmissionError, match="1 posting ids hold a space, e.g. 't 1'"):
        validate_submission(sub, test)


def test_scoring_against_a_solution_of_other_listings_is_refused():
    sub = build_submission(TEST, [np.array([0]), np.array([1]), np.array([2])])
    solution = pd.DataFrame({"posting_id": ["t0", "t1", "t9"], "matches": ["t0", "t1", "t9"]})
    with pytest.raises(SubmissionError, match=r"1 listing\(s\) of the solution missing \(e.g. \['t9'\]\), "
                                              r"1 id\(s\) not in the solution \(e.g. \['t2'\]\)"):
        score_submission(sub, solution)
