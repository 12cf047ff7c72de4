"""The ablation study of 06: each fusion step added in turn, tuned on train and scored on the val pool.

It explains the shipped recipe (which steps earn their place); the recipe that ships is chosen by
:func:`samesame.match.selection.fit_matcher`, whose choice the "best" row reproduces.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from samesame.core.metrics import score_matches
from samesame.match.candidates import SIGNALS
from samesame.match.matching import Matcher
from samesame.match.options import MatcherOptions
from samesame.match.recipe import Recipe
from samesame.match.selection import Steps
from samesame.match.tuning import TuningPool

ALL = list(SIGNALS)
ABLATION = {  # row name -> tuning options (signals missing from the pool are skipped)
    "phash": dict(concat=["phash"]),
    "tfidf": dict(concat=["tfidf"]),
    "tfidf+min2": dict(concat=["tfidf"], min2=True),
    "learned title": dict(concat=["title"]),
    "image": dict(concat=["image"]),                 # only when image vectors exist
    "union phash|tfidf": dict(concat=["tfidf"], union_phash=True),
    "concat": dict(concat=ALL),
    "concat|phash+min2": dict(concat=ALL, union_phash=True, min2=True),
    "+unit filter": dict(concat=ALL, union_phash=True, min2=True, unit_filter=True),
    "blend": dict(concat=ALL, union_phash=True, min2=True, blend=True),
    "+pair classifier": dict(concat=ALL, union_phash=True, min2=True, unit_filter=True, pair_classifier=True),
}
"""The study's rows; a last row, "best", is the recipe 07 ships (the settings' fusion options and the fitted
matcher's chosen steps)."""


def ablation(train_df: pd.DataFrame, val_df: pd.DataFrame, options: MatcherOptions, shipped: Steps | None, *,
             train_images=None, val_images=None, cache_dir: str | None = None,
             progress: bool = True) -> tuple[pd.DataFrame, dict[str, Recipe], dict[str, list[np.ndarray]]]:
    """Each fusion step tuned on train, scored on the val pool (searched within itself).

    The "best" row has the always-on steps of ``options.fusion`` and the optional steps of ``shipped`` (the
    fitted matcher's cross-fitted choice, :class:`samesame.match.selection.Selection`), so its errors are
    those of the recipe 07 ships; without ``shipped`` each optional step is kept where it wins on the
    tuning pool.

    Returns the table (method | mean_f1 | mean_precision | mean_recall | fold_f1_std: the std of mean F1
    over 5 folds of the val pool's groups), the recipe of each row (the "best" row's thresholds go to
    metrics.json) and each row's match sets on the val pool (for error analysis).
    """
    tuning = TuningPool.build(train_df, train_images, options, cache_dir, progress)
    steps = shipped or Steps(None, None, None)
    rows = {**ABLATION, "best": {**options.fusion.rule, **asdict(steps)}}
    table, recipes, predictions = [], {}, {}
    for method, row in tqdm(rows.items(), desc="ablation", disable=not progress):
        concat = [s for s in row["concat"] if s in tuning.signal_names]
        if not concat:
            continue
        row = {**row, "concat": concat}
        wanted = row.pop("pair_classifier", False)
        recipe, classifier = tuning.add_pair_classifier(tuning.tune(**row), wanted)
        matches = Matcher(recipe, tuning.encoder, options.tfidf, pair_classifier=classifier).predict(
            val_df, image_embeddings=val_images, progress=False)
        s = score_matches(matches, val_df["label_group"].to_numpy())
        table.append({"method": method, **s.as_dict(),
                      "fold_f1_std": round(float(np.std(s.fold_f1(val_df["label_group"].to_numpy()))), 4)})
        recipes[method], predictions[method] = recipe, matches
    return pd.DataFrame(table), recipes, predictions
