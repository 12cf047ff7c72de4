"""Title normalisation, quantities/unit conflicts and TF-IDF (toy data)."""

from dataclasses import replace

import numpy as np
import pytest

from samesame.run.settings import defaults
from samesame.text.titles import clean_title, normalize_title, quantities, tfidf_embeddings, unit_conflict

CFG = defaults()


@pytest.mark.parametrize("raw, expected", [
    ("Susu 200GR x2 (1,5 Kg)", "susu 200 gr x 2 1.5 kg"),
    ("Gula 200 gram", "gula 200 gr"),
    ("Gula 200g", "gula 200 gr"),
    ("Toner 100ml/botol", "toner 100 ml botol"),
    ("MASKER 3PLY isi 50pcs!!", "masker 3 ply isi 50 pcs"),
    ("\uff21\uff22\uff23 500Mah", "abc 500 mah"),          # full-width letters folded by NFKC
])
def test_normalize_title_known_answers(raw, expected):
    assert normalize_title(raw) == expected


def test_quantities_reads_decimals_and_ignores_non_units():
    assert quantities("susu 200 gr x 2 1.5 kg") == {"gr": frozenset({200.0}), "kg": frozenset({1.5})}
    assert quantities("buy 9 get 10 free") == {}


@pytest.mark.parametrize("a, b, conflict", [
    ("kopi 200 gr", "kopi 400 gr", True),
    ("kopi 200 gr", "kopi 200 gr sachet", False),
    ("kopi 200 gr", "kopi 1 kg", False),          # different units: no evidence either way
    ("kopi 200 gr 400 gr", "kopi 400 gr", False),  # a shared amount means a shared variant
    ("kopi", "kopi 400 gr", False),
])
def test_unit_conflict_known_answers(a, b, conflict):
    assert unit_conflict(quantities(a), quantities(b)) is conflict


def test_pair_conflicts_decided_once_per_distinct_amounts_equal_one_check_per_pair():
    from samesame.match.candidates import _pair_conflicts

    titles = ["susu 200 gr", "susu 400 gr", "susu 200 gr 1 l", "kopi", "teh 1 l", "teh 2 l", "gula 200 gr"]
    qty = [quantities(t) for t in titles]
    rng = np.random.default_rng(0)
    rows, cols = rng.integers(0, len(titles), 300), rng.integers(0, len(titles), 300)
    expected = [bool(qty[r]) and bool(qty[c]) and unit_conflict(qty[r], qty[c]) for r, c in zip(rows, cols)]
    assert _pair_conflicts(qty, rows, cols).tolist() == expected
    assert _pair_conflicts([], np.zeros(0, int), np.zeros(0, int)).tolist() == []


def test_tfidf_rows_are_unit_length_and_units_unify():
    x = tfidf_embeddings(["Gula 200gr", "gula 200 gram", "sabun cair"], replace(CFG.tfidf, char_weight=0.5))
    norms = np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel())
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)
    assert (x[0] @ x[1].T).toarray()[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert (x[0] @ x[2].T).toarray()[0, 0] < 0.5


def test_tfidf_needs_some_part():
    with pytest.raises(ValueError, match="word_weight"):
        tfidf_embeddings(["a b"], replace(CFG.tfidf, word_weight=0, char_weight=0))


@pytest.mark.parametrize("raw, expected", [
    ("S\u200bu\u200bs\u200bu 200\u200bgr", "susu 200 gr"),            # zero-width spaces: one word, not letters
    ("Ko\u00adpi\u2060 \ufeffbubuk\u200d", "kopi bubuk"),              # soft hyphen, word joiner, BOM, ZWJ
    ("\u202eSABUN\u202c ＭＡＮＤＩ", "sabun mandi"),                   # direction marks; fullwidth letters
    (float("nan"), ""), (None, ""),                                     # a missing title is empty, never "nan"
])
def test_format_characters_are_removed_before_every_title_signal(raw, expected):
    assert normalize_title(raw) == expected


def test_zero_width_spaces_leave_tfidf_as_the_plain_titles_give_it():
    """With a zero-width space between every letter, the tiny test's 19 listings all matched one another."""
    titles = ["Kopi Bubuk Arabika 200gr", "Sabun Mandi Cair 450 ml", "Sepatu Lari Pria"]
    hidden = ["\u200b".join(t) for t in titles]
    config = CFG.tfidf
    np.testing.assert_allclose(tfidf_embeddings(hidden, config).toarray(), tfidf_embeddings(titles, config).toarray())
    assert [clean_title(t) for t in hidden] == titles
