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
from dataclasses import dataclass, field
from pathlib import Path


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
    def from_dict(cls, d: "dict | Recipe") -> "Recipe":
        """From :meth:`to_dict` output (or a hand-written dict with at least ``weights`` and ``threshold``)."""
        if isinstance(d, Recipe):
            return d
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown recipe keys {sorted(unknown)}; a recipe has {sorted(known)}")
        blend, step = d.get("blend"), d.get("pair_classifier")
        return cls(weights={str(k): float(v) for k, v in d["weights"].items()}, threshold=float(d["threshold"]),
                   union={str(k): float(v) for k, v in (d.get("union") or {}).items()},
                   unit_filter=bool(d.get("unit_filter", False)),
                   min2=None if d.get("min2") is None else float(d["min2"]),
                   blend=None if not blend else Blend({str(k): float(v) for k, v in blend["weights"].items()},
                                                      float(blend["threshold"]), int(blend.get("top", 8))),
                   pair_classifier=None if not step else PairStep(
                       float(step["threshold"]), None if step.get("min2") is None else float(step["min2"]),
                       None if step.get("floor") is None else float(step["floor"])))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        return cls.from_dict(json.loads(Path(path).read_text()))
