"""One decision, shipped as measured: which optional steps the recipe uses, chosen by cross-fitting over
label groups, and the matcher fitted with exactly those steps.

Training the title encoder once per fold does not fit a 2-core CPU, so :func:`fit_matcher` cross-fits
on two halves of train's label groups:

1. the groups are split into half A and half B (``tune_fraction`` of them in B);
2. a title encoder learns A's titles, another learns B's (each cached by titles, labels and config);
3. each half, embedded by the *other* half's encoder (groups it never saw, as test groups are), is cut
   into two group folds; for every step configuration the recipe is tuned on one fold and scored on
   the other, searched within itself: four held-out scores per configuration;
4. the threshold rule's steps (unit filter, blending) are chosen by the best mean over the four, then
   the pair classifier on top of that rule the same way; a tie keeps the simpler recipe;
5. the matcher that ships is A's encoder with the chosen steps tuned on all of B.

Groups a fine-tuned image model trained on are left out of steps 3-5 (its similarities there are memorised:
on vprc-dev they lifted the estimate to 0.70 against 0.41 on unseen groups); the encoders still learn them.

F1 falls as the searched pool grows (more look-alikes of other products), so a threshold tuned on a fold of a few
thousand listings lets in false matches in a test pool of 70,000. With ``fusion.pool_size`` set, every pool of
steps 3-5 is padded up to that size with listings of train's other label groups (:func:`padded_pool`): they are
searched like any listing but never scored, so each threshold is tuned, and each configuration scored, in a pool
as crowded as the one it will face, as far as train.csv goes.

Its :class:`Selection` (every configuration's four scores, the chosen one's mean and std) travels
in ``Matcher.info["selection"]``, so 06 reports the very recipe that 07 ships.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from samesame.core.metrics import score_matches
from samesame.core.splits import group_folds, group_hash, split_by_group
from samesame.match.matching import Matcher
from samesame.match.options import FusionOptions, MatcherOptions, TuningGrid
from samesame.match.tuning import TuningPool, has_titles, subset_images
from samesame.text.title_model import TITLE_MODELS
from samesame.text.titles import TfidfConfig

FOLDS_PER_HALF = 2
MIN_IMAGE_SHARE = 0.01     # train listings with a usable image below this share: the image signal is left out


@dataclass(frozen=True)
class Steps:
    """Which optional steps a recipe uses (the always-on ones: concat of every signal, phash union, min2)."""

    unit_filter: bool = False
    blend: bool = False
    pair_classifier: bool = False
    local_scale: bool = False

    @property
    def name(self) -> str:
        on = [s.replace("_", " ") for s, v in asdict(self).items() if v]
        return "+".join(on) if on else "threshold rule"


@dataclass
class Selection:
    """The cross-fitted comparison of step configurations and the one chosen (mean +- std over held-out folds)."""

    table: pd.DataFrame                 # steps | fold_0.. | mean_f1 | std_f1 | mean_precision | mean_recall
    chosen: Steps
    skipped: dict[str, str] = field(default_factory=dict)   # configuration -> why it could not be scored
    pools: dict = field(default_factory=dict)     # the pool sizes tuned and scored at (see :func:`select_steps`)
    curve: pd.DataFrame | None = None   # steps | pool | mean_f1 | std_f1: held-out F1 as the pool grows

    @property
    def estimate(self) -> dict:
        row = self.table.set_index("steps").loc[self.chosen.name]
        return {"mean_f1": float(row["mean_f1"]), "std_f1": float(row["std_f1"]),
                "mean_precision": float(row["mean_precision"]), "mean_recall": float(row["mean_recall"]),
                "folds": int(sum(c.startswith("fold_") for c in self.table.columns)),
                "pool_size": self.pools.get("scored_in")}

    def to_dict(self) -> dict:
        return {"chosen": asdict(self.chosen), "chosen_name": self.chosen.name, "estimate": self.estimate,
                "table": self.table.round(4).to_dict("records"), "skipped": self.skipped, "pools": self.pools,
                "curve": None if self.curve is None else self.curve.round(4).to_dict("records")}

    @classmethod
    def from_dict(cls, d: dict) -> "Selection":
        curve = d.get("curve")
        return cls(pd.DataFrame(d["table"]), Steps(**d["chosen"]), dict(d.get("skipped", {})), dict(d.get("pools", {})),
                   None if curve is None else pd.DataFrame(curve))


def step_options(wanted: bool | None) -> list[bool]:
    """A step fixed by the config (True / False), or both tried (None)."""
    return [False, True] if wanted is None else [bool(wanted)]


def fit_matcher(train_df: pd.DataFrame, options: MatcherOptions, *, image_embeddings=None,
                image_seen_groups: Collection[int] = (), cache_dir: str | None = None, progress: bool = True) -> Matcher:
    """Choose the optional steps by cross-fitting (module docstring), then fit the matcher that ships.

    ``options.fusion``: which steps are always on, never on, or chosen by the cross-fitted mean F1.
    ``options.title_model=None`` (or train without titles) skips the learned title.
    ``cache_dir``: where the title encoders are kept and found again. ``image_seen_groups``: label groups the
    image model trained on (a fine-tuned one memorised them: their image similarities are inflated), so the
    recipe is tuned and scored on the other groups only; the title encoders still learn from every group.
    """
    fusion, grid, tfidf_config, seed = options.fusion, options.grid, options.tfidf, options.seed
    image_embeddings, images_left_out = tunable_images(image_embeddings, len(train_df))
    if images_left_out:
        image_seen_groups = ()          # no image similarity is read, so no group's is memorised
    rows_a = in_half_a(train_df, options)
    unseen = ~train_df["label_group"].isin(set(image_seen_groups)).to_numpy()
    pool_a, pool_b = rows_a & unseen, ~rows_a & unseen
    usable = [train_df.loc[pool, "label_group"].nunique() for pool in (pool_a, pool_b)]
    if min(usable) < FOLDS_PER_HALF:
        seen = (f" that the image model never trained on (of {train_df['label_group'].nunique()})"
                if not unseen.all() else "")
        raise ValueError(f"train's halves hold {usable[0]} and {usable[1]} label groups{seen}: too few to cross-fit "
                         f"the recipe (each half needs {FOLDS_PER_HALF}); use more train groups, another "
                         "fusion.tune_fraction" + (", or image.in_fusion: false" if seen else ""))
    encoder_a, encoder_b = (half_encoder(train_df, options, half, cache_dir, progress) for half in "AB")
    padding = Padding(train_df, image_embeddings, fusion.pool_size, seed)
    folds = _held_out_folds(padding, [("B", pool_b, encoder_a), ("A", pool_a, encoder_b)], seed)
    selection = select_steps(folds, fusion, tfidf_config, grid, seed, progress, padding)
    pool = padding.pool(pool_b, ~pool_b)
    final = TuningPool.of(pool.listings, encoder_a, pool.images, tfidf_config, grid, seed, progress, pool.scored)
    matcher = _tuned_matcher(final, selection.chosen, fusion.rule, tfidf_config, progress)
    selection.pools["final_tuned_in"] = len(pool.listings)
    matcher.info["selection"] = selection.to_dict()
    matcher.info["largest_group"] = int(train_df["label_group"].value_counts().max())   # bounds a shared value
    matcher.info["tuning_groups"] = {"tuned and scored on": int(train_df.loc[unseen, "label_group"].nunique()),
                                     "left out (the image model trained on them)":
                                         int(train_df.loc[~unseen, "label_group"].nunique())}
    if images_left_out:
        matcher.info["images_left_out"] = images_left_out
    return matcher


def tunable_images(image_embeddings, n_train: int) -> tuple[tuple | None, str | None]:
    """The image vectors, or None and why when fewer than :data:`MIN_IMAGE_SHARE` of train's listings have a usable
    image: the recipe cannot learn the image signal's weight from a handful of photos (a csv-only Kaggle folder),
    yet its 1,280-d similarity is computed for every candidate pair: on the shopee-dev table (21 usable photos among 24,293
    listings) that made the fit's tuning minutes slower for an image weight of 0 (README, "What the dev fit costs")."""
    if image_embeddings is None:
        return None, None
    usable = int(np.asarray(image_embeddings[1], dtype=bool).sum())
    if usable >= MIN_IMAGE_SHARE * n_train:
        return image_embeddings, None
    why = (f"only {usable:,} of {n_train:,} train listings have a usable image (the recipe needs "
           f"{MIN_IMAGE_SHARE:.0%} to tune the image signal), so the matcher matches without images")
    warnings.warn(why, stacklevel=3)
    return None, why


def in_half_a(df: pd.DataFrame, options: MatcherOptions) -> np.ndarray:
    """Which listings of ``df`` are in half A of the cross-fitting (by a hash of their label group, so any subset
    of train.csv, such as the study's split, is cut exactly as train.csv itself)."""
    half_a, _ = split_by_group(df, test_fraction=options.fusion.tune_fraction, seed=options.seed + 1)
    return df["label_group"].isin(set(half_a["label_group"])).to_numpy()


def half_encoder(train_df: pd.DataFrame, options: MatcherOptions, half: str, cache_dir: str | None = None,
                 progress: bool = True):
    """The title encoder that learns half ``half`` ("A" or "B") of ``train_df``'s groups (cached by titles,
    labels and config, so 06 finds the fit's own); None without a title model or titles."""
    if options.title_model is None or not has_titles(train_df):
        return None
    rows = in_half_a(train_df, options) == (half == "A")
    part = train_df[rows]
    return TITLE_MODELS[options.title_kind].fit(part["title"], part["label_group"], options.title_model, cache_dir,
                                                progress)


@dataclass
class PaddedPool:
    """Listings to search: the scored ones (``queries``, a mask of train's rows) and the padding around them."""

    listings: pd.DataFrame
    images: tuple | None
    scored: np.ndarray | None      # bool per listing: whose F1 counts (None: all, nothing was added)
    queries: np.ndarray
    rows: np.ndarray               # bool per train row: the listings of the pool (queries and padding)
    half: str | None = None        # the cross-fitting half whose fold is scored ("A" or "B")

    @property
    def n_scored(self) -> int:
        return int(self.queries.sum())


@dataclass
class Padding:
    """Pads a pool of train listings with listings of train's other label groups up to ``target`` listings
    (None: no padding). Padding is taken group by group in a fixed hashed order, so a larger pool holds a smaller
    one's padding (the pool-size curve grows one pool), and it never includes the pool's own groups."""

    train: pd.DataFrame
    images: tuple | None
    target: int | None
    seed: int

    def pool(self, queries: np.ndarray, padding: np.ndarray, size: int | None = None) -> PaddedPool:
        """``queries`` (a mask of train's rows) padded with rows of ``padding`` up to ``size`` (default: the
        target), as far as ``padding`` goes."""
        size = self.target if size is None else size
        extra = self.order(padding)[:max(0, (size or 0) - int(queries.sum()))]
        rows = queries.copy()
        rows[extra] = True
        return PaddedPool(self.train[rows].reset_index(drop=True), subset_images(self.images, rows),
                          queries[rows] if len(extra) else None, queries, rows)

    def order(self, padding: np.ndarray) -> np.ndarray:
        """Positions of the ``padding`` rows in the order they pad: by a hash of their label group."""
        rows = np.flatnonzero(padding)
        groups = self.train["label_group"].to_numpy()[rows]
        key = np.array([group_hash(int(g), self.seed + 2) for g in groups])
        return rows[np.lexsort((rows, key))]


def _held_out_folds(padding: Padding, halves, seed: int) -> list[tuple[PaddedPool, PaddedPool, object]]:
    """(tune pool, held-out pool, encoder) for each fold of each half (``halves``: (name, rows, encoder)). The
    tune pool is padded with the other half's listings (never its held-out fold), the held-out pool with every
    other listing of train."""
    out = []
    for name, half, encoder in halves:
        fold = np.full(len(half), -1)
        fold[half] = group_folds(padding.train.loc[half, "label_group"], FOLDS_PER_HALF, seed)
        for held in range(FOLDS_PER_HALF):
            tune_rows, test_rows = half & (fold != held), fold == held
            if not tune_rows.any() or not test_rows.any():
                continue                  # every group hashed into one fold (a handful of groups)
            out.append((padding.pool(tune_rows, ~half), replace(padding.pool(test_rows, ~test_rows), half=name),
                        encoder))
    if not out:
        raise ValueError("no half of train could be cut into two group folds: use more train groups")
    return out


def select_steps(folds: list[tuple], fusion: FusionOptions, tfidf_config: TfidfConfig, grid: TuningGrid, seed: int,
                 progress: bool = False, padding: Padding | None = None) -> Selection:
    """Score every step configuration on every held-out fold; choose the rule's steps, then the pair classifier.
    With ``padding``, the chosen configuration and the plain threshold rule are also scored as the first half's
    held-out folds are searched in pools growing from the fold alone to the padded size (:attr:`Selection.curve`:
    half B inside half B plus half A; one half, since each smaller pool is matched anew)."""
    options = fusion.rule
    pools = [TuningPool.of(tune.listings, enc, tune.images, tfidf_config, grid, seed, scored=tune.scored)
             for tune, _, enc in folds]
    # per fold: its pool's signals, with and without the learned title; shared by the folds whose pools hold the same
    # listings embedded by the same encoder (padded to all of train, a half's two held-out pools are one pool)
    shared: dict = {}
    held_out = [shared.setdefault((id(enc), test.rows.tobytes()), {}) for _, test, enc in folds]
    matchers: dict[tuple, Matcher] = {}   # (fold, configuration) -> its tuned matcher
    scores: dict[str, list] = {}
    skipped: dict[str, str] = {}
    unit_filter = fusion.unit_filter
    if unit_filter is None and not any(any(pool.signals.quantities) for pool in pools):   # the folds cover train
        unit_filter = False
        skipped[Steps(unit_filter=True).name] = "no title states an amount of a unit: the filter changes nothing"
    rules = [Steps(u, b, local_scale=ls) for u, b, ls in itertools.product(
        step_options(unit_filter), step_options(fusion.blend), step_options(fusion.local_scale))]

    def run(configs):
        for steps in tqdm(configs, desc="cross-fit steps", disable=not progress):
            try:
                for i, pool in enumerate(pools):
                    matchers[i, steps] = _tuned_matcher(pool, steps, options, tfidf_config)
                scores[steps.name] = [_held_out_scores(matchers[i, steps], test, held_out[i])
                                      for i, (_, test, _) in enumerate(folds)]
            except ValueError as err:      # e.g. a fold without a non-matching pair for the pair classifier
                skipped[steps.name] = str(err)

    run(rules)
    rule = _best([s for s in rules if s.name in scores], scores)
    with_pc = [replace(rule, pair_classifier=pc) for pc in step_options(fusion.pair_classifier)]
    run([s for s in with_pc if s.name not in scores])
    chosen = _best([s for s in with_pc if s.name in scores], scores)
    sizes = {"target": fusion.pool_size, "tuned_in": int(np.mean([len(t.listings) for t, _, _ in folds])),
             "scored_in": int(np.mean([len(h.listings) for _, h, _ in folds])),
             "held_out_fold": int(np.mean([h.n_scored for _, h, _ in folds]))}
    curve = None
    if padding is not None and sizes["scored_in"] > sizes["held_out_fold"]:
        shown = [s for s in dict.fromkeys([Steps(), chosen]) if s.name in scores]
        first = [i for i, (_, h, _) in enumerate(folds) if h.half == folds[0][1].half]
        curve = pool_curve(padding, [folds[i][1] for i in first], {s: [matchers[i, s] for i in first] for s in shown},
                           [{s: scores[s.name][i]["mean_f1"] for s in shown} for i in first], progress)
        sizes["curve_half"] = folds[0][1].half
    return Selection(_table(scores), chosen, skipped, sizes, curve)


def pool_curve(padding: Padding, held_out: list[PaddedPool], matchers: dict, full_f1: list[dict] | None = None,
               progress: bool = False, points: int = 3) -> pd.DataFrame:
    """Held-out mean F1 (mean +- std over folds) of each configuration's fold matchers as each held-out fold is
    searched in a pool growing from the fold alone to its padded size (``points`` sizes, geometric).
    ``full_f1``: each fold's {configuration: mean F1} at its padded size, already scored by the selection (the same
    matcher on the same pool), so only the smaller pools are matched here."""
    rows = []
    for i, fold in enumerate(tqdm(held_out, desc="pool sizes", disable=not progress)):
        sizes = np.unique(np.geomspace(fold.n_scored, len(fold.listings), points).round().astype(int))
        for k, size in enumerate(sizes):
            known = full_f1[i] if full_f1 and size == len(fold.listings) else {}
            pool = padding.pool(fold.queries, ~fold.queries, int(size))
            signals: dict = {}
            for steps, fold_matchers in matchers.items():
                f1 = known[steps] if steps in known else _held_out_scores(fold_matchers[i], pool, signals)["mean_f1"]
                rows.append({"steps": steps.name, "point": k, "pool": len(pool.listings), "mean_f1": f1})
    return (pd.DataFrame(rows).groupby(["steps", "point"], sort=False)
            .agg(pool=("pool", "mean"), mean_f1=("mean_f1", "mean"), std_f1=("mean_f1", "std")).reset_index()
            .drop(columns="point").assign(pool=lambda t: t["pool"].round().astype(int)))


def _held_out_scores(matcher: Matcher, pool: PaddedPool, pool_signals: dict) -> dict:
    """A tuned matcher scored on a held-out pool (its scored listings; the rest pad it); ``pool_signals`` keeps
    the pool's signals (and so its candidate pairs and blends) for the next configuration."""
    key = (matcher.uses_title(), matcher.uses_images())      # the signals Matcher.signals computes for it
    if key not in pool_signals:
        pool_signals[key] = matcher.signals(pool.listings, pool.images)
    return score_matches(matcher.match_signals(pool_signals[key]), pool.listings["label_group"],
                         pool.scored).as_dict()


def _tuned_matcher(pool: TuningPool, steps: Steps, options: dict, tfidf_config: TfidfConfig,
                   progress: bool = False) -> Matcher:
    """The recipe with exactly these steps, tuned on ``pool``."""
    concat = [s for s in options["concat"] if s in pool.signal_names]
    recipe = pool.tune(**{**options, "concat": concat}, unit_filter=steps.unit_filter, blend=steps.blend,
                       local_scale=steps.local_scale)
    recipe, classifier = pool.add_pair_classifier(recipe, steps.pair_classifier, progress)
    return Matcher(recipe, pool.encoder, tfidf_config, pair_classifier=classifier)


def _best(configs: list[Steps], scores: dict[str, list]) -> Steps:
    """Best mean F1 over the held-out folds; on a tie (within 1e-4) the configuration with fewer steps."""
    if not configs:
        raise ValueError("no step configuration could be scored on the held-out folds")
    means = {s.name: float(np.mean([f["mean_f1"] for f in scores[s.name]])) for s in configs}
    top = max(means.values())
    return min((s for s in configs if means[s.name] >= top - 1e-4), key=lambda s: sum(asdict(s).values()))


def _table(scores: dict[str, list]) -> pd.DataFrame:
    rows = []
    for name, folds in scores.items():
        f1 = np.array([f["mean_f1"] for f in folds])
        rows.append({"steps": name, **{f"fold_{i}": v for i, v in enumerate(f1)}, "mean_f1": f1.mean(),
                     "std_f1": f1.std(), "mean_precision": np.mean([f["mean_precision"] for f in folds]),
                     "mean_recall": np.mean([f["mean_recall"] for f in folds])})
    return pd.DataFrame(rows)
