"""The ablation study of 06: each fusion step added in turn, tuned on train and scored on the val pool.

It explains the shipped recipe (which steps earn their place); the recipe that ships is chosen by
:func:`samesame.match.selection.fit_matcher`, whose choice the "best" row reproduces. It is cross-fitted
with the fit's own two title encoders, so it trains none: the fit's halves of the label groups
(:func:`samesame.match.selection.in_half_a`) cut both pools in two, each half is tuned and scored with
the encoder of the other half (which never saw its groups), and every val listing is matched within its half.
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
from samesame.match.selection import Steps, in_half_a
from samesame.match.tuning import TuningPool, subset_images

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


def ablation(train_df: pd.DataFrame, val_df: pd.DataFrame, options: MatcherOptions, shipped: Steps | None,
             encoders: tuple = (None, None), *, train_images=None, val_images=None,
             progress: bool = True) -> tuple[pd.DataFrame, dict[str, dict[str, Recipe]], dict[str, list[np.ndarray]]]:
    """Each fusion step tuned on train, scored on the val pool, in each half of the cross-fitting (module docstring).

    ``encoders``: the title encoders of half A and half B (:func:`samesame.match.selection.half_encoder`; None
    without a learned title). The "best" row has the always-on steps of ``options.fusion`` and the optional
    steps of ``shipped`` (the fitted matcher's cross-fitted choice,
    :class:`samesame.match.selection.Selection`), so its errors are those of the recipe 07 ships; without
    ``shipped`` each optional step is kept where it wins on the tuning pool.

    Returns the table (method | mean_f1 | mean_precision | mean_recall | fold_f1_std: the std of mean F1
    over 5 folds of the val pool's groups), each row's recipe per half ({"A": .., "B": ..}; the "best" row's
    go to metrics.json) and each row's match sets on the val pool (for error analysis), in val order.
    """
    steps = shipped or Steps(None, None, None)
    rows = {**ABLATION, "best": {**options.fusion.rule, **asdict(steps)}}
    val_a, train_a = in_half_a(val_df, options), in_half_a(train_df, options)
    halves = []                     # (half, its tuning pool, its val listings, their images, their val positions)
    for half, train_rows, val_rows, encoder in (("A", train_a, val_a, encoders[1]),
                                                 ("B", ~train_a, ~val_a, encoders[0])):
        if not val_rows.any():
            continue
        if not train_rows.any():
            raise ValueError(f"the val pool has {int(val_rows.sum())} listings in half {half} of the cross-fitting "
                             f"but the train pool has none to tune them on; use more train groups or another "
                             f"fusion.tune_fraction (got {options.fusion.tune_fraction})")
        pool = TuningPool.of(train_df[train_rows].reset_index(drop=True), encoder,
                             subset_images(train_images, train_rows), options.tfidf, options.grid, options.seed,
                             progress)
        halves.append((half, pool, val_df[val_rows].reset_index(drop=True), subset_images(val_images, val_rows),
                       np.flatnonzero(val_rows)))
    labels = val_df["label_group"].to_numpy()
    table, recipes, predictions = [], {}, {}
    for method, row in tqdm(rows.items(), desc="ablation", disable=not progress):
        concat = [s for s in row["concat"] if all(s in pool.signal_names for _, pool, *_ in halves)]
        if not concat:
            continue
        row = {**row, "concat": concat}
        wanted = row.pop("pair_classifier", False)
        matches = [np.empty(0, dtype=np.int64)] * len(val_df)
        recipes[method] = {}
        for half, pool, val, images, positions in halves:
            recipe, classifier = pool.add_pair_classifier(pool.tune(**row), wanted)
            found = Matcher(recipe, pool.encoder, options.tfidf, pair_classifier=classifier).predict(
                val, image_embeddings=images, progress=False)
            for i, m in zip(positions, found):
                matches[i] = positions[m]
            recipes[method][half] = recipe
        s = score_matches(matches, labels)
        table.append({"method": method, **s.as_dict(), "fold_f1_std": round(float(np.std(s.fold_f1(labels))), 4)})
        predictions[method] = matches
    return pd.DataFrame(table), recipes, predictions
