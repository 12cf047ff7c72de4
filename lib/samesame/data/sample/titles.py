"""Seller titles: a product's words reordered, decorated, re-cased, misspelt and truncated like a marketplace's."""

from __future__ import annotations

import numpy as np

from samesame.data.sample.catalogue import (
    PROMO_PREFIXES,
    PROMO_SUFFIXES,
    SEPARATORS,
    TITLE_CASINGS,
    TITLE_P_BRACKETS,
    TITLE_P_BRAND,
    TITLE_P_DESCRIPTOR,
    TITLE_P_EXTRA,
    TITLE_P_GENERIC,
    TITLE_P_LINE,
    TITLE_P_NOUN_SYNONYM,
    TITLE_P_PREFIX,
    TITLE_P_REORDER,
    TITLE_P_SUFFIX,
    TITLE_P_TRUNCATE,
    TITLE_P_TYPO,
    TITLE_P_VARIANT,
)
from samesame.data.sample.chance import _pick, _pick_weighted
from samesame.data.sample.records import Shop, TitleParts


def _typo(word: str, rng: np.random.Generator) -> str:
    """One keyboard slip: a dropped, doubled or swapped letter."""
    if len(word) < 4 or not word.isalpha():
        return word
    i = int(rng.integers(1, len(word) - 1))
    kind = int(rng.integers(3))
    if kind == 0:
        return word[:i] + word[i + 1:]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    return word[:i - 1] + word[i] + word[i - 1] + word[i + 1:]


def _cased(text: str, casing: str) -> str:
    return {"asis": text, "upper": text.upper(), "lower": text.lower(), "title": text.title()}[casing]


def _truncated(text: str, rng: np.random.Generator) -> str:
    """Cut at a word boundary, as when a seller pastes into a short field."""
    limit = int(rng.integers(22, 45))
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0].rstrip(" -|/,([")


def make_title(parts: TitleParts, shop: Shop, rng: np.random.Generator) -> str:
    """One listing's title: the product's words, reordered, decorated and misspelt like a seller would."""
    if rng.random() < TITLE_P_GENERIC:
        segments = [parts.nouns[0], *parts.extras[:1], _pick(rng, PROMO_SUFFIXES)]
    else:
        noun = _pick(rng, parts.nouns) if rng.random() < TITLE_P_NOUN_SYNONYM else parts.nouns[0]
        brand = [parts.brand] if rng.random() < TITLE_P_BRAND else []
        line = [parts.line] if rng.random() < TITLE_P_LINE else []
        variant = [_pick(rng, parts.variant)] if rng.random() < TITLE_P_VARIANT else []
        if variant and rng.random() < TITLE_P_BRACKETS:
            variant = [f"[{variant[0]}]"]
        extras = [e for e in parts.extras if rng.random() < TITLE_P_EXTRA]
        descriptors = [d for d in parts.descriptors if rng.random() < TITLE_P_DESCRIPTOR]
        segments = [*brand, *line, noun, *variant, *extras, *descriptors]
        if rng.random() < TITLE_P_REORDER:
            moved = segments.pop(int(rng.integers(len(segments))))
            segments.insert(int(rng.integers(len(segments) + 1)), moved)
    if shop.prefix and rng.random() < 0.7:
        segments.insert(0, shop.prefix)
    elif rng.random() < TITLE_P_PREFIX:
        segments.insert(0, _pick(rng, PROMO_PREFIXES))
    if rng.random() < TITLE_P_SUFFIX:
        segments.append(_pick(rng, PROMO_SUFFIXES))
    text = segments[0]
    for seg in segments[1:]:
        text += str(_pick_weighted(rng, SEPARATORS)) + seg
    words = [_typo(w, rng) if rng.random() < TITLE_P_TYPO else w for w in text.split()]
    text = _cased(" ".join(words), str(_pick_weighted(rng, TITLE_CASINGS)))
    return _truncated(text, rng) if rng.random() < TITLE_P_TRUNCATE else text
