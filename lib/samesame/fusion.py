"""Fuse title, phash and (optional) image signals into match sets; every threshold tuned on train.

The pipeline works on *candidate pairs*: the union of each signal's k nearest
neighbours, with every signal's similarity computed for every pair. Fusion rules
are then cheap array operations, so a whole grid of weights and thresholds can
be scored on train in seconds:

* **concat**: weighted mean of per-signal cosine similarities (= cosine of the
  concatenation of unit-length embeddings scaled by sqrt(weight)), one threshold;
* **union**: also keep a pair when phash alone is within its own threshold;
* **unit filter**: drop a title-driven match when both titles state different
  amounts of the same unit (200 gr vs 400 gr);
* **min2**: a listing left alone keeps its best candidate unless that one is very far;
* **blend**: replace every embedding by the similarity-weighted mean of its close
  neighbours, re-normalise and search again (neighbourhood blending);
* **pair classifier**: a :class:`samesame.pairs.PairClassifier` scores every candidate pair
  from all similarities plus pool-relative features; its probability replaces the
  fused score.

Similarities are "larger = closer": cosine for embeddings, ``1 - bits/32`` for phash.
The rule itself is a typed :class:`samesame.recipe.Recipe`; a fitted :class:`Matcher`
saves to and loads from a folder (:meth:`Matcher.save`, :meth:`Matcher.load`).

Where the code lives: :mod:`samesame.candidates` (signals, candidate pairs, blending),
:mod:`samesame.matching` (applying a recipe, the Matcher), :mod:`samesame.tuning` (grids on a
train pool), :mod:`samesame.selection` (which steps ship, chosen by cross-fitting; the fit);
this module re-exports them and defines the ablation study (:data:`ABLATION`, :func:`ablation`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .candidates import (EMBEDDINGS, Candidates, Signals, blend_signals, candidate_pairs,  # noqa: F401
                         compute_signals, dropped_signals, embedding_sims)
from .matching import (MATCHER_FORMAT, Matcher, classified_pairs, fused_score, keep_pairs,  # noqa: F401
                       matches_from_pairs, pair_classifier_features, pair_scores, pool_candidates, searched_signals)
from .metrics import score_matches
from .recipe import SIGNALS, Blend, PairStep, Recipe  # noqa: F401
from .text import TfidfConfig
from .title_model import TitleModelConfig
from .selection import Selection, Steps, fit_matcher  # noqa: F401
from .tuning import TuningGrid, TuningPool, tune_pair_step, tune_recipe  # noqa: F401


ABLATION = {  # row name -> tuning options (signals missing from the pool are skipped)
    "phash": dict(concat=["phash"]),
    "tfidf": dict(concat=["tfidf"]),
    "tfidf+min2": dict(concat=["tfidf"], min2=True),
    "learned title": dict(concat=["title"]),
    "image": dict(concat=["image"]),                 # only when image vectors exist
    "union phash|tfidf": dict(concat=["tfidf"], union_phash=True),
    "concat": dict(concat=["tfidf", "title", "image", "phash"]),
    "concat|phash+min2": dict(concat=["tfidf", "title", "image", "phash"], union_phash=True, min2=True),
    "+unit filter": dict(concat=["tfidf", "title", "image", "phash"], union_phash=True, min2=True, unit_filter=True),
    "blend": dict(concat=["tfidf", "title", "image", "phash"], union_phash=True, min2=True, blend=True),
    "+pair classifier": dict(concat=["tfidf", "title", "image", "phash"], union_phash=True, min2=True,
                             unit_filter=True, pair_classifier=True),
    "best": dict(concat=["tfidf", "title", "image", "phash"], union_phash=True, min2=True),   # the shipped steps
}


def ablation(train_df: pd.DataFrame, val_df: pd.DataFrame, *, train_images=None, val_images=None,
             title_model: TitleModelConfig | None = TitleModelConfig(), tfidf_config: TfidfConfig = TfidfConfig(),
             tune_fraction: float = 0.4, seed: int = 0, grid: TuningGrid = TuningGrid(), cache_dir: str | None = None,
             shipped: Steps | None = None,
             progress: bool = True) -> tuple[pd.DataFrame, dict[str, Recipe], dict[str, list[np.ndarray]]]:
    """Each fusion step tuned on train, scored on the val pool (searched within itself).

    The "best" row has the optional steps of ``shipped`` (the fitted matcher's cross-fitted choice,
    :class:`samesame.selection.Selection`), so its errors are those of the recipe 07 ships; without
    ``shipped`` each step is kept where it wins on the tuning pool.

    Returns the table (method | mean_f1 | mean_precision | mean_recall | fold_f1_std: the std of mean F1
    over 5 folds of the val pool's groups), the
    recipe of each row (the "best" row's thresholds go to metrics.json) and each
    row's match sets on the val pool (for error analysis).
    """
    tuning = TuningPool.build(train_df, train_images, tune_fraction, seed, title_model, tfidf_config, progress,
                               cache_dir, grid)
    rows, recipes, predictions = [], {}, {}
    for method, options in tqdm(ABLATION.items(), desc="ablation", disable=not progress):
        concat = [s for s in options["concat"] if s in tuning.signal_names]
        if not concat:
            continue
        options = {**options, "concat": concat}
        if method == "best":
            steps = shipped or Steps(None, None, None)
            options.update(unit_filter=steps.unit_filter, blend=steps.blend, pair_classifier=steps.pair_classifier)
        wanted = options.pop("pair_classifier", False)
        recipe, classifier = tuning.add_pair_classifier(tuning.tune(**options), wanted)
        matches = Matcher(recipe, tuning.encoder, tfidf_config, pair_classifier=classifier).predict(
            val_df, image_embeddings=val_images, progress=False)
        s = score_matches(matches, val_df["label_group"].to_numpy())
        rows.append({"method": method, **s.as_dict(),
                     "fold_f1_std": round(float(np.std(s.fold_f1(val_df["label_group"].to_numpy()))), 4)})
        recipes[method], predictions[method] = recipe, matches
    return pd.DataFrame(rows), recipes, predictions
