"""Title signals: normalisation, TF-IDF embeddings, unit conflicts (the learned embedding: :mod:`samesame.text.title_model`).

Shopee titles are noisy Indonesian/English strings: the same product is written
"200gr", "200 GR" or "200 gram". Normalising numbers and units first lets TF-IDF
see them as the same tokens. Quantities are
also a strong *negative* signal: two titles that both state a weight in grams and
disagree (200 gr vs 400 gr) are usually different variants, hence
:func:`quantities` / :func:`unit_conflict`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize

# Spelling variants -> one canonical unit token (whole tokens only, after number/unit split).
UNITS = {
    "g": "gr", "gr": "gr", "grm": "gr", "gram": "gr", "grams": "gr", "gramm": "gr", "gsm": "gr",
    "kg": "kg", "kgs": "kg", "kilo": "kg", "kilogram": "kg",
    "mg": "mg", "ml": "ml", "mls": "ml", "mili": "ml", "liter": "l", "litre": "l", "ltr": "l", "lt": "l", "l": "l",
    "pcs": "pcs", "pc": "pcs", "pieces": "pcs", "piece": "pcs", "biji": "pcs", "buah": "pcs",
    "cm": "cm", "mm": "mm", "m": "m", "meter": "m", "inch": "inch", "inchi": "inch", "in": "inch",
    "gb": "gb", "tb": "tb", "mah": "mah", "w": "w", "watt": "w", "v": "v", "volt": "v",
    "oz": "oz", "ply": "ply", "pack": "pack", "pak": "pack", "sachet": "sachet", "sch": "sachet",
}
# Units whose stated amount identifies the variant (weights, volumes, counts, capacities).
CONFLICT_UNITS = frozenset({"gr", "kg", "mg", "ml", "l", "pcs", "gb", "tb", "mah", "w", "oz", "inch", "ply"})

_NUM_ALPHA = re.compile(r"(?<=\d)(?=[^\W\d_])|(?<=[^\W\d_])(?=\d)")
_DECIMAL_COMMA = re.compile(r"(?<=\d),(?=\d)")
_NON_WORD = re.compile(r"[^\w.]+|(?<!\d)\.|\.(?!\d)|_")
_QUANTITY = re.compile(r"(?<![\d.])(\d+(?:\.\d+)?) ([^\W\d_]+)")


def clean_title(title) -> str:
    """The title as every title signal reads it: invisible format characters (Unicode category Cf: zero-width
    spaces and joiners, soft hyphens, direction marks) removed, then NFKC-folded; a missing title (None, NaN) is
    empty.

    A zero-width space between every letter otherwise splits each word into single letters, and the 19 listings
    of the tiny test all matched one another (F1 0.921 -> 0.319).
    """
    if title is None or (isinstance(title, float) and title != title):
        return ""
    visible = "".join(c for c in str(title) if unicodedata.category(c) != "Cf")
    return unicodedata.normalize("NFKC", visible)


def normalize_title(title: str) -> str:
    """Clean (:func:`clean_title`), lowercase, split numbers from letters and unify unit spellings.

    ``"Susu 200GR x2 (1,5 Kg)"`` -> ``"susu 200 gr x 2 1.5 kg"``: the variants a
    seller may type become identical tokens, so TF-IDF counts them as one word.
    """
    text = clean_title(title).lower()
    text = _DECIMAL_COMMA.sub(".", text)
    text = _NUM_ALPHA.sub(" ", text)
    tokens = _NON_WORD.sub(" ", text).split()
    return " ".join(UNITS.get(t, t) for t in tokens)


def normalize_titles(titles: Sequence[str]) -> list[str]:
    """:func:`normalize_title` over a column (keeps the order and the length)."""
    return [normalize_title(t) for t in titles]


def quantities(normalized: str) -> dict[str, frozenset[float]]:
    """Amounts stated per conflict-relevant unit in a normalised title, e.g. ``{"gr": {200.0}}``."""
    found: dict[str, set[float]] = {}
    for number, unit in _QUANTITY.findall(normalized):
        if unit in CONFLICT_UNITS:
            found.setdefault(unit, set()).add(float(number))
    return {u: frozenset(v) for u, v in found.items()}


def unit_conflict(a: dict[str, frozenset[float]], b: dict[str, frozenset[float]]) -> bool:
    """True when both titles state amounts in a common unit and share none of them (200 gr vs 400 gr)."""
    return any(not (a[u] & b[u]) for u in a.keys() & b.keys())


@dataclass(frozen=True)
class TfidfConfig:
    """Word + char n-gram TF-IDF; each part L2-normalised, then weighted and concatenated (settings key ``tfidf``)."""

    word_weight: float
    char_weight: float
    char_ngrams: tuple[int, int]
    binary: bool
    max_features: int | None        # None: every n-gram

    def __post_init__(self):
        if not (self.word_weight > 0 or self.char_weight > 0):
            raise ValueError(f"TfidfConfig needs word_weight > 0 or char_weight > 0, got {self.word_weight} and "
                             f"{self.char_weight}")


PAIR_CHARS = TfidfConfig(word_weight=0.0, char_weight=1.0, char_ngrams=(2, 4), binary=True, max_features=None)
"""The char n-grams of the pair classifier's title features: part of the features' definition, not a setting
(a saved classifier was trained on exactly these)."""


def tfidf_embeddings(titles: Sequence[str], config: TfidfConfig) -> sp.csr_matrix:
    """L2-normalised sparse TF-IDF of normalised titles, fit on the given pool itself (unsupervised).

    Fitting on the searched pool is what the competition allowed on its test set:
    document frequencies come from the very listings being matched.
    """
    vectorizers = _tfidf_vectorizers(config)
    docs = normalize_titles(titles)
    return _stack_parts([v.fit_transform(docs) for v in vectorizers.values()], vectorizers, config)


def char_tfidf(normalized: Sequence[str]) -> sp.csr_matrix:
    """Unit-length char 2-4-gram TF-IDF of already normalised titles (robust to typos and glued words);
    the same builder as the char part of :func:`tfidf_embeddings`, fit on these titles."""
    return _tfidf_vectorizers(PAIR_CHARS)["char"].fit_transform(normalized)


def _tfidf_vectorizers(config: TfidfConfig) -> dict[str, TfidfVectorizer]:
    parts = {}
    if config.word_weight > 0:
        parts["word"] = TfidfVectorizer(token_pattern=r"\S+", binary=config.binary, max_features=config.max_features)
    if config.char_weight > 0:
        parts["char"] = TfidfVectorizer(analyzer="char_wb", ngram_range=config.char_ngrams, binary=config.binary,
                                        max_features=config.max_features, dtype=np.float32)
    return parts


def _stack_parts(mats, vectorizers, config: TfidfConfig) -> sp.csr_matrix:
    weights = {"word": config.word_weight, "char": config.char_weight}
    scaled = [normalize(m) * np.sqrt(weights[name]) for m, name in zip(mats, vectorizers)]
    return normalize(sp.hstack(scaled, format="csr")).astype(np.float32)
