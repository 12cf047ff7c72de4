"""Applying a recipe: fused score, kept pairs, match sets, and the fitted :class:`Matcher` (save / load).

A :class:`samesame.match.recipe.Recipe` keeps a candidate pair when the weighted mean of its signals'
similarities reaches the threshold (or one signal alone reaches its union threshold), drops
title-driven pairs whose units conflict, gives lonely listings their best candidate (min2), and
optionally lets the :class:`samesame.match.pairs.PairClassifier` decide instead. Every score here is
"larger = closer".
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from samesame.core.files import replaced_folder
from samesame.core.typed import field_problem
from samesame.core.neighbors import MAX_MATCHES
from samesame.match.candidates import (Candidates, Signals, blend_signals, candidate_pairs, compute_signals,
                                       embedding_sims, image_pair)
from samesame.match.pairs import PairClassifier, TitleTokens, pair_features, row_order, symmetric_probability
from samesame.match.recipe import Blend, Recipe, fused_score, keep_pairs, recipe_score
from samesame.text.title_model import TITLE_MODELS, TitleEncoder
from samesame.text.titles import TfidfConfig


def matches_from_pairs(cands: Candidates, keep: np.ndarray, score: np.ndarray,
                       max_matches: int = MAX_MATCHES) -> list[np.ndarray]:
    """Match sets (self first, then by decreasing score), capped at ``max_matches``."""
    r, c, s = cands.rows[keep], cands.cols[keep], score[keep]
    order = row_order(r, s)
    r, c = r[order], c[order]
    bounds = np.searchsorted(r, np.arange(cands.n + 1))
    return [np.concatenate(([i], c[bounds[i]:bounds[i + 1]][: max_matches - 1])) for i in range(cands.n)]


# ---------------------------------------------------------------- candidates of a recipe, pair classifier inputs


def searched_signals(recipe: Recipe | dict) -> set[str]:
    """Signals whose kNN can bring a pair the recipe may keep (see :meth:`Recipe.searched_signals`)."""
    return Recipe.from_dict(recipe).searched_signals()


def pool_candidates(signals: Signals, recipe: Recipe, k: int = MAX_MATCHES,
                    progress: bool = False) -> tuple[Signals, Candidates, np.ndarray]:
    """The recipe's final signals, candidate pairs and score (:func:`recipe_score`, after its blend pass, if any).

    After blending, the pairs also carry the unblended similarities ("raw_" + signal):
    the pair classifier can then tell a pair close in itself from one pulled close by its neighbours.
    """
    search = recipe.searched_signals()
    cands = candidate_pairs(signals, k, progress, search)
    if recipe.blend:
        raw = signals
        signals, cands = blended(signals, cands, recipe.blend, k, search, progress)
        if not any(name.startswith("raw_") for name in cands.sims):     # once per remembered blend
            cands.sims.update({f"raw_{name}": s for name, s in embedding_sims(raw, cands.rows, cands.cols).items()})
    return signals, cands, recipe_score(cands, recipe)


def blended(signals: Signals, cands: Candidates, blend: Blend, k: int = MAX_MATCHES, search=None,
            progress: bool = False) -> tuple[Signals, Candidates]:
    """The blended signals and their candidate pairs (searched in ``search``; ``cands``: the unblended ones of
    that search), remembered on ``signals``: the selection scores "blend" and "blend + pair classifier" with one
    blend on each held-out pool, and the pair classifier trains on the blend the tuning chose."""
    key = _blend_key(signals, blend, k, search)
    if key not in signals.knn_cache:
        mixed = blend_signals(signals, cands, fused_score(cands, blend.weights), blend.threshold, blend.top,
                              blend.mutual)
        signals.knn_cache[key] = (mixed, candidate_pairs(mixed, k, progress, search))
    return signals.knn_cache[key]


def forget_blend(signals: Signals, blend: Blend, k: int = MAX_MATCHES, search=None) -> None:
    """Drop a remembered :func:`blended` (a blend the tuning tried and did not keep: each holds a pool's pairs)."""
    signals.knn_cache.pop(_blend_key(signals, blend, k, search), None)


def _blend_key(signals: Signals, blend: Blend, k: int, search) -> tuple:
    searched = tuple(name for name in [*signals.emb, "phash"] if search is None or name in search)
    return ("blend", k, searched, tuple(sorted(blend.weights.items())), float(blend.threshold), blend.top,
            blend.mutual)


def pair_classifier_features(signals: Signals, cands: Candidates, score: np.ndarray,
                             subset: np.ndarray | None = None) -> tuple[np.ndarray, list[str]]:
    """The pair classifier's features for these candidates (every signal, the fused score, titles);
    ``subset``: positions of the pairs to describe (default: all)."""
    return pair_features(cands.rows, cands.cols, cands.n, {**cands.sims, "fused": score}, cands.conflict,
                         TitleTokens.from_titles(signals.titles), subset)


def pair_probability(cands: Candidates, sub: np.ndarray, p_sub: np.ndarray) -> np.ndarray:
    """Symmetric p(same product) of every candidate pair: ``p_sub`` on the classified pairs ``sub``, 0 elsewhere."""
    p = np.zeros(len(cands.rows), dtype=np.float32)
    p[sub] = p_sub
    return symmetric_probability(p, cands.rows, cands.cols, cands.n)


def classified_pairs(score: np.ndarray, floor: float | None) -> np.ndarray:
    """Positions of the candidate pairs the pair classifier scores (fused score >= floor; symmetric)."""
    return np.arange(len(score)) if floor is None else np.flatnonzero(score >= floor)


# ---------------------------------------------------------------- the matcher

MATCHER_FORMAT = 3      # 3: the pair classifier's trees as arrays (models.npz, no pickle), the title encoder's
# manifest of its files' SHA-256s, and train's largest label group in info


@dataclass
class Matcher:
    """A tuned recipe plus what it was fitted with (title encoder, pair classifier); :meth:`predict` matches
    any pool of listings, :meth:`save` / :meth:`load` keep it in a folder (JSON, .npz without pickles, Keras weights)."""

    recipe: Recipe
    encoder: TitleEncoder | None
    tfidf_config: TfidfConfig
    k: int = MAX_MATCHES
    pair_classifier: PairClassifier | None = None
    info: dict = field(default_factory=dict)       # free JSON-ready facts (train.csv hash, image model, timings,
    # largest_group: train's largest label group, which bounds how many listings of a small pool one value may link)

    def __post_init__(self):
        self.recipe = Recipe.from_dict(self.recipe)
        if (self.recipe.pair_classifier is not None) != (self.pair_classifier is not None):
            raise ValueError("a recipe with a pair_classifier step needs its trained PairClassifier "
                             "(pair_classifier=...), and a PairClassifier needs the recipe's pair_classifier "
                             "thresholds; refit with fit_matcher")

    @property
    def name(self) -> str:
        """Short method name for tables and metrics.json, e.g. ``blend(tfidf+title)|phash+min2``."""
        return self.recipe.name

    def predict(self, df: pd.DataFrame, *, image_embeddings=None, progress: bool = True) -> list[np.ndarray]:
        """Match sets (row positions, self first, at most 50) for every row of ``df``.

        Any pool size works: 0 listings give no sets, 1 listing matches only itself, and a pool where
        no candidate pair reaches the pair classifier's floor leaves every listing with itself. A missing title
        (NaN, None) is matched as an empty one and a NaN image vector as no image, each with a warning
        (:func:`samesame.match.candidates.compute_signals`): one listing's gap does not stop a submission."""
        self._check_pool(df, image_embeddings)
        if len(df) < 2:
            return [np.arange(len(df))[i:i + 1] for i in range(len(df))]
        return self.match_signals(self.signals(df, image_embeddings), progress)

    def signals(self, df: pd.DataFrame, image_embeddings=None) -> Signals:
        """The signals :meth:`match_signals` reads (the learned title and the image vectors only where this matcher
        uses them: a fit that left images out, too few in train, matches a pool with photos without them)."""
        if image_embeddings is not None and not self.uses_images():
            image_pair(image_embeddings, len(df))        # still refused when malformed, with the fix
            image_embeddings = None
        return compute_signals(df, self.encoder if self.uses_title() else None, self.tfidf_config, image_embeddings,
                               self.info.get("largest_group"))

    def match_signals(self, signals: Signals, progress: bool = False) -> list[np.ndarray]:
        """:meth:`predict` on signals already computed: the recipe selection scores several matchers on one
        held-out pool, and its signals and unblended candidates are computed once."""
        if signals.n < 2:
            return [np.arange(signals.n)[i:i + 1] for i in range(signals.n)]
        signals, cands, score = pool_candidates(signals, self.recipe, self.k, progress)
        if self.pair_classifier is None:
            return matches_from_pairs(cands, keep_pairs(cands, self.recipe, score), score)
        step = self.recipe.pair_classifier
        sub = classified_pairs(score, step.floor)
        p_sub = np.zeros(0, dtype=np.float32)
        if len(sub):        # no pair reaches the floor (a tiny or unrelated pool): nothing to classify
            x, names = pair_classifier_features(signals, cands, score, sub)
            p_sub = self.pair_classifier.predict_proba(x, names)
        p = pair_probability(cands, sub, p_sub)
        return matches_from_pairs(cands, keep_pairs(cands, step.rule(), p), p)

    def uses_images(self) -> bool:
        """Whether the recipe or the pair classifier reads image similarities (predict then needs image vectors)."""
        return "image" in self.recipe.searched_signals() or (
            self.pair_classifier is not None and "image" in self.pair_classifier.feature_names)

    def _check_pool(self, df: pd.DataFrame, image_embeddings) -> None:
        """Refuse, with the fix, a pool this matcher cannot match as it was fitted."""
        missing = [c for c in ("title", "image_phash") if c not in df.columns]
        if missing:
            raise ValueError(f"Matcher.predict: the listings have no {missing} column(s) (have {list(df.columns)}); "
                             "pass the frame samesame.data.listings.load_dataset reads from test.csv "
                             "(posting_id, image, image_phash, title)")
        if image_embeddings is None and self.uses_images():
            raise ValueError(f"this matcher ({self.name}) was fitted with image similarities, but predict got no "
                             "image_embeddings; pass samesame.run.matcher.embed_for_matcher(matcher, folder, df) (rows without "
                             "an image: ok=False), or refit the matcher without images (image.in_fusion: false)")
        width = self.info.get("image_dim")
        if image_embeddings is not None and width and np.ndim(image_embeddings[0]) == 2 \
                and np.shape(image_embeddings[0])[1] != width:
            raise ValueError(f"image_embeddings are {np.shape(image_embeddings[0])[1]}-d, but this matcher "
                             f"({self.name}) was fitted on {width}-d vectors of its image model; embed the photos "
                             "with samesame.run.matcher.embed_for_matcher(matcher, folder, df)")

    def uses_title(self) -> bool:
        """Embed titles only when the recipe or the pair classifier reads the learned title (it is slow)."""
        return "title" in self.recipe.searched_signals() or (
            self.pair_classifier is not None and "title" in self.pair_classifier.feature_names)

    # ------------------------------------------------------------ persistence

    def save(self, folder: str | Path, attachments: dict[str, list[Path]] | None = None) -> Path:
        """Write ``recipe.json``, ``matcher.json`` (settings, versions, info), ``title_encoder/`` and
        ``pair_classifier.*`` into ``folder`` (replaced as a whole, so no stale file survives and a kill midway
        leaves the old folder). ``attachments``: subfolder -> files copied into it in the same write (the
        image model's files, which must travel with the matcher)."""
        with replaced_folder(folder) as tmp:
            for sub, files in (attachments or {}).items():
                (tmp / sub).mkdir()
                for file in files:
                    shutil.copy2(file, tmp / sub / Path(file).name)
            self.recipe.save(tmp / "recipe.json")
            if self.encoder is not None:
                self.encoder.save(tmp / "title_encoder")
            if self.pair_classifier is not None:
                self.pair_classifier.save(tmp / "pair_classifier")
            meta = {"format": MATCHER_FORMAT, "name": self.name, "tfidf_config": dataclasses.asdict(self.tfidf_config),
                    "k": self.k, "title_encoder": self.encoder is not None,
                    "title_model": None if self.encoder is None else self.encoder.kind,
                    "pair_classifier": self.pair_classifier is not None, "info": self.info}
            (tmp / "matcher.json").write_text(json.dumps(meta, indent=2, default=str))
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path) -> "Matcher":
        """The matcher :meth:`save` wrote. A missing, damaged, edited or too-new file raises an error naming
        that file and the fix (FileNotFoundError when absent, else ValueError; see also Recipe.load,
        TitleEncoder.load and PairClassifier.load), checked before the slow parts are loaded."""
        folder = Path(folder)
        meta_file, recipe_file = folder / "matcher.json", folder / "recipe.json"
        refit = "refit and save the matcher (make fit)"
        if not meta_file.is_file():
            raise FileNotFoundError(f"{meta_file} not found: fit and save a matcher first (make fit)")
        try:
            meta = json.loads(meta_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{meta_file} is not valid JSON ({err}); {refit}") from None
        found = meta.get("format") if isinstance(meta, dict) else meta
        if found != MATCHER_FORMAT:
            raise ValueError(f"{meta_file}: matcher format {found!r}, this samesame reads {MATCHER_FORMAT}; {refit}")
        try:
            tc, k, info = meta["tfidf_config"], meta["k"], meta.get("info", {})
            flags = {name: meta[name] for name in ("title_encoder", "pair_classifier")}
            problem = field_problem(TfidfConfig, tc)
            if problem:
                raise ValueError(f"tfidf_config.{problem}")
            tfidf_config = TfidfConfig(**{**tc, "char_ngrams": tuple(tc["char_ngrams"])})
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ValueError(f"k = {k!r}, expected an integer >= 1")
            if not all(isinstance(v, bool) for v in flags.values()) or not isinstance(info, dict):
                raise ValueError(f"{flags} and info = {type(info).__name__}: expected true/false flags and an object")
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{meta_file} is not what Matcher.save writes ({type(err).__name__}: {err}); "
                             f"{refit}") from None
        recipe = Recipe.load(recipe_file)
        if flags["pair_classifier"] != (recipe.pair_classifier is not None):
            raise ValueError(f"{meta_file} says pair_classifier: {str(flags['pair_classifier']).lower()}, but "
                             f"{recipe_file} has {'a' if recipe.pair_classifier else 'no'} pair_classifier step: the "
                             f"files come from different fits; {refit}")
        kind = meta.get("title_model") or TitleEncoder.kind      # matchers saved before the registry: e5
        if flags["title_encoder"] and kind not in TITLE_MODELS:
            raise ValueError(f"{meta_file}: title_model {kind!r} is none of {sorted(TITLE_MODELS)}; {refit}")
        encoder = TITLE_MODELS[kind].load(folder / "title_encoder") if flags["title_encoder"] else None
        pair_classifier = PairClassifier.load(folder / "pair_classifier") if flags["pair_classifier"] else None
        matcher = cls(recipe, encoder, tfidf_config, k, pair_classifier, info)
        if encoder is None and matcher.uses_title():
            raise ValueError(f"{meta_file} says title_encoder: false, but the matcher ({matcher.name}) reads the learned "
                             f"title: it would match without it; {refit}")
        return matcher
