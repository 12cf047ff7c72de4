"""The fusion recipe as a typed, serialisable value: what :class:`samesame.fusion.Matcher` applies.

A recipe says which candidate pairs become matches. Every similarity it reads is
"larger = closer" (cosine for embeddings, ``1 - bits/32`` for phash, a probability
for the pair classifier):

* ``weights`` / ``threshold``: keep a pair when the weighted mean of its signals' similarities is >= threshold;
* ``union``: also keep it when one signal alone is >= its own threshold (e.g. phash);
* ``unit_filter``: drop a title-driven pair whose titles state different amounts of one unit;
* ``min2``: a listing left alone keeps its best candidate when that one is >= this looser threshold;
* ``blend``: first replace each embedding by the score-weighted mean of its close neighbours, then search again;
* ``pair_classifier``: a trained :class:`samesame.pairs.PairClassifier` scores every candidate pair; its
  probability replaces the fused score and :class:`PairStep` holds that decision's thresholds.

Saved as JSON (:meth:`Recipe.to_dict` / :meth:`Recipe.from_dict`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

SIGNALS = ("tfidf", "title", "image", "phash")
"""The signals a recipe may weigh or union (computed by :mod:`samesame.candidates`)."""
SIMILARITY = (-1.0, 1.0)   # bounds of a similarity threshold (cosine, 1 - bits/32)
PROBABILITY = (0.0, 1.0)   # bounds of a pair-classifier threshold


@dataclass(frozen=True)
class Blend:
    """Neighbourhood blending before the final search: fused ``weights``, neighbours >= ``threshold``, at most ``top``."""

    weights: dict[str, float]
    threshold: float
    top: int = 8


@dataclass(frozen=True)
class PairStep:
    """The pair classifier's decision: probability >= ``threshold``; lonely listings keep their best pair >= ``min2``.

    ``floor``: pairs whose fused score is below it are not classified (probability 0); set at fit time
    so that almost no matching train pair lies below it (None: every candidate pair is classified).
    """

    threshold: float
    min2: float | None = None
    floor: float | None = None

    def replace(self, **changes) -> "PairStep":
        return dataclasses.replace(self, **changes)

    def rule(self) -> "Recipe":
        """The same decision as a recipe applied to the probabilities (no union, no unit filter)."""
        return Recipe(weights={}, threshold=self.threshold, min2=self.min2)


@dataclass(frozen=True)
class Recipe:
    """Which candidate pairs match (see the module docstring); tuned on train by :mod:`samesame.fusion`."""

    weights: dict[str, float]
    threshold: float
    union: dict[str, float] = field(default_factory=dict)
    unit_filter: bool = False
    min2: float | None = None
    blend: Blend | None = None
    pair_classifier: PairStep | None = None

    def replace(self, **changes) -> "Recipe":
        return dataclasses.replace(self, **changes)

    @property
    def name(self) -> str:
        """Short method name for tables and metrics.json, e.g. ``blend(tfidf+phash)|phash+units+min2+pair_classifier``."""
        body = "+".join(s for s, w in self.weights.items() if w > 0)
        name = f"blend({body})" if self.blend else f"concat({body})"
        name += "".join(f"|{s}" for s in self.union)
        name += "+units" if self.unit_filter else ""
        name += "+min2" if self.min2 is not None else ""
        return name + ("+pair_classifier" if self.pair_classifier else "")

    def searched_signals(self) -> set[str]:
        """Signals whose kNN can bring a pair this recipe may keep: weighted (here or in the blend
        pass) or in the union. A weight-0 signal (often the learned title) costs no search."""
        names = {s for s, w in self.weights.items() if w > 0} | set(self.union)
        if self.blend:
            names |= {s for s, w in self.blend.weights.items() if w > 0}
        return names

    # ------------------------------------------------------------ serialisation

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (``None`` for absent steps)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: "dict | Recipe", source: str | Path | None = None) -> "Recipe":
        """From :meth:`to_dict` output (or a hand-written dict with at least ``weights`` and ``threshold``).

        Every value is checked, because a hand-edited recipe.json otherwise loads quietly wrong
        (``"false"`` is truthy, a NaN threshold keeps nothing): a ValueError names ``source``, the
        key, the value and the fix. Recipes built in code (``Recipe(...)``) are trusted as they are.
        """
        if isinstance(d, Recipe):
            return d
        check = _Checker(source)
        d = check.mapping(d, None, required=("weights", "threshold"), known=[f.name for f in dataclasses.fields(cls)])
        blend, step = d.get("blend"), d.get("pair_classifier")
        return cls(weights=check.weights(d["weights"], "weights"),
                   threshold=check.number(d["threshold"], "threshold", SIMILARITY),
                   union=check.thresholds(d.get("union"), "union"),
                   unit_filter=check.boolean(d.get("unit_filter", False), "unit_filter"),
                   min2=check.optional(d.get("min2"), "min2", SIMILARITY),
                   blend=None if blend is None else check.blend(blend),
                   pair_classifier=None if step is None else check.pair_step(step))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        """A saved recipe, checked (see :meth:`from_dict`); unreadable JSON names the file, the line and the fix."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found: refit with make fit")
        try:
            d = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}): "
                             f"{_fix('the JSON', path)}") from None
        except UnicodeDecodeError as err:
            raise ValueError(f"{path} is not UTF-8 text (byte {err.start}): {_fix('the file', path)}") from None
        return cls.from_dict(d, source=path)


def _fix(key: str, source: str | Path | None) -> str:
    return f"refit with make fit, or correct {key} in {source or 'the recipe'}"


class _Checker:
    """Reads one recipe dict value by value; each check raises a ValueError naming the source, the key,
    the value, what was expected and the fix."""

    def __init__(self, source: str | Path | None):
        self.source = source

    def _say(self, key: str | None, problem: str):
        """Raise for ``key`` (None: the whole recipe)."""
        where = f"{self.source}: " if self.source else ""
        what = "the recipe" if key is None else f"recipe key {key!r}"
        raise ValueError(f"{where}{what} {problem}; {_fix(key or 'the recipe', self.source)}")

    def fail(self, key: str | None, value, expected: str):
        self._say(key, f"= {json.dumps(value, default=repr)} is not valid: expected {expected}")

    def mapping(self, d, key: str | None, required: tuple[str, ...] = (), known: list[str] | None = None,
                noun: str = "recipe keys") -> dict:
        """``d`` is a JSON object holding the ``required`` keys and only ``known`` ones (when given)."""
        if not isinstance(d, dict):
            self.fail(key, d, "a JSON object" + (f" with the keys {known}" if known else ""))
        missing = [k for k in required if k not in d]
        if missing:
            self._say(key, f"lacks the keys {missing}")
        unknown = sorted(set(d) - set(known)) if known else []
        if unknown:
            self._say(key, f"has unknown {noun} {unknown} (known: {known})")
        return d

    def number(self, value, key: str, bounds: tuple[float, float] | None = None) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                bounds is not None and not bounds[0] <= value <= bounds[1]):
            self.fail(key, value, "a finite number" + (f" in [{bounds[0]:g}, {bounds[1]:g}]" if bounds else ""))
        return float(value)

    def optional(self, value, key: str, bounds: tuple[float, float] | None = None) -> float | None:
        return None if value is None else self.number(value, key, bounds)

    def boolean(self, value, key: str) -> bool:
        if not isinstance(value, bool):
            self.fail(key, value, "true or false (a JSON boolean, not a string or a number)")
        return value

    def thresholds(self, d, key: str) -> dict[str, float]:
        """Per-signal similarity thresholds (the union; null or absent: none)."""
        if d is None:
            return {}
        d = self.mapping(d, key, known=list(SIGNALS), noun="signals")
        return {name: self.number(v, f"{key}.{name}", SIMILARITY) for name, v in d.items()}

    def weights(self, d, key: str) -> dict[str, float]:
        d = self.mapping(d, key, known=list(SIGNALS), noun="signals")
        weights = {name: self.number(w, f"{key}.{name}", (0.0, math.inf)) for name, w in d.items()}
        if not any(w > 0 for w in weights.values()):
            self.fail(key, d, f"at least one weight > 0 among the signals {list(SIGNALS)}")
        return weights

    def blend(self, d) -> Blend:
        d = self.mapping(d, "blend", required=("weights", "threshold"),
                         known=[f.name for f in dataclasses.fields(Blend)])
        top = d.get("top", Blend.top)
        if isinstance(top, bool) or not isinstance(top, int) or top < 1:
            self.fail("blend.top", top, "an integer >= 1 (neighbours averaged)")
        return Blend(self.weights(d["weights"], "blend.weights"),
                     self.number(d["threshold"], "blend.threshold", SIMILARITY), top)

    def pair_step(self, d) -> PairStep:
        d = self.mapping(d, "pair_classifier", required=("threshold",),
                         known=[f.name for f in dataclasses.fields(PairStep)])
        return PairStep(self.number(d["threshold"], "pair_classifier.threshold", PROBABILITY),
                        self.optional(d.get("min2"), "pair_classifier.min2", PROBABILITY),
                        self.optional(d.get("floor"), "pair_classifier.floor"))
