"""match: fuse title, phash and (optional) image signals into match sets; every threshold tuned on train.

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
* **pair classifier**: a :class:`samesame.match.pairs.PairClassifier` scores every candidate pair
  from all similarities plus pool-relative features; its probability replaces the
  fused score.

Similarities are "larger = closer": cosine for embeddings, ``1 - bits/32`` for phash.
The rule itself is a typed :class:`samesame.match.recipe.Recipe`; a fitted :class:`samesame.match.matching.Matcher`
saves to and loads from a folder (:meth:`Matcher.save`, :meth:`Matcher.load`).

Where the code lives: :mod:`samesame.match.candidates` (signals, candidate pairs, blending),
:mod:`samesame.match.recipe` (the rule: its fields, applying it, tuning its thresholds), :mod:`samesame.match.tuning`
(steps kept only when they win across group folds; the pair classifier), :mod:`samesame.match.pairs` (the pair
classifier), :mod:`samesame.match.options` (what a fit is configured with), :mod:`samesame.match.selection` (which
steps ship, chosen by cross-fitting; the fit), :mod:`samesame.match.matching` (the Matcher: predict, save, load),
:mod:`samesame.match.ablation` (06's study of each step).

May import core, data, image and text; never run or study.
"""
